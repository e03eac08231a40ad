"""The CPU codegen's f32 exp (upstream's polynomial, which replaces libm's
expf so that elementwise expert bodies vectorize) against exp in f64: the
accuracy the docs state, and the special values exactly."""

import numpy as np

from moe_mlir import runner
from moe_mlir.builder import ArgSpec, Signature

EXP = """func.func @exp(%x: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %e = tensor.empty(%n) : tensor<?xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                       iterator_types = ["parallel"]}
      ins(%x : tensor<?xf32>) outs(%e : tensor<?xf32>) {
  ^bb0(%a: f32, %unused: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  return %y : tensor<?xf32>
}
"""
SIG = Signature("exp", [ArgSpec("x", ("N",), "f32")], [ArgSpec("y", ("N",), "f32")])
TINY = np.finfo(np.float32).tiny


def test_exp_accuracy_and_special_values(compiled):
    fn = compiled((EXP, SIG))
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-104, 89, 1_000_003, dtype=np.float32),
                        rng.uniform(-20, 20, 100_000).astype(np.float32)])
    y = fn(x)
    exact = np.exp(x.astype(np.float64))
    normal = (exact > TINY) & (exact < np.finfo(np.float32).max)
    rel = np.abs(y[normal] - exact[normal]) / exact[normal]
    # Measured 3.2e-7 (5 ulp at most, near the overflow threshold).
    assert rel.max() < 4e-7, rel.max()
    # Results below the smallest normal f32 are flushed to zero.
    assert np.all(np.abs(y[exact <= TINY]) <= TINY)
    with np.errstate(over="ignore"):
        assert np.all(np.isinf(y[exact >= np.finfo(np.float32).max]))
    special = np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.8, -110.0])
    got = fn(special)
    assert got[0] == np.inf and got[1] == 0.0 and np.isnan(got[2])
    assert got[3] == 1.0 and got[4] == 1.0 and got[5] == np.inf and got[6] == 0.0


def test_exp_is_not_libm(tmp_path):
    # The shared library calls no expf: the polynomial replaced it.
    lib = runner.compile_module(EXP, tmp_path)
    assert "@llvm.exp" not in (tmp_path / "layer.ll").read_text()
    assert lib.exists()
