"""Expert weights quantized to int8 with one f32 scale per output column
(moe-pack-expert-weights{storage=i8}, #moe.packed<storage = i8>): the pack
function quantizes exactly as reference.quantize_i8 does, whatever the data,
and the packed entry given f32 weights equals the f32 reference given the
dequantized weights, within the f32 tolerance (the tiles sum x * q in f32
and multiply by the scale once: only the order of roundings differs)."""

import re

import numpy as np
import pytest

from cases import layer_inputs
from layer_cases import LAYERS, _layer, layer_case_inputs
from moe_mlir import reference as R
from moe_mlir.policies import TokenChoice
from test_packed import check_stored, packed_compiler, run_cpu_pipeline

F32_LAYERS = [n for n in sorted(LAYERS) if n.endswith("-f32")]


@pytest.fixture(scope="module")
def compile_i8(tmp_path_factory):
    return packed_compiler(tmp_path_factory, storage="i8")


def _check_against_dequantized(fn, layer, inputs):
    check_stored(fn, layer, inputs, lambda w: R.dequantize_i8(*R.quantize_i8(w)))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", F32_LAYERS)
def test_i8_storage_matches_dequantized_reference(compile_i8, name, seed):
    """Every f32 layer of layer_cases.py (every policy, dynamic T, ties,
    empty experts, C > T) on two threads."""
    layer = LAYERS[name]
    fn = compile_i8(layer, threads=2)
    _check_against_dequantized(fn, layer, layer_case_inputs(layer, seed, salt=104729))


@pytest.mark.parametrize("tokens", [1, 7, 97, 250])
def test_i8_storage_six_row_tiles(compile_i8, tokens):
    """int8 panels on the host's kernel with blockable sizes (D = 64,
    H = 128: full panels, the tiles' row blocks, partial last tiles)."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=64, h=128)
    fn = compile_i8(layer, threads=2)
    _check_against_dequantized(fn, layer, layer_inputs(layer, np.random.default_rng(tokens),
                                                       "normal", tokens))


def test_i8_pack_quantizes_as_numpy(compile_i8):
    """The pack function's int8 values and scales are reference.quantize_i8's
    bit for bit, packed as linalg.pack packs them (zero padding): ties round
    to even, a zero column has scale 0, a NaN weight becomes -127 without
    poisoning its column's scale, an infinite one makes its column's scale
    infinite (its finite weights 0)."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_i8(layer, panel=16)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
    w = weights[0]  # [4, 24, 80]
    w[0, :, 0] = 0.0                        # a zero column
    w[0, :, 1] = 0.5                        # 127 / 127 * 0.5 ...
    w[0, 0, 1] = 127.0                      # ... scale 1: ties at x.5
    w[0, 1:6, 1] = [2.5, 3.5, -2.5, -0.5, 126.5]
    w[1, 3, 2] = np.nan
    w[2, 4, 3] = np.inf
    w[3, 5, 4] = -3e38
    packs = fn.pack(*weights)
    assert len(packs) == 2 * len(weights)
    for i, w in enumerate(weights):
        q, s = R.quantize_i8(w)
        e, k, n = w.shape
        panels = -(-n // 16)
        want_q = np.zeros((e, k, panels * 16), np.int8)
        want_q[:, :, :n] = q
        want_s = np.zeros((e, panels * 16), np.float32)
        want_s[:, :n] = s
        got_q, got_s = packs[2 * i], packs[2 * i + 1]
        assert got_q.dtype == np.int8 and got_q.shape == (e, panels, k, 16)
        assert got_s.dtype == np.float32 and got_s.shape == (e, panels, 16)
        np.testing.assert_array_equal(got_q, want_q.reshape(e, k, panels, 16).transpose(0, 2, 1, 3))
        np.testing.assert_array_equal(got_s, want_s.reshape(e, panels, 16))
    q, s = R.quantize_i8(weights[0])
    assert s[0, 0] == 0 and not q[0, :, 0].any()
    assert s[0, 1] == 1 and list(q[0, 1:6, 1]) == [2, 4, -2, 0, 126]
    assert q[1, 3, 2] == -127 and np.isfinite(s[1, 2])
    assert np.isinf(s[2, 3]) and q[2, 0, 3] == 0


def test_i8_storage_through_the_pipeline(tmp_path):
    """moe-cpu-pipeline{pack-weights=true packed-storage=i8} adds the same
    entries, whose tiles convert the int8 panels as vectors."""
    ok = run_cpu_pipeline(tmp_path, "pack-weights=true packed-storage=i8 threads=1")
    assert ok.returncode == 0, ok.stderr
    assert "_pack_weights(" in ok.stdout and "_packed(" in ok.stdout
    assert re.search(r"llvm.sitofp %\w+ : vector<\d+xi8> to vector<\d+xf32>", ok.stdout)


def test_i8_storage_on_the_gpu_mapping(compile_i8):
    """The GPU pipeline (emulated on the host) takes int8 packed weights:
    each expert's panels unpacked and dequantized to f32."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_i8(layer, pipeline="moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}")
    _check_against_dequantized(fn, layer, layer_inputs(layer, np.random.default_rng(3),
                                                       "normal", 19))
