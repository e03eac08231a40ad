"""Scales of quantized weights stored as f16 (moe-pack-expert-weights{...
scales=f16}, #moe.packed<..., scales = f16>): the pack function computes
the codes with the f32 scale and rounds the scale to nearest even f16
(reference.round_f16), bit for bit; every kernel that reads the scales
(int8 panels, 4-bit panels with f32 or int8 rows, the reference lowering)
widens them exactly, so the packed entry equals the f32 reference given the
weights dequantized with the f16 scales. With 4-bit groups of 32 and int8
rows it runs GGUF Q4_0 blocks as they are (reference.from_q4_0).

Tolerances: those of each format's own tests (f32 rounding; 5e-3 of the
output's scale with int8 rows, see test_packed_i4a8.py)."""

import numpy as np
import pytest

from cases import layer_inputs
from layer_cases import LAYERS, _layer, layer_case_inputs
from moe_mlir import reference as R
from moe_mlir import runner
from moe_mlir.policies import TokenChoice
from test_packed import check_pipeline_options, check_stored, packed_compiler
import test_packed_i4a8
from test_packed_i4a8 import _host_has

# layer_cases.py's layers have D = 24 and H = 40: groups of 8 rows.
GROUP = 8
LAYER_NAMES = ["mixtral-dropless-swiglu-f32", "expert-choice-C>T-relu-f32",
               "capacity-sigmoid-silu-f32"]


@pytest.fixture(scope="module")
def compile_f16(tmp_path_factory):
    return packed_compiler(tmp_path_factory, scales="f16")


def i4_stored(group):
    def stored(w):
        v, s = R.quantize_i4(w, group)
        return R.dequantize_i4(v, R.round_f16(s), group)
    return stored


def i8_stored(w):
    q, s = R.quantize_i8(w)
    return R.dequantize_i8(q, R.round_f16(s))


class Preloaded:
    """Calls a PackedLayer whose packed weights were loaded (load_packed)
    as the unpacked entry is called, leaving the weights out."""

    def __init__(self, layer):
        self.layer, self.signature = layer, layer.signature

    def __call__(self, *arrays):
        positions = self.layer.weight_positions
        return self.layer(*[a for i, a in enumerate(arrays) if i not in positions])


def check_int8_rows(fn, layer, inputs, group, weights=None):
    """`fn` (packing each call's weights with f16 scales, or with `weights`
    the ones it has loaded) against the reference with int8 rows."""
    if weights is None:
        test_packed_i4a8.check_int8_rows(fn, layer, inputs, group,
                                         [i4_stored(group)(w) for w in inputs["weights"]])
    else:
        test_packed_i4a8.check_int8_rows(fn, layer, inputs, group, weights, call=Preloaded)


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("storage", ["i8", "i4", "i4a8"])
def test_f16_scales_match_the_reference(compile_f16, storage, name):
    """Each quantized format with f16 scales, on layers of three policies
    (dynamic T, empty experts, C > T), two threads."""
    layer = LAYERS[name]
    inputs = layer_case_inputs(layer, 0, salt=7919)
    if storage == "i4a8":
        fn = compile_f16(layer, threads=2, storage="i4", group=GROUP, activations="i8")
        check_int8_rows(fn, layer, inputs, GROUP)
    elif storage == "i4":
        fn = compile_f16(layer, threads=2, storage="i4", group=GROUP)
        check_stored(fn, layer, inputs, i4_stored(GROUP))
    else:
        fn = compile_f16(layer, threads=2, storage="i8")
        check_stored(fn, layer, inputs, i8_stored)


@pytest.mark.parametrize("target", [None, "haswell"], ids=lambda t: t or "native")
def test_f16_scales_on_each_kernel(compile_f16, target):
    """Blockable sizes (D = 64, H = 128), groups of 32, decode and prefill
    tiles: the int8-row kernel's epilogue in registers (vcvtph2ps) on the
    host's kernel and the AVX2 one."""
    if target and not _host_has("avx2"):
        pytest.skip(f"the host cannot run code for {target}")
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=64, h=128)
    options = {}
    if target:
        options = dict(pipeline=runner.cpu_pipeline(2, target_cpu=target), march=target)
    fn = compile_f16(layer, threads=2, storage="i4", group=32, activations="i8", **options)
    for tokens in (1, 7, 97):
        check_int8_rows(fn, layer, layer_inputs(layer, np.random.default_rng(tokens), "normal",
                                                tokens), 32)


