"""The benchmark runs end to end on a tiny shape, as users start it (a
subprocess: it may re-execute itself to fix OpenBLAS's kernel choice). A
smoke test: its numbers are not checked -- performance is measured, never
asserted -- only that the record holds what makes it readable."""

import json
import os
import subprocess
import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]


def test_bench_quick(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    # (Absolute: the benchmark runs in tmp_path.)
    env["MOE_BUILD"] = str(Path(env.get("MOE_BUILD", PYTHON_DIR.parent / "build")).resolve())
    proc = subprocess.run([sys.executable, "-m", "moe_mlir.bench", "--quick", "--threads", "1",
                           "--json", str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    machine = data["machine"]
    assert machine["cpu"]["model_name"]
    assert "corename" in machine["blas"]
    assert machine["llc_bytes"] is None or machine["llc_bytes"] > 0
    assert machine["blas_sgemm_GFLOPs"] > 0 and machine["stream_read_GBps"] > 0
    shape = data["shapes"][0]
    assert shape["shape"] == "quick"
    assert shape["fused_ms"] > 0
    assert shape["max_abs_error"] < 1e-3
    assert "fits_llc" in shape and shape["bound_ms"] > 0
    assert shape["blas_experts_ms"] > 0 and shape["blas_experts_frac_bound"] > 0


def test_getconf_caches():
    """Where sysfs has no cache entries (some VMs), the caches come from
    `getconf -a`; empty and zero sizes are left out."""
    sys.path.insert(0, str(PYTHON_DIR))
    from moe_mlir.bench_machine import getconf_caches
    text = """LEVEL1_ICACHE_SIZE                 32768
LEVEL1_ICACHE_LINESIZE             64
LEVEL1_DCACHE_SIZE                 49152
LEVEL2_CACHE_SIZE                  1048576
LEVEL3_CACHE_SIZE                  532676608
LEVEL3_CACHE_ASSOC                 0
LEVEL4_CACHE_SIZE
LEVEL4_CACHE_ASSOC                 0
"""
    assert getconf_caches(text) == [
        {"level": 1, "type": "Instruction", "size_bytes": 32768},
        {"level": 1, "type": "Data", "size_bytes": 49152},
        {"level": 2, "type": "Unified", "size_bytes": 1048576},
        {"level": 3, "type": "Unified", "size_bytes": 532676608},
    ]
    assert getconf_caches("LEVEL3_CACHE_SIZE 0\n") == []


def test_blas_experts_rows():
    """The sgemm peer runs each expert on as many rows as routing gave it:
    CSR offsets for dropless routing, the filled slots of [E, C] ids."""
    sys.path.insert(0, str(PYTHON_DIR))
    import numpy as np
    from moe_mlir import reference as R
    from moe_mlir.bench_blas import blas_experts, expert_rows
    from moe_mlir.policies import ExpertChoice, Layer, TokenChoice
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 4)).astype(np.float32)
    for policy in (TokenChoice(2, normalize=True), TokenChoice(2, capacity_factor=0.5),
                   ExpertChoice(1.0)):
        routing = R.route(logits, policy, 4)
        counts = expert_rows(routing, policy, 4)
        ids = np.asarray(routing[0])
        if isinstance(policy, TokenChoice) and policy.dropless:
            assert sum(counts) == 80
        else:
            assert counts == [int((row >= 0).sum()) for row in ids]
        layer = Layer(8, 16, 4, policy, "swiglu", "f32")
        weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
        run = blas_experts(layer, rng.standard_normal((40, 8)).astype(np.float32), weights,
                           routing)
        run()
