"""Benchmark: the fused CPU path against the reference lowering, PyTorch
eager and a BLAS sgemm of the same FLOPs, side by side in one process.

    PYTHONPATH=python /usr/bin/python3 -m moe_mlir.bench [--quick] [--shapes a,b]
        [--threads N] [--json out.json]

Every number comes from this run; ratios compare figures measured here on the
same inputs and the same thread count (--threads, default 0: every core; the
fused code splits each contraction's columns across OpenMP threads, OpenBLAS
and PyTorch get as many threads).

What makes the comparison honest:

- The machine is described (CPU model, ISA extensions, caches, threads) and
  so is the BLAS kernel the peers really run: OpenBLAS picks its kernels at
  load time from the CPU model, and falls back to a generic SSE3 core
  ("Prescott") on CPUs it does not know. When that happens on an AVX2 or
  AVX-512 CPU the benchmark runs itself again with OPENBLAS_CORETYPE set, so
  that NumPy and PyTorch (which share the library) get their real speed.
- The machine's limits are measured: a BLAS sgemm rate (the practical compute
  peak) and a streaming-read bandwidth over a buffer at least 4x the
  last-level cache. Each shape's bound is the larger of its expert FLOPs at
  the sgemm rate and its active expert weights at the streaming bandwidth;
  every contender's time is reported as the fraction of that bound it reaches.
- The PyTorch peer routes in PyTorch inside its timed region (logits,
  softmax, top-k, renormalize, group per expert), as model code does.
- The routing alone is compiled and timed as its own function.
- Shapes whose active weights fit in the last-level cache are marked: their
  repeated calls read the weights from cache, so the DRAM-bandwidth bound is
  not a limit for them. The big decode shapes have active weights >= 4x the
  LLC, so repeated calls cannot keep them cached.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional


def _resolve_threads(value):
    """--threads 0 means every core the OS reports."""
    threads = int(value)
    return threads if threads > 0 else (os.cpu_count() or 1)


def _threads_from_argv(argv):
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return _resolve_threads(arg.split("=", 1)[1])
        if arg == "--threads" and i + 1 < len(argv):
            return _resolve_threads(argv[i + 1])
    return _resolve_threads(0)


# BLAS fixes its thread count when it loads: set it before NumPy comes in.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(_threads_from_argv(sys.argv)))
os.environ.setdefault("OMP_NUM_THREADS", os.environ["OPENBLAS_NUM_THREADS"])

import numpy as np  # noqa: E402

from . import builder, packed, runner  # noqa: E402
from .bench_machine import (best_time, describe_machine, machine_info,  # noqa: E402
                            mapped_libraries, rerun_with_matching_blas_core,
                            sgemm_rate, streaming_bandwidth)
from .bench_blas import blas_experts  # noqa: E402
from .bench_report import add_bounds, print_report  # noqa: E402
from .bench_torch import torch_bf16_layer, torch_int8_layer, torch_layer  # noqa: E402
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
    # Mixtral-8x7B's expert sizes: 2 active experts are 1.4 GB of f32
    # weights, >= 4x a last-level cache of up to 336 MiB, so decode reads
    # its weights from DRAM on every call however often it is repeated.
    ("big-decode1", 1, 4096, 14336, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("big-decode8", 8, 4096, 14336, 8, TokenChoice(2, normalize=True), "swiglu"),
]
QUICK = [("quick", 64, 64, 128, 4, TokenChoice(2, normalize=True), "swiglu")]

# Measured rates of the reference lowering (2-core development VM), to
# estimate its run time: compute-bound prefill, weight-streaming decode.
REFERENCE_GFLOPS = 1.2
REFERENCE_WEIGHTS_GBPS = 0.5
REFERENCE_BUDGET_S = 5.0  # skip the reference lowering where it would take longer

def expert_flops(layer, rows):
    per_row = 2 * layer.model_dim * layer.hidden_dim * (3 if layer.gated else 2)
    return rows * per_row


# ----------------------------------------------------------------------------
# Contenders
# ----------------------------------------------------------------------------


@dataclass
class Contender:
    """One implementation of a shape's layer, bound to its inputs: calling it
    runs the layer once and returns its output. `pack_ms` is the one-off cost
    of preparing the weights outside the timed region (a packed-weights
    variant reports it; None when there is none)."""

    run: Callable[[], np.ndarray]
    pack_ms: Optional[float] = None
    # Bytes of its weights per f32 weight byte (bf16 panels: 0.5), and the
    # error it may have relative to the f32 reference's largest value.
    weight_bytes_scale: float = 1.0
    tolerance: float = 1e-3

    def __call__(self):
        return self.run()


def fused_contenders(layer, text, sig, args, workdir, threads):
    """The compiled contenders of one shape, name -> Contender; "fused" (the
    default moe-cpu-pipeline on `threads` threads) is the one every ratio
    refers to. Further variants (e.g. packed weights) are added here."""
    fused = runner.compile_function(text, sig, os.path.join(workdir, "fused"),
                                    pipeline=runner.cpu_pipeline(threads))
    contenders = {"fused": Contender(lambda: fused(*args))}
    # Weights packed once (moe-pack-expert-weights), then the packed entry;
    # as f32, as bf16 (#moe.packed<storage = bf16>: half the bytes, an
    # error of the weights' rounding, 2^-9 relative each), and as int8 with
    # a scale per output column (a quarter of the bytes; the scales, 4 bytes
    # per column, add under 0.4 % for K >= 1024; a weight moves by up to
    # 1/254 of its column's largest: about 1.5 % of the output's scale for
    # normal weights).
    # 4-bit in groups of 32 rows (GGUF Q4_0's block): half a byte per
    # weight plus a 4-byte scale per 32 (0.625 bytes, 0.156 of f32); a
    # weight moves by up to 1/14 of its group's largest: about 17-19 % of
    # the output's scale for normal weights.
    # The same 4-bit weights with int8 rows (activations = i8: GGUF's Q8_0
    # x Q4_0, integer dot products): each row value moves by up to 1/254 of
    # its group's largest, on top of the weights' error. And those with f16
    # scales: GGUF's Q4_0 block, 18 bytes per 32 weights (0.5625 bytes).
    variants = [("fused-packed", "f32", "f32", "f32", 1.0, 1e-3),
                ("fused-packed-bf16", "bf16", "f32", "f32", 0.5, 2e-2),
                ("fused-packed-i8", "i8", "f32", "f32", 0.25, 5e-2),
                ("fused-packed-i4", "i4", "f32", "f32", 0.15625, 0.3),
                ("fused-packed-i4a8", "i4", "i8", "f32", 0.15625, 0.3),
                ("fused-packed-q4_0", "i4", "i8", "f16", 0.140625, 0.3)]
    for name, storage, activations, scales, bytes_scale, tolerance in variants:
        layer_packed = packed.compile_packed(text, sig, os.path.join(workdir, name),
                                             threads=threads, storage=storage,
                                             activations=activations, scales=scales)
        weights = [args[i] for i in layer_packed.weight_positions]
        rest = [a for i, a in enumerate(args) if i not in layer_packed.weight_positions]
        start = time.perf_counter()
        layer_packed.prepare(*weights)
        pack_ms = (time.perf_counter() - start) * 1e3
        contenders[name] = Contender(lambda fn=layer_packed, rest=rest: fn(*rest),
                                     pack_ms=pack_ms, weight_bytes_scale=bytes_scale,
                                     tolerance=tolerance)
    return contenders


def compiled_route(layer, workdir, threads):
    """The routing alone, compiled as its own function (builder.build_route)
    with the same pipeline as the layer; None when the builder has none."""
    build_route = getattr(builder, "build_route", None)
    if build_route is None:
        return None
    text, sig = build_route(layer.policy, layer.experts)
    return runner.compile_function(text, sig, os.path.join(workdir, "route"),
                                   pipeline=runner.cpu_pipeline(threads))


# ----------------------------------------------------------------------------
# One shape
# ----------------------------------------------------------------------------


class _Weights:
    """The last shape's inputs, reused by the next shape of the same sizes
    (the big decode shapes share 5.6 GB of weights; drawing them twice would
    double the run time)."""

    key, weights = None, None

    @classmethod
    def get(cls, layer):
        key = (layer.model_dim, layer.hidden_dim, layer.experts, layer.activation)
        if cls.key != key:
            cls.key, cls.weights = None, None  # free the old ones first
            rng = np.random.default_rng(1)
            weights = []
            for shape in layer.weight_shapes():
                w = rng.standard_normal(shape, dtype=np.float32)
                w *= np.float32(1 / np.sqrt(shape[1]))
                weights.append(w)
            cls.key, cls.weights = key, weights
        return cls.weights


def _routing_stats(layer, routing):
    """(routed rows, experts that got at least one row)."""
    if isinstance(layer.policy, ExpertChoice):
        filled = routing[0] >= 0
        return int(filled.sum()), int(filled.any(axis=1).sum())
    counts = np.diff(routing[2])
    return int(counts.sum()), int((counts > 0).sum())


def _rate(flops, ms):
    return flops / (ms * 1e-3) / 1e9


def run_shape(spec, threads, repeats, llc_bytes, workdir, torch, min_seconds=0.0):
    """Measures one shape; returns (entry, ok) where ok is False when the
    fused output differs from the reference. The bounds and the ratios to
    the machine's limits are added afterwards (add_bounds), once the limits
    have been measured at both ends of the run."""
    name, tokens, d, h, e, policy, activation = spec
    layer = Layer(d, h, e, policy, activation, "f32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((tokens, d), dtype=np.float32)
    router = (rng.standard_normal((d, e), dtype=np.float32) / np.float32(np.sqrt(d)))
    weights = _Weights.get(layer)
    args = [x, router] + weights
    want, routing = R.layer_forward(layer, x, router, weights)
    scale = max(1.0, float(np.abs(want).max()))

    rows, active = _routing_stats(layer, routing)
    flops = expert_flops(layer, rows)
    per_expert = sum(int(np.prod(s[1:])) for s in layer.weight_shapes()) * 4
    active_bytes = active * per_expert
    fits = llc_bytes is not None and active_bytes <= llc_bytes
    entry = {
        "shape": name, "tokens": tokens, "D": d, "H": h, "E": e,
        "policy": builder.policy_attr(policy), "activation": activation,
        "routed_rows": rows, "expert_flops": flops, "active_experts": active,
        "weight_bytes_per_expert": per_expert, "active_weight_bytes": active_bytes,
        "total_weight_bytes": e * per_expert, "fits_llc": fits,
        "cache_note": ("active weights fit in the LLC: repeated calls read them from cache, "
                       "so the DRAM-bandwidth bound is not a limit here" if fits else
                       "active weights exceed the LLC: every repeated call streams them "
                       "from DRAM"),
    }

    shape_dir = os.path.join(workdir, name)
    text, sig = builder.build_layer(layer)
    contenders = {}
    ok = True
    for cname, contender in fused_contenders(layer, text, sig, args, shape_dir, threads).items():
        err = float(np.abs(contender() - want).max())
        ms = best_time(contender, repeats, min_seconds=min_seconds) * 1e3
        contenders[cname] = {"ms": ms, "GFLOPs": _rate(flops, ms), "max_abs_error": err,
                             "pack_ms": contender.pack_ms,
                             "weight_bytes": active_bytes * contender.weight_bytes_scale}
        if not np.isfinite(err) or err > contender.tolerance * scale:
            print(f"  error: {cname} output differs from the reference by {err}", file=sys.stderr)
            ok = False
    fused = contenders["fused"]
    entry.update({"contenders": contenders, "max_abs_error": fused["max_abs_error"],
                  "fused_ms": fused["ms"], "fused_GFLOPs": fused["GFLOPs"],
                  "pack_ms": fused["pack_ms"],
                  "weights_GBps": active_bytes / (fused["ms"] * 1e-3) / 1e9})

    route = compiled_route(layer, shape_dir, threads)
    if route is None:
        entry["route_note"] = "builder has no build_route: routing not timed apart"
    else:
        logits = R.matmul_seq(x, router)
        got = route(logits)
        entry["route_matches_reference"] = all(np.array_equal(a, b) for a, b in zip(got, routing))
        entry["route_ms"] = best_time(lambda: route(logits), max(repeats, 5)) * 1e3
        entry["route_pct_of_fused"] = 100.0 * entry["route_ms"] / fused["ms"]
        # One entry call routing a single token: the floor of what a call
        # costs from Python (binding, descriptors, result copies), which the
        # fused layer's call pays too.
        one = np.ascontiguousarray(logits[:1])
        entry["route_call_floor_ms"] = best_time(lambda: route(one), max(repeats, 5)) * 1e3

    estimate = max(flops / (REFERENCE_GFLOPS * 1e9), active_bytes / (REFERENCE_WEIGHTS_GBPS * 1e9))
    if estimate < REFERENCE_BUDGET_S:
        ref = runner.compile_function(
            text, sig, os.path.join(shape_dir, "ref"),
            pipeline="moe-cpu-pipeline{fused=false results-to-out-params=false}")
        entry["reference_ms"] = best_time(lambda: ref(*args), 1) * 1e3

    gemms = blas_experts(layer, x, weights, routing)
    if gemms is not None:
        gemms()
        entry["blas_experts_ms"] = best_time(gemms, repeats, min_seconds=min_seconds) * 1e3
        entry["blas_experts_GFLOPs"] = _rate(flops, entry["blas_experts_ms"])

    if torch is not None:
        run = torch_layer(layer, x, router, weights)
        if run is None:
            entry["torch_note"] = "policy not implemented in the PyTorch peer"
        else:
            entry["torch_max_abs_error"] = float(np.abs(run() - want).max())
            entry["torch_ms"] = best_time(run, repeats, min_seconds=min_seconds) * 1e3
            entry["torch_GFLOPs"] = _rate(flops, entry["torch_ms"])
            int8 = torch_int8_layer(layer, x, router, weights)
            if int8 is not None:
                run8, quantize_s, engine = int8
                entry["torch_int8_max_abs_error"] = float(np.abs(run8() - want).max())
                entry["torch_int8_ms"] = best_time(run8, repeats, min_seconds=min_seconds) * 1e3
                entry["torch_int8_quantize_ms"] = quantize_s * 1e3
                entry["torch_int8_engine"] = engine
                del run8, int8
            bf16 = torch_bf16_layer(layer, x, router, weights)
            if bf16 is not None:
                run16, convert_s = bf16
                entry["torch_bf16_max_abs_error"] = float(np.abs(run16() - want).max())
                entry["torch_bf16_ms"] = best_time(run16, repeats, min_seconds=min_seconds) * 1e3
                entry["torch_bf16_convert_ms"] = convert_s * 1e3
                del run16, bf16
            experts_only = torch_layer(layer, x, router, weights, routing)
            experts_only()
            entry["torch_experts_only_ms"] = best_time(experts_only, repeats,
                                                       min_seconds=min_seconds) * 1e3
    return entry, ok


def measure_limits(threads, llc_bytes, quick):
    """(sgemm GFLOP/s, streaming GB/s, streaming details) measured now."""
    bandwidth, stream = streaming_bandwidth(threads, llc_bytes)
    peak = sgemm_rate(256, 256, 256) if quick else sgemm_rate(2048, 1024, 2048)
    return peak, bandwidth, stream


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------


def _select_shapes(args):
    if args.shapes:
        known = {s[0]: s for s in SHAPES + QUICK}
        names = [n.strip() for n in args.shapes.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown shape(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return [known[n] for n in names]
    return QUICK if args.quick else SHAPES


# Each contender of a shape is called for at least this long (and at least
# --repeats times), the same for ours and the peers: decode layers take a
# few milliseconds, and the best of 3 calls on a shared VM was up to 1.7x
# the best of a second's calls.
MIN_SECONDS = 0.5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one tiny shape (a smoke run)")
    parser.add_argument("--shapes", help="comma-separated shape names to run (default: all)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for every contender (0: every core)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="calls per contender, at least (and at least %.1f s of them "
                        "outside --quick)" % MIN_SECONDS)
    parser.add_argument("--json", default="moe-bench.json")
    args = parser.parse_args(argv)
    threads = _resolve_threads(args.threads)
    shapes = _select_shapes(args)
    if os.environ["OPENBLAS_NUM_THREADS"] != str(threads):
        print(f"warning: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']} "
              f"(fixed when NumPy loaded), not {threads}", file=sys.stderr)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None

    machine, notes = machine_info(threads)
    # Other processes on the cores slow every contender down unevenly; the
    # record says how busy the machine was.
    machine["loadavg_start"] = os.getloadavg()[0]
    if machine["loadavg_start"] > 0.5:
        notes.append(f"warning: load average {machine['loadavg_start']:.2f} at the start: other "
                     "processes compete for the cores, so the times are pessimistic")
    if torch is not None:
        machine["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                            "blas_libraries": mapped_libraries("openblas", "mkl", "blis")}
    for line in describe_machine(machine) + notes:
        print(line, flush=True)
    # The limits are measured before and after the shapes and the higher
    # figure counts: on a shared machine one measurement can land on a busy
    # moment, and a bound from it would flatter every contender.
    limits = [measure_limits(threads, machine["llc_bytes"], args.quick)]
    workdir = tempfile.mkdtemp(prefix="moe-bench-")
    status = 0
    results = {"threads": threads, "machine": machine, "notes": notes, "shapes": []}
    for i, spec in enumerate(shapes):
        print(f"[{i + 1}/{len(shapes)}] {spec[0]}", file=sys.stderr, flush=True)
        entry, ok = run_shape(spec, threads, args.repeats, machine["llc_bytes"], workdir, torch,
                              min_seconds=0.0 if args.quick else MIN_SECONDS)
        results["shapes"].append(entry)
        if not ok:
            status = 1
            break
    limits.append(measure_limits(threads, machine["llc_bytes"], args.quick))
    peak = max(p for p, _, _ in limits)
    bandwidth = max(b for _, b, _ in limits)
    stream = max(limits, key=lambda lim: lim[1])[2]
    machine.update({"stream_read_GBps": bandwidth, "stream": stream, "blas_sgemm_GFLOPs": peak,
                    "limits_start_end": [{"blas_sgemm_GFLOPs": p, "stream_read_GBps": b}
                                         for p, b, _ in limits]})
    results.update({"stream_read_GBps": bandwidth, "blas_sgemm_GFLOPs": peak})
    for entry in results["shapes"]:
        add_bounds(entry, peak, bandwidth)
    print_report(results, limits)
    results["loadavg_end"] = os.getloadavg()[0]
    print(f"load average {machine['loadavg_start']:.2f} at the start, "
          f"{results['loadavg_end']:.2f} at the end ({machine['cpu_count']} cpu(s))")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    rerun_with_matching_blas_core(sys.argv[1:], __spec__.name if __spec__ else "moe_mlir.bench")
    sys.exit(main())
