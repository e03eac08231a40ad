"""The CPU codegen's matmuls outside the expert tiles (the router's logits,
[T, D] x [D, E] with T dynamic; CPURowMatmuls.cpp) against NumPy: full row
blocks, the peeled rest row by row, column counts narrower than a vector
register, and a column count no vector width divides (scalar loops)."""

import numpy as np
import pytest

from moe_mlir import runner
from moe_mlir.builder import ArgSpec, Signature

K = 96


def matmul(n):
    text = f"""func.func @logits(%x: tensor<?x{K}xf32>, %w: tensor<{K}x{n}xf32>) -> tensor<?x{n}xf32> {{
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x{K}xf32>
  %e = tensor.empty(%t) : tensor<?x{n}xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<?x{n}xf32>) -> tensor<?x{n}xf32>
  %y = linalg.matmul ins(%x, %w : tensor<?x{K}xf32>, tensor<{K}x{n}xf32>)
      outs(%z : tensor<?x{n}xf32>) -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
"""
    sig = Signature("logits", [ArgSpec("x", ("T", K), "f32"), ArgSpec("w", (K, n), "f32")],
                    [ArgSpec("y", ("T", n), "f32")])
    return text, sig


@pytest.mark.parametrize("n", [64, 48, 8, 4, 6])
@pytest.mark.parametrize("threads", [1, 2])
def test_dynamic_row_matmul(compiled, n, threads):
    fn = compiled(matmul(n), pipeline=runner.cpu_pipeline(threads))
    check_row_counts(fn, n)


@pytest.mark.parametrize("n", [64, 16, 8, 6])
def test_dynamic_row_matmul_avx2(tmp_path, n):
    """The AVX2 blocks (target-cpu=haswell): 6 x 16, and 12 x 8 for 8
    columns."""
    fn = runner.compile_function(*matmul(n), tmp_path, march="haswell",
                                 pipeline=runner.cpu_pipeline(1, target_cpu="haswell"))
    check_row_counts(fn, n)


def check_row_counts(fn, n):
    rng = np.random.default_rng(n)
    w = rng.standard_normal((K, n), dtype=np.float32)
    # Row counts around the register blocks' (4, 6, 12 and 16 rows): full
    # blocks, a rest of 1..15 rows, no rows.
    for t in [0, 1, 3, 4, 5, 6, 7, 11, 12, 13, 15, 16, 17, 37, 64]:
        x = rng.standard_normal((t, K), dtype=np.float32)
        got = fn(x, w)
        want = x.astype(np.float64) @ w.astype(np.float64)
        assert got.shape == (t, n)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=f"T={t}")


def test_router_matmul_is_vectorized(tmp_path):
    # The 64 columns are one vector FMA per row and reduction step (LLVM
    # splits it into the host's registers), not the scalar loop of
    # convert-linalg-to-loops.
    text, _ = matmul(64)
    runner.compile_module(text, tmp_path)
    ir = (tmp_path / "layer.ll").read_text()
    assert "@llvm.fmuladd.v64f32" in ir
