"""Expert weights quantized to 4 bits, two per byte, with one f32 scale per
group of rows and column (moe-pack-expert-weights{storage=i4 group=G},
#moe.packed<storage = i4, group = G>): the pack function quantizes and
packs exactly as reference.quantize_i4 and reference.pack_i4 do, whatever
the data, and the packed entry given f32 weights equals the f32 reference
given the dequantized weights, within the f32 tolerance."""

import numpy as np
import pytest

from cases import layer_inputs
from layer_cases import LAYERS, _layer, layer_case_inputs
from moe_mlir import reference as R
from moe_mlir.policies import TokenChoice
from test_packed import check_stored, packed_compiler, run_cpu_pipeline

F32_LAYERS = [n for n in sorted(LAYERS) if n.endswith("-f32")]
# layer_cases.py's layers have D = 24 and H = 40: groups of 8 rows.
GROUP = 8


@pytest.fixture(scope="module")
def compile_i4(tmp_path_factory):
    return packed_compiler(tmp_path_factory, storage="i4", group=GROUP)


def _check_against_dequantized(fn, layer, inputs, group):
    check_stored(fn, layer, inputs,
                 lambda w: R.dequantize_i4(*R.quantize_i4(w, group), group))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", F32_LAYERS)
def test_i4_storage_matches_dequantized_reference(compile_i4, name, seed):
    """Every f32 layer of layer_cases.py (every policy, dynamic T, ties,
    empty experts, C > T) on two threads."""
    layer = LAYERS[name]
    fn = compile_i4(layer, threads=2)
    _check_against_dequantized(fn, layer, layer_case_inputs(layer, seed, salt=15485863), GROUP)


@pytest.mark.parametrize("group", [32, 64])
@pytest.mark.parametrize("tokens", [1, 7, 97, 250])
def test_i4_storage_six_row_tiles(compile_i4, tokens, group):
    """4-bit panels on the host's kernel with blockable sizes (D = 64,
    H = 128: full panels, row blocks, partial last tiles), Q4_0-sized
    groups (32) and larger ones."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=64, h=128)
    fn = compile_i4(layer, threads=2, group=group)
    _check_against_dequantized(fn, layer, layer_inputs(layer, np.random.default_rng(tokens),
                                                       "normal", tokens), group)


def test_i4_pack_quantizes_as_numpy(compile_i4):
    """The pack function's bytes and scales are reference.pack_i4 of
    reference.quantize_i4, bit for bit: ties round to even,
    a zero group has scale 0, a NaN weight becomes -8 without poisoning its
    group's scale, an infinite one makes its group's scale infinite."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_i4(layer, panel=16)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
    w = weights[0]  # [4, 24, 40]: groups of 8 rows
    w[0, 0:8, 0] = 0.0                                   # a zero group
    w[0, 0:8, 1] = [7.0, 2.5, 3.5, -2.5, -0.5, 6.5, -7.0, 0.4]  # scale 1: ties
    w[0, 0:8, 2] = [-8.0, 7.0, 0, 0, 0, 0, 0, 1.0]      # scale 8 / 7: -8 -> -7, 7 -> 6
    w[1, 3, 2] = np.nan
    w[2, 4, 3] = np.inf
    packs = fn.pack(*weights)
    assert len(packs) == 2 * len(weights)
    for i, w in enumerate(weights):
        want_bytes, want_scales = R.pack_i4(*R.quantize_i4(w, GROUP), 16)
        np.testing.assert_array_equal(packs[2 * i], want_bytes)
        np.testing.assert_array_equal(packs[2 * i + 1], want_scales)
    v, s = R.quantize_i4(weights[0], GROUP)
    assert s[0, 0, 0] == 0 and not v[0, 0:8, 0].any()
    assert s[0, 0, 1] == 1 and list(v[0, 0:8, 1]) == [7, 2, 4, -2, 0, 6, -7, 0]
    assert v[1, 3, 2] == -8 and np.isfinite(s[1, 0, 2])
    assert np.isinf(s[2, 0, 3])


def test_i4_storage_through_the_pipeline(tmp_path):
    """moe-cpu-pipeline{pack-weights=true packed-storage=i4 packed-group=8}
    adds the same entries; a group that does not divide K is refused."""
    ok = run_cpu_pipeline(tmp_path, "pack-weights=true packed-storage=i4 packed-group=8 threads=1")
    assert ok.returncode == 0, ok.stderr
    assert "_pack_weights(" in ok.stdout and "_packed(" in ok.stdout
    bad = run_cpu_pipeline(tmp_path, "pack-weights=true packed-storage=i4 packed-group=32")
    assert bad.returncode != 0
    assert "needs K divisible by the group" in bad.stderr


def test_i4_storage_on_the_gpu_mapping(compile_i4):
    """The GPU pipeline (emulated on the host) takes 4-bit packed weights:
    each expert's slice unpacked and dequantized to f32."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_i4(layer, pipeline="moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}")
    _check_against_dequantized(fn, layer, layer_inputs(layer, np.random.default_rng(3),
                                                       "normal", 19), GROUP)
