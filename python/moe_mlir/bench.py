"""Benchmark: the fused CPU path against the reference lowering, PyTorch
eager and a BLAS sgemm of the same FLOPs, side by side in one process.

    PYTHONPATH=python /usr/bin/python3 -m moe_mlir.bench [--quick] [--json out.json]

Every number comes from this run; ratios compare figures measured here on the
same inputs and the same thread count (--threads, default 1; the fused code
splits each contraction's columns across OpenMP threads). The machine's limits are measured too: a BLAS
sgemm rate (the practical peak) and a streaming-read bandwidth over a buffer
far larger than the caches.
"""

import argparse
import json
import os
import sys
import tempfile
import time


def _threads_from_argv(argv):
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
    return "1"


# BLAS fixes its thread count when it loads: set it before NumPy comes in.
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_from_argv(sys.argv))
os.environ.setdefault("OMP_NUM_THREADS", os.environ["OPENBLAS_NUM_THREADS"])

import numpy as np  # noqa: E402

from . import builder, runner  # noqa: E402
from . import reference as R  # noqa: E402
from .policies import ExpertChoice, Layer, TokenChoice  # noqa: E402

SHAPES = [
    # name, tokens, D, H, E, policy, activation
    ("small", 128, 512, 1024, 8, TokenChoice(2, normalize=True), "relu"),
    ("mixtral", 2048, 1024, 2048, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("fine-grained", 256, 2048, 704, 64, TokenChoice(6, normalize=True), "swiglu"),
    ("mixtral-ec2", 2048, 1024, 2048, 8, ExpertChoice(2.0), "swiglu"),
    ("mixtral-decode1", 1, 1024, 2048, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("mixtral-decode8", 8, 1024, 2048, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("fine-decode1", 1, 2048, 704, 64, TokenChoice(6, normalize=True), "swiglu"),
    ("fine-decode8", 8, 2048, 704, 64, TokenChoice(6, normalize=True), "swiglu"),
]
QUICK = [("quick", 64, 64, 128, 4, TokenChoice(2, normalize=True), "swiglu")]

REFERENCE_GFLOPS = 1.2  # measured rate of the reference lowering, for budgeting


def best_time(fn, repeats, budget=20.0):
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return min(times)


def expert_flops(layer, rows):
    per_row = 2 * layer.model_dim * layer.hidden_dim * (3 if layer.gated else 2)
    return rows * per_row


def streaming_bandwidth(threads=1):
    """Read bandwidth over a 256 MiB buffer (far past the caches), summed
    in `threads` equal parts at once (NumPy's reductions release the GIL),
    so that it compares with layers run on as many threads."""
    from concurrent.futures import ThreadPoolExecutor

    buf = np.ones(256 * 1024 * 1024 // 4, dtype=np.float32)
    parts = np.array_split(buf, threads)
    with ThreadPoolExecutor(threads) as pool:
        best = best_time(lambda: list(pool.map(np.add.reduce, parts)), 5)
    return buf.nbytes / best / 1e9


def sgemm_rate(m, k, n):
    a = np.random.default_rng(0).standard_normal((m, k)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((k, n)).astype(np.float32)
    t = best_time(lambda: a @ b, 5)
    return 2.0 * m * k * n / t / 1e9


def torch_layer(layer, x, router, weights, routing):
    """A PyTorch eager MoE layer as model code writes it: per expert,
    index_select its tokens, run the FFN, index_add the gated output."""
    import torch
    tx = torch.from_numpy(x)
    tw = [torch.from_numpy(w) for w in weights]
    act = {"relu": torch.relu, "gelu": torch.nn.functional.gelu,
           "silu": torch.nn.functional.silu}
    policy = layer.policy
    if isinstance(policy, ExpertChoice):
        ids, gates = routing
        per_expert = [(torch.from_numpy(ids[e][ids[e] >= 0].astype(np.int64)),
                       torch.from_numpy(gates[e][ids[e] >= 0])) for e in range(layer.experts)]
    else:
        ids, gates, offsets = routing
        per_expert = [(torch.from_numpy(ids[offsets[e]:offsets[e + 1]].astype(np.int64)),
                       torch.from_numpy(gates[offsets[e]:offsets[e + 1]]))
                      for e in range(layer.experts)]

    def run():
        with torch.no_grad():
            out = torch.zeros_like(tx)
            for e, (idx, g) in enumerate(per_expert):
                if idx.numel() == 0:
                    continue
                rows = tx.index_select(0, idx)
                if layer.gated:
                    h = torch.nn.functional.silu(rows @ tw[0][e]) * (rows @ tw[1][e])
                    y = h @ tw[2][e]
                else:
                    y = act[layer.activation](rows @ tw[0][e]) @ tw[1][e]
                out.index_add_(0, idx, y * g[:, None])
            return out
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one tiny shape (a smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="moe-bench.json")
    args = parser.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    shapes = QUICK if args.quick else SHAPES
    results = {"threads": args.threads, "shapes": []}
    bandwidth = streaming_bandwidth(args.threads) if not args.quick else float("nan")
    peak = sgemm_rate(2048, 1024, 2048) if not args.quick else sgemm_rate(256, 256, 256)
    results["stream_read_GBps"] = bandwidth
    results["blas_sgemm_GFLOPs"] = peak
    print(f"machine: BLAS sgemm {peak:.1f} GFLOP/s, streaming read {bandwidth:.1f} GB/s, "
          f"{args.threads} thread(s)")
    header = (f"{'shape':16} {'fused ms':>9} {'GFLOP/s':>8} {'xBLAS':>6} {'ref ms':>9} {'x ref':>7} "
              f"{'torch ms':>9} {'x torch':>8} {'weights GB/s':>12}")
    print(header)
    workdir = tempfile.mkdtemp(prefix="moe-bench-")
    for name, tokens, d, h, e, policy, activation in shapes:
        layer = Layer(d, h, e, policy, activation, "f32")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((tokens, d)).astype(np.float32)
        router = (rng.standard_normal((d, e)) / np.sqrt(d)).astype(np.float32)
        weights = [(rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32)
                   for s in layer.weight_shapes()]
        text, sig = builder.build_layer(layer)
        fused = runner.compile_function(text, sig, os.path.join(workdir, name + "-fused"),
                                        pipeline=runner.cpu_pipeline(args.threads))
        args_ = [x, router] + weights
        y = fused(*args_)
        want, routing = R.layer_forward(layer, x, router, weights)
        err = float(np.abs(y - want).max())
        t_fused = best_time(lambda: fused(*args_), args.repeats)
        rows = routing[0].size if not isinstance(policy, ExpertChoice) else int((routing[0] >= 0).sum())
        flops = expert_flops(layer, rows)
        active = len({int(i) for i in np.nonzero(np.diff(routing[2]))[0]}) \
            if not isinstance(policy, ExpertChoice) else e
        weight_bytes = active * sum(int(np.prod(s[1:])) for s in layer.weight_shapes()) * 4
        entry = {"shape": name, "tokens": tokens, "D": d, "H": h, "E": e,
                 "policy": builder.policy_attr(policy), "activation": activation,
                 "max_abs_error": err, "fused_ms": t_fused * 1e3,
                 "fused_GFLOPs": flops / t_fused / 1e9,
                 "weights_GBps": weight_bytes / t_fused / 1e9}
        if flops / (REFERENCE_GFLOPS * 1e9) < 5.0:
            ref = runner.compile_function(
                text, sig, os.path.join(workdir, name + "-ref"),
                pipeline="moe-cpu-pipeline{fused=false results-to-out-params=false}")
            entry["reference_ms"] = best_time(lambda: ref(*args_), 1) * 1e3
        if torch is not None:
            entry["torch_ms"] = best_time(torch_layer(layer, x, router, weights, routing),
                                          args.repeats) * 1e3
        results["shapes"].append(entry)
        ref_ms = entry.get("reference_ms")
        torch_ms = entry.get("torch_ms")
        fused_ms = entry["fused_ms"]
        cell = lambda value, fmt, width: format(value, fmt) if value else "-".rjust(width)
        print(f"{name:16} {fused_ms:9.2f} {entry['fused_GFLOPs']:8.1f} "
              f"{entry['fused_GFLOPs'] / peak:6.2f} "
              f"{cell(ref_ms, '9.1f', 9)} {cell(ref_ms and ref_ms / fused_ms, '7.1f', 7)} "
              f"{cell(torch_ms, '9.2f', 9)} {cell(torch_ms and torch_ms / fused_ms, '8.2f', 8)} "
              f"{entry['weights_GBps']:12.1f}")
        if not np.isfinite(err) or err > 1e-3 * max(1.0, float(np.abs(want).max())):
            print(f"  error: fused output differs from the reference by {err}", file=sys.stderr)
            return 1
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
