#!/usr/bin/env python3
"""Sweeps small MoE layers through the GPU pipelines with moe-opt and lists
the ones a pipeline rejects.

Every policy (token choice dropless / capacity by position / by priority,
sigmoid, DeepSeek grouped, expert choice, soft) x f32/f16/bf16 x static T in
{1, 2, 3, 16} and dynamic T x E in {1, 2, 8} (top_k <= E, n_group divides
E), through moe-gpu-pipeline (sm_80, and sm_90 with +ptx80; format=isa) and
moe-gpu-emulation-pipeline. All of them are valid layers, so all of them
must map, and the two pipelines must accept the same ones (they share one
mapping).

    PYTHONPATH=python python3 python/tests/gpu_sweep.py [--build build] [-j 2]

(360 layers, about 7 minutes on 2 cores; it ends with the number of layers
each pipeline accepted.) test_layers.py runs a part of it.
"""

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from moe_mlir import builder  # noqa: E402
from moe_mlir.policies import ExpertChoice, Layer, Soft, TokenChoice  # noqa: E402

PIPELINES = {
    "sm_80": "--moe-gpu-pipeline=chip=sm_80 format=isa",
    "sm_90": "--moe-gpu-pipeline=chip=sm_90 features=+ptx80 format=isa",
    "emulation": "--moe-gpu-emulation-pipeline",
}


def policies(experts):
    """(name, policy, activation) of every policy valid with `experts`."""
    k = min(2, experts)
    out = [
        ("dropless", TokenChoice(k, normalize=True), "swiglu"),
        ("capacity-position", TokenChoice(k, capacity_factor=1.25), "relu"),
        ("capacity-priority",
         TokenChoice(k, capacity_factor=1.0, order="priority", normalize=True), "gelu"),
        ("sigmoid", TokenChoice(k, capacity_factor=1.5, score="sigmoid", normalize=True,
                                routed_scaling_factor=2.5), "silu"),
        ("sigmoid-dropless", TokenChoice(k, score="sigmoid"), "relu"),
        ("expert-choice", ExpertChoice(2.0), "swiglu"),
        ("soft", Soft(2), "gelu"),
    ]
    # Two or more experts per group (the verifier asks for them).
    groups = {1: (1, 1), 2: (1, 1), 8: (4, 2)}[experts]
    out.append(("deepseek-grouped",
                TokenChoice(k, score="sigmoid", normalize=True, n_group=groups[0],
                            topk_group=groups[1], routed_scaling_factor=2.5, bias=True),
                "swiglu"))
    return out


def layers(experts_list=(1, 2, 8), dtypes=("f32", "f16", "bf16"),
           tokens_list=(1, 2, 3, 16, None)):
    for experts in experts_list:
        for name, policy, activation in policies(experts):
            for dtype in dtypes:
                for tokens in tokens_list:
                    # D, H multiples of 16: f16/bf16 tiles go to tensor cores.
                    layer = Layer(32, 64, experts, policy, activation, dtype, tokens)
                    label = (f"{name} E={experts} {dtype} "
                             f"T={'?' if tokens is None else tokens}")
                    yield label, layer


def run(moe_opt, text, pipeline):
    """None if `pipeline` (moe-opt arguments) accepts `text`, else the first
    error."""
    proc = subprocess.run([moe_opt, pipeline, "-o", os.devnull],
                          input=text, capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    return (lines[0] if lines else proc.stderr.strip()[:300]).replace("<stdin>", "")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.environ.get("MOE_BUILD", "build"))
    parser.add_argument("-j", type=int, default=2)
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    args = parser.parse_args()
    moe_opt = os.path.join(args.build, "bin", "moe-opt")
    names = args.pipelines.split(",")
    cases = [(label, builder.build_layer(layer)[0]) for label, layer in layers()]
    jobs = [(label, text, name) for label, text in cases for name in names]
    with ThreadPoolExecutor(args.j) as pool:
        results = list(pool.map(lambda job: run(moe_opt, job[1], PIPELINES[job[2]]), jobs))
    failures = {}
    for (label, _, name), error in zip(jobs, results):
        if error is not None:
            failures.setdefault(label, {})[name] = error
    for label, errors in failures.items():
        for name, error in errors.items():
            print(f"FAIL {name:9} {label}: {error}")
    disagree = [label for label, errors in failures.items() if len(errors) != len(names)]
    for name in names:
        accepted = sum(1 for label, _ in cases if name not in failures.get(label, {}))
        print(f"{name}: {accepted}/{len(cases)} accepted")
    print(f"pipelines disagree on {len(disagree)} layers")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
