"""The runner rejects bad arrays with Python exceptions before any native
code runs, and reports compile failures with the tool's diagnostics."""

import numpy as np
import pytest

from moe_mlir import builder, runner
from moe_mlir.policies import Layer, TokenChoice

LAYER = Layer(8, 16, 4, TokenChoice(2), "relu", "f32")
BF16 = Layer(8, 16, 4, TokenChoice(2), "relu", "bf16")


def _args(layer, tokens=5, dtype=np.float32):
    x = np.zeros((tokens, layer.model_dim), dtype)
    router = np.zeros((layer.model_dim, layer.experts), dtype)
    return [x, router] + [np.zeros(s, dtype) for s in layer.weight_shapes()]


def test_good_call_returns_the_output_shape(compiled):
    fn = compiled(builder.build_layer(LAYER))
    assert fn(*_args(LAYER)).shape == (5, 8)


def test_wrong_dtype(compiled):
    fn = compiled(builder.build_layer(LAYER))
    with pytest.raises(TypeError, match="argument 'x' must have dtype float32"):
        fn(*_args(LAYER, dtype=np.float64))


def test_bf16_wants_bits(compiled):
    fn = compiled(builder.build_layer(BF16))
    with pytest.raises(TypeError, match="bf16 values travel as uint16 bits"):
        fn(*_args(BF16))


def test_wrong_rank(compiled):
    fn = compiled(builder.build_layer(LAYER))
    args = _args(LAYER)
    args[0] = np.zeros((5, 8, 1), np.float32)
    with pytest.raises(ValueError, match="argument 'x' must have rank 2"):
        fn(*args)


def test_wrong_static_size(compiled):
    fn = compiled(builder.build_layer(LAYER))
    args = _args(LAYER)
    args[1] = np.zeros((8, 5), np.float32)
    with pytest.raises(ValueError, match=r"argument 'router' must have shape \(8, 4\)"):
        fn(*args)


def test_inconsistent_symbolic_size(compiled):
    text, sig = builder.build_route(TokenChoice(1, bias=True, n_group=1), 4)
    fn = compiled((text, sig))
    with pytest.raises(ValueError, match="argument 'bias' must have shape"):
        fn(np.zeros((3, 4), np.float32), np.zeros(5, np.float32))


def test_wrong_argument_count(compiled):
    fn = compiled(builder.build_layer(LAYER))
    with pytest.raises(TypeError, match="takes 4 arrays"):
        fn(*_args(LAYER)[:3])


def test_not_an_array(compiled):
    fn = compiled(builder.build_layer(LAYER))
    args = _args(LAYER)
    args[0] = [[0.0] * 8]
    with pytest.raises(TypeError, match="must be a numpy array"):
        fn(*args)


def test_compile_error_carries_the_diagnostic(tmp_path):
    bad = "func.func @f(%s: tensor<4x8xf32>) {\n  %0:2 = moe.route #moe.expert_choice<capacity_factor = 1.0> %s : tensor<4x8xf32> -> tensor<8x2xi32>, tensor<8x2xf32>\n  return\n}\n"
    with pytest.raises(runner.CompileError, match=r"result #0 \(token ids\) must be 'tensor<8x1xi32>'"):
        runner.compile_module(bad, tmp_path)
