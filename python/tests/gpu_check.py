#!/usr/bin/python3
"""GPU execution tests from ahead-of-time artifacts.

  gpu_check.py build DIR [--chip sm_90 ...]   # here: needs the build + CUDA toolkit
  gpu_check.py run DIR [--cases N]            # GPU machine: Python 3 + NumPy + driver

`build` compiles every layer of layer_cases.LAYERS (every routing policy,
dynamic T, f32/f16/bf16) and layer_cases.EDGE_LAYERS (one token, one
expert) with moe-gpu-pipeline into DIR, one self-contained
shared library per layer and chip (`--layer NAME`, repeatable: only those
layers). `run` loads the artifacts for the GPU's chip, runs each layer
on the same random cases as the CPU tests (ties, huge logits, empty
experts, C > T) and compares with the NumPy reference under the same
tolerances. It prints one line per case and ends with
`N passed, N failed`; the exit status is non-zero on any failure.
"""

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from layer_cases import CASES_PER_LAYER, EDGE_LAYERS, LAYERS, check_layer  # noqa: E402
from moe_mlir import gpu  # noqa: E402

ALL_LAYERS = {**LAYERS, **EDGE_LAYERS}


def artifact_name(layer_name):
    return "layer_" + "".join(c if c.isalnum() else "_" for c in layer_name)


def build(out_dir, chips, names=None):
    from moe_mlir import builder

    out_dir = Path(out_dir)
    unknown = sorted(set(names or []) - set(ALL_LAYERS))
    if unknown:
        raise SystemExit(f"unknown layer(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(ALL_LAYERS))}")
    index = []
    for name, layer in sorted(ALL_LAYERS.items()):
        if names and name not in names:
            continue
        text, signature = builder.build_layer(layer, artifact_name(name))
        for chip in chips:
            start = time.perf_counter()
            lib = gpu.build_artifact(text, signature, out_dir, chip=chip)
            print(f"built {lib.name} ({time.perf_counter() - start:.1f} s)")
            index.append({"layer": name, "chip": chip,
                          "manifest": lib.with_suffix(".json").name})
    (out_dir / "index.json").write_text(json.dumps(index, indent=1))
    total = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"{len(index)} artifacts, {total / 2**20:.1f} MiB in {out_dir}")


def _chip_for(capability, chips):
    """The best artifact chip for a device: the highest sm_XY <= its
    capability (PTX in the fatbin is JIT-compiled for newer devices)."""
    usable = [c for c in chips if int(c[3:].rstrip("a")) <= capability]
    return max(usable, key=lambda c: int(c[3:].rstrip("a")), default=None)


def run(out_dir, cases):
    out_dir = Path(out_dir)
    index = json.loads((out_dir / "index.json").read_text())
    try:
        runtime = gpu.CudaRuntime(out_dir / gpu.RUNTIME_NAME).init()
    except gpu.GpuError as error:
        print(f"no usable GPU: {error}")
        return 2
    device, capability = runtime.device()
    chip = _chip_for(capability, sorted({entry["chip"] for entry in index}))
    print(f"device: {device} (sm_{capability}); artifacts for {chip}")
    if chip is None:
        print("no artifact for this device")
        return 1
    passed = failed = 0
    for entry in index:
        if entry["chip"] != chip:
            continue
        fn, _ = gpu.load_artifact(out_dir / entry["manifest"], runtime)
        for seed in range(cases):
            try:
                err = check_layer(ALL_LAYERS[entry["layer"]], fn, seed)
                passed += 1
                print(f"PASS {entry['layer']} seed {seed}: max error {err:.3g}")
            except Exception as error:  # report every case, then fail
                failed += 1
                print(f"FAIL {entry['layer']} seed {seed}: {error}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("dir")
    b.add_argument("--chip", action="append", help="sm_80, sm_90, ... (default both)")
    b.add_argument("--layer", action="append",
                   help="a layer of layer_cases (default every one)")
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("--cases", type=int, default=CASES_PER_LAYER)
    args = parser.parse_args()
    if args.command == "build":
        build(args.dir, args.chip or ["sm_80", "sm_90"], args.layer)
        return 0
    return run(args.dir, args.cases)


if __name__ == "__main__":
    sys.exit(main())
