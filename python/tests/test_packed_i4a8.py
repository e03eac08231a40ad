"""4-bit weights with int8 rows (moe-pack-expert-weights{storage=i4
group=G activations=i8}, #moe.packed<..., activations = i8>, GGUF's Q8_0 x
Q4_0): the pack function stores reference.pack_i4's bytes with codes v + 8
and rows interleaved four by four (reference.pack_i4_for_int8_rows), and
the packed entry equals the f32 reference given the dequantized weights and
each contraction's left-hand side quantized as reference.quantize_rows_i8
does, on every integer dot product the code generator has (vpdpbusd,
vpmaddubsw on AVX-512BW and AVX2, generic vectors) that the host runs.

Tolerance: the integer sums are exact and the scales are applied in f32,
so the error is the f32 one, except where a hidden value computed in f32
lands on a rounding tie of its int8 code differently from NumPy's: one code
step (1/254 of its group's largest) times a weight, about 1e-3 of the
output's scale; 5e-3 is that with a margin. A wrong code, offset or scale
moves the output by tens of percent."""

import numpy as np
import pytest

from cases import layer_inputs, run_layer
from layer_cases import LAYERS, _layer, layer_case_inputs
from moe_mlir import reference as R
from moe_mlir import runner
from moe_mlir.policies import TokenChoice
from test_packed import Repacking, check_pipeline_options, packed_compiler

F32_LAYERS = [n for n in sorted(LAYERS) if n.endswith("-f32")]
# layer_cases.py's layers have D = 24 and H = 40: groups of 8 rows.
GROUP = 8
TOLERANCE = 5e-3


@pytest.fixture(scope="module")
def compile_a8(tmp_path_factory):
    return packed_compiler(tmp_path_factory, storage="i4", group=GROUP, activations="i8")


def check_int8_rows(fn, layer, inputs, group, weights=None, call=Repacking):
    """`call(fn)` on `inputs` against the reference with int8 rows, given
    `weights` (default: the inputs' weights quantized to 4 bits)."""
    got = run_layer(call(fn), layer, inputs)
    if weights is None:
        weights = [R.dequantize_i4(*R.quantize_i4(w, group), group) for w in inputs["weights"]]
    want, _ = R.layer_forward(layer, inputs["x"], inputs["router"], weights, inputs.get("bias"),
                              inputs.get("scale"), lhs=lambda a: R.quantize_rows_i8(a, group))
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= TOLERANCE * scale, f"max error {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("name", F32_LAYERS)
def test_int8_rows_match_the_reference(compile_a8, name):
    """Every f32 layer of layer_cases.py (every policy, dynamic T, ties,
    empty experts, C > T) on two threads."""
    layer = LAYERS[name]
    fn = compile_a8(layer, threads=2)
    check_int8_rows(fn, layer, layer_case_inputs(layer, 0, salt=104729), GROUP)


def _host_has(*flags):
    text = open("/proc/cpuinfo").read()
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    return all(f in line.split() for f in flags)


# The code generator's integer dot products, by the CPU it compiles for:
# the host's, then each other one the host can run.
TARGETS = [None, ("skylake-avx512", ("avx512bw",)), ("haswell", ("avx2",)), ("x86-64", ())]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t[0] if t else "native")
@pytest.mark.parametrize("group", [32, 64])
def test_int8_rows_on_each_target(compile_a8, target, group):
    """Blockable sizes (D = 64, H = 128: full panels, row blocks, partial
    last tiles) for decode (1, 7 tokens) and prefill (97, 250) tiles."""
    if target and not _host_has(*target[1]):
        pytest.skip(f"the host cannot run code for {target[0]}")
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=64, h=128)
    options = {}
    if target:
        options = dict(pipeline=runner.cpu_pipeline(2, target_cpu=target[0]), march=target[0])
    fn = compile_a8(layer, threads=2, group=group, **options)
    for tokens in (1, 7, 97, 250):
        check_int8_rows(fn, layer, layer_inputs(layer, np.random.default_rng(tokens), "normal",
                                                tokens), group)


def test_int8_rows_pack_as_numpy(compile_a8):
    """The pack function's bytes are pack_i4_for_int8_rows of pack_i4 of
    quantize_i4, bit for bit, and its scales those of pack_i4."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_a8(layer, panel=16)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
    weights[0][1, 3, 2] = np.nan
    packs = fn.pack(*weights)
    for i, w in enumerate(weights):
        data, scales = R.pack_i4(*R.quantize_i4(w, GROUP), 16)
        np.testing.assert_array_equal(packs[2 * i], R.pack_i4_for_int8_rows(data))
        np.testing.assert_array_equal(packs[2 * i + 1], scales)


def test_int8_rows_quantize_as_documented():
    """quantize_rows_i8: ties to even, a zero group stays zero, a NaN is
    -127 without poisoning its group's scale."""
    x = np.zeros((2, 8), np.float32)
    x[0, :4] = [127.0, 0.5, 1.5, -2.5]
    x[1, 0] = np.nan
    x[1, 1] = 254.0
    q = R.quantize_rows_i8(x, 4)
    assert list(q[0, :4]) == [127.0, 0.0, 2.0, -2.0] and not q[0, 4:].any()
    assert q[1, 0] == -254.0 and q[1, 1] == 254.0


def test_int8_rows_on_the_gpu_mapping(compile_a8):
    """The GPU pipeline (emulated on the host) runs the contractions on
    unpacked weights: their left-hand sides are the int8 rows' values."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_a8(layer, pipeline="moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}")
    check_int8_rows(fn, layer, layer_inputs(layer, np.random.default_rng(3), "normal", 19), GROUP)


def test_int8_rows_through_the_pipeline(tmp_path):
    """moe-cpu-pipeline{... packed-activations=i8} adds the same entries;
    int8 rows without 4-bit weights, or with groups of rows that are not
    whole runs of four, are refused."""
    check_pipeline_options(
        tmp_path, "pack-weights=true packed-storage=i4 packed-group=8 packed-activations=i8 "
        "threads=1", ["_pack_weights(", "_packed("],
        ["pack-weights=true packed-storage=i8 packed-activations=i8",
         "pack-weights=true packed-storage=i4 packed-group=6 packed-activations=i8"],
        "packed-activations must be f32, or i8 with packed-storage=i4")
