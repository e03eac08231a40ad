"""The main job: a Mixtral-like MoE layer compiled for the CPU, run on
random inputs and checked against the NumPy reference.

    PYTHONPATH=python /usr/bin/python3 -m moe_mlir.demo [--tokens T] [--dim D] ...
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from . import builder, runner
from . import reference as R
from .policies import Layer, TokenChoice


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="OpenMP threads of the compiled layer (0: every core)")
    args = parser.parse_args(argv)

    layer = Layer(args.dim, args.hidden, args.experts, TokenChoice(args.top_k, normalize=True),
                  "swiglu", args.dtype)
    print(f"Mixtral-like MoE layer: T={args.tokens} (dynamic), D={args.dim}, H={args.hidden}, "
          f"E={args.experts}, top-{args.top_k} dropless, SwiGLU, {args.dtype}")
    text, sig = builder.build_layer(layer)
    start = time.perf_counter()
    fn = runner.compile_function(text, sig, tempfile.mkdtemp(prefix="moe-demo-"),
                                 pipeline=runner.cpu_pipeline(args.threads))
    print(f"compiled with moe-cpu-pipeline + clang-22 -O3 in {time.perf_counter() - start:.2f} s")

    rng = np.random.default_rng(args.seed)
    x = R.round_to(rng.standard_normal((args.tokens, args.dim)).astype(np.float32), args.dtype)
    router = R.round_to((rng.standard_normal((args.dim, args.experts)) / np.sqrt(args.dim))
                        .astype(np.float32), args.dtype)
    weights = [R.round_to((rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32), args.dtype)
               for s in layer.weight_shapes()]
    native = {"bf16": R.to_bf16_bits, "f16": lambda a: a.astype(np.float16)}.get(
        args.dtype, lambda a: a)
    call_args = [native(x), native(router)] + [native(w) for w in weights]

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        y = fn(*call_args)
        times.append(time.perf_counter() - start)
    y = R.from_bf16_bits(y) if args.dtype == "bf16" else y.astype(np.float32)
    start = time.perf_counter()
    want, (ids, _, offsets) = R.layer_forward(layer, x, router, weights)
    ref_time = time.perf_counter() - start

    err = float(np.abs(y - want).max())
    scale = max(1.0, float(np.abs(want).max()))
    tolerance = {"bf16": 2e-2, "f16": 5e-3}.get(args.dtype, 1e-4) * scale
    flops = 2 * args.tokens * args.top_k * args.dim * args.hidden * (3 if layer.gated else 2)
    best = min(times)
    print(f"tokens per expert: {np.diff(offsets).tolist()}")
    print(f"max |compiled - reference| = {err:.3g} (max |reference| = {float(np.abs(want).max()):.3g}, "
          f"tolerance {tolerance:.3g})")
    print(f"time per call: {best * 1e3:.2f} ms best, {statistics.median(times) * 1e3:.2f} ms median "
          f"of {args.repeats} ({flops / best / 1e9:.2f} GFLOP/s of expert FFN work; "
          f"fused path, {args.threads or os.cpu_count()} thread(s))")
    print(f"NumPy reference: {ref_time * 1e3:.1f} ms")
    if not np.isfinite(y).all() or err > tolerance:
        print("FAILED: the compiled layer disagrees with the reference", file=sys.stderr)
        return 1
    print("OK: the compiled layer matches the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
