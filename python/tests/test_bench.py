"""The benchmark runs end to end on a tiny shape (a smoke test; its
numbers are not checked -- performance is measured, never asserted)."""

import json

from moe_mlir import bench


def test_bench_quick(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["shapes"][0]["shape"] == "quick"
    assert data["shapes"][0]["max_abs_error"] < 1e-3
    assert data["blas_sgemm_GFLOPs"] > 0