def test_f16_scales_pack_as_numpy(compile_f16):
    """The scales are round_f16 of the f32 ones, bit for bit, and the codes
    those of the f32 scale; a scale past f16's range is infinite, one below
    its smallest subnormal zero."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
    w = weights[0]  # [4, 24, 40]: groups of 8 rows
    w[0, 0:8, 0] = 1e6       # scale 1e6 / 7: past 65504
    w[0, 0:8, 1] = 1e-9      # scale 1.4e-10: below 2^-24
    w[1, 0:8, 2] = 7 * 1.0009765625  # a scale that f16 holds exactly
    w[1, 0:8, 3] = 7 * (1 + 2 ** -11)  # a tie: rounds to even (1.0)
    fn = compile_f16(layer, panel=16, storage="i4", group=GROUP, activations="i8")
    packs = fn.pack(*weights)
    for i, w in enumerate(weights):
        v, s = R.quantize_i4(w, GROUP)
        data, scales = R.pack_i4(v, R.round_f16(s), 16)
        assert packs[2 * i + 1].dtype == np.float16
        np.testing.assert_array_equal(packs[2 * i], R.pack_i4_for_int8_rows(data))
        np.testing.assert_array_equal(packs[2 * i + 1].view(np.uint16), scales.view(np.uint16))
    scales = packs[1]  # [E, P', K / G, 16]
    assert np.isinf(scales[0, 0, 0, 0]) and scales[0, 0, 0, 1] == 0
    assert scales[1, 0, 0, 2] == np.float16(1.0009765625) and scales[1, 0, 0, 3] == 1.0
    fn8 = compile_f16(layer, panel=16, storage="i8")
    packs = fn8.pack(*weights)
    for i, w in enumerate(weights):
        q, s = R.quantize_i8(w)
        want = np.zeros((w.shape[0], -(-w.shape[2] // 16) * 16), np.float16)
        want[:, :w.shape[2]] = R.round_f16(s)
        np.testing.assert_array_equal(packs[2 * i + 1].reshape(want.shape).view(np.uint16),
                                      want.view(np.uint16))


def test_q4_0_blocks_run_as_they_are(compile_f16):
    """GGUF Q4_0 bytes (random codes and f16 scales) converted with
    reference.from_q4_0 and packed without requantizing (load_packed): the
    layer equals the reference on the weights the blocks stand for, and
    to_q4_0 gives the same bytes back."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=64, h=128)
    rng = np.random.default_rng(5)
    weights, packs = [], []
    for e, k, n in layer.weight_shapes():
        values, scales = [], []
        for _ in range(e):
            blocks = rng.integers(0, 256, (n, k // 32 * 18), dtype=np.uint8)
            d = (rng.uniform(0.5, 1.5, (n, k // 32)) / 8 / np.sqrt(k)).astype(np.float16)
            blocks.reshape(n, k // 32, 18)[..., :2] = d[..., None].view(np.uint8)
            v, s = R.from_q4_0(blocks, k)
            np.testing.assert_array_equal(R.to_q4_0(v, s), blocks)
            values.append(v)
            scales.append(s)
        v, s = np.stack(values), np.stack(scales)
        weights.append(R.dequantize_i4(v, s, 32))
        data, packed_scales = R.pack_i4(v, s, 64)
        packs += [R.pack_i4_for_int8_rows(data), packed_scales]
    fn = compile_f16(layer, panel=64, threads=2, storage="i4", group=32, activations="i8")
    fn.load_packed(*packs)
    for tokens in (1, 9, 70):
        inputs = layer_inputs(layer, np.random.default_rng(tokens), "normal", tokens)
        check_int8_rows(fn, layer, inputs, 32, weights=weights)
    with pytest.raises(ValueError, match="must have shape"):
        fn.load_packed(*packs[:-1], packs[-1][..., :8])
    with pytest.raises(TypeError, match="float16"):
        fn.load_packed(*packs[:-1], packs[-1].astype(np.float32))
    with pytest.raises(ValueError, match="not a whole number of rows"):
        R.from_q4_0(np.zeros(17, np.uint8), 32)


def test_f16_scales_on_the_gpu_mapping(compile_f16):
    """The GPU pipeline (emulated on the host) reads the weights back in
    the plain layout, its scales widened from f16."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_f16(layer, storage="i4", group=GROUP, activations="i8",
                     pipeline="moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}")
    check_int8_rows(fn, layer, layer_inputs(layer, np.random.default_rng(3), "normal", 19), GROUP)


def test_f16_scales_through_the_pipeline(tmp_path):
    """moe-cpu-pipeline{... packed-scales=f16} adds the same entries, with
    f16 scales; f16 scales of weights that have none are refused."""
    check_pipeline_options(
        tmp_path, "pack-weights=true packed-storage=i4 packed-group=8 packed-activations=i8 "
        "packed-scales=f16 threads=1", ["xf16>", "llvm.fpext"],
        ["pack-weights=true packed-storage=bf16 packed-scales=f16",
         "pack-weights=true packed-storage=i8 packed-scales=bf16"],
        "packed-scales must be f32, or f16 with packed-storage=i8 or i4")
