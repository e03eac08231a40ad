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
