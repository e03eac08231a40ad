"""Layers compiled with packed expert weights (moe-pack-expert-weights,
#moe.packed): the packed entry matches the NumPy reference on every layer of
layer_cases.py (every policy, f32/f16/bf16, dynamic T, ties, empty experts,
C > T), the pack function writes exactly linalg.pack's layout, and a panel
that does not divide N pads with zeros. With storage=bf16 the packed
entry equals the reference run on the weights rounded to bf16, within the
f32 tolerance, and the pack function rounds to nearest even by the bits."""

import numpy as np
import pytest

from cases import layer_inputs, reference_layer, run_layer
from layer_cases import LAYERS, TOLERANCE, _layer, check_layer, layer_case_inputs
from moe_mlir import builder, packed, runner
from moe_mlir import reference as R
from moe_mlir.policies import TokenChoice


class Repacking:
    """Calls a PackedLayer as the unpacked entry is called (weights last),
    packing the weights of each call: check_layer's cases draw new ones."""

    def __init__(self, layer):
        self.layer, self.signature = layer, layer.signature

    def __call__(self, *arrays):
        positions = self.layer.weight_positions
        self.layer.prepare(*[arrays[i] for i in positions])
        return self.layer(*[a for i, a in enumerate(arrays) if i not in positions])


def packed_compiler(tmp_path_factory, **fixed):
    """get(layer, panel=None, threads=1, **options) -> the layer compiled by
    packed.compile_packed with `fixed` and `options`, once per module."""
    cache = {}

    def get(layer, panel=None, threads=1, **kwargs):
        kwargs = {**fixed, **kwargs}
        key = (repr(layer), panel, threads, tuple(sorted(kwargs.items())))
        if key not in cache:
            text, sig = builder.build_layer(layer)
            cache[key] = packed.compile_packed(text, sig, tmp_path_factory.mktemp("packed"),
                                               panel=panel, threads=threads, **kwargs)
        return cache[key]

    return get


def check_stored(fn, layer, inputs, stored):
    """The packed layer `fn` on `inputs` equals the f32 reference given the
    weights as their format stores them (`stored(w)`), within the f32
    tolerance."""
    got = run_layer(Repacking(fn), layer, inputs)
    inputs = dict(inputs, weights=[stored(w) for w in inputs["weights"]])
    want, _ = reference_layer(layer, inputs)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= TOLERANCE["f32"] * scale, f"max error {err:.3g} (scale {scale:.3g})"


@pytest.fixture(scope="module")
def compile_packed(tmp_path_factory):
    return packed_compiler(tmp_path_factory)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_packed_layer_matches_reference(compile_packed, name, seed):
    layer = LAYERS[name]
    check_layer(layer, Repacking(compile_packed(layer)), seed)


@pytest.mark.parametrize("name", [n for n in sorted(LAYERS) if "f32" in n][::3])
def test_packed_layer_two_threads(compile_packed, name):
    """Two threads: the column panels of a tile are parallel loops, and the
    gate and up projections' panels one merged loop
    (moe-merge-sibling-foralls)."""
    layer = LAYERS[name]
    check_layer(layer, Repacking(compile_packed(layer, threads=2)), 0)


def _host_has(flag, cpuinfo="/proc/cpuinfo"):
    with open(cpuinfo) as f:
        return any(flag in line.split() for line in f if line.startswith("flags"))


@pytest.mark.parametrize("cpu,panel", [
    ("haswell", 16),
    pytest.param("skylake-avx512", 64, marks=pytest.mark.skipif(
        not _host_has("avx512f"), reason="AVX-512 code needs an AVX-512 host")),
])
@pytest.mark.parametrize("tile_rows", [None, 64])
@pytest.mark.parametrize("tokens", [1, 7, 40, 97, 250])
def test_packed_layer_six_row_kernel(compile_packed, tokens, tile_rows, cpu, panel):
    """The 6-row micro-kernels (target-cpu=haswell: 6 x 16, skylake-avx512:
    6 x 64; default tiles of 96 rows) on row counts around their blocks and
    tiles: rest rows of a 6-row block, an expert past one tile, and
    tile-rows=64, which 6 does not divide (4-row blocks)."""
    options = {"target-cpu": cpu}
    if tile_rows:
        options["tile-rows"] = tile_rows
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=40, h=48)
    fn = compile_packed(layer, panel=panel, threads=2, march=cpu,
                        pipeline=runner.cpu_pipeline(2, **options))
    for seed in range(2):
        check_layer(layer, Repacking(fn), seed, tokens=tokens)


@pytest.mark.parametrize("panel", [8, 16, 64])
def test_panels_that_pad(compile_packed, panel):
    """H = 40, D = 24: panels of 16 and 64 leave zero columns at the end."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_packed(layer, panel=panel, threads=2)
    for seed in range(3):
        check_layer(layer, Repacking(fn), seed)


def test_pack_is_linalg_pack(compile_packed):
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_packed(layer, panel=16)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
    for w, p in zip(weights, fn.pack(*weights)):
        e, k, n = w.shape
        panels = -(-n // 16)
        want = np.zeros((e, k, panels * 16), np.float32)
        want[:, :, :n] = w
        want = want.reshape(e, k, panels, 16).transpose(0, 2, 1, 3)
        assert p.shape == (e, panels, k, 16)
        np.testing.assert_array_equal(p, want)


def test_unpacked_entry_still_works(compile_packed):
    layer = LAYERS["mixtral-dropless-swiglu-f32"]
    check_layer(layer, compile_packed(layer).unpacked, 0)


def test_prepare_first_and_argument_counts(compile_packed):
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_packed(layer)
    fresh = packed.PackedLayer(fn.unpacked.library, fn.signature, fn.weight_positions,
                               fn._pack.signature, fn._packed.signature)
    x = np.zeros((3, 24), np.float32)
    router = np.zeros((24, 4), np.float32)
    with pytest.raises(RuntimeError, match=r"call prepare\(w_gate, w_up, w_down\) first"):
        fresh(x, router)
    with pytest.raises(TypeError, match="pack takes the 3 weights"):
        fresh.prepare(x)
    weights = [np.zeros(s, np.float32) for s in layer.weight_shapes()]
    fresh.prepare(*weights)
    with pytest.raises(TypeError, match=r"takes 2 arrays \(x, router\), got 1"):
        fresh(x)
    np.testing.assert_array_equal(fresh(x, router), np.zeros((3, 24), np.float32))


def test_nothing_to_pack_is_an_error(tmp_path):
    text = """
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  return %x : tensor<4x8xf32>
}
"""
    sig = builder.Signature("f", [builder.ArgSpec("x", (4, 8), "f32")],
                            [builder.ArgSpec("y", (4, 8), "f32")])
    with pytest.raises(runner.CompileError, match="found no expert weight of @f to pack"):
        packed.compile_packed(text, sig, tmp_path)


def test_default_panel_follows_the_table(tmp_path):
    def panel(flags):
        info = tmp_path / "cpuinfo"
        info.write_text("processor : 0\nflags : " + " ".join(flags) + "\n")
        return packed.default_panel(str(info))
    assert panel(["sse2", "avx2", "fma", "avx512f"]) == 64
    assert panel(["sse2", "avx2", "fma"]) == 16
    assert panel(["sse2", "avx"]) == 8


def test_packed_weights_are_aligned(compile_packed):
    """The micro-kernel reads packed panels a vector register at a time: the
    runner returns them 64-byte aligned (NumPy's arrays start 16 bytes past a
    cache line, which splits every load in two)."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_packed(layer, panel=16)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
    for p in fn.prepare(*weights).packed_weights:
        assert p.ctypes.data % runner.ALIGNMENT == 0
        assert p.flags.c_contiguous


@pytest.mark.parametrize("shape", [(0,), (3, 5), (7, 1, 3)])
def test_aligned_empty(shape):
    a = runner.aligned_empty(shape, np.float32)
    assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.ctypes.data % 64 == 0 or a.size == 0


# Layers with f32 weights (the ones bf16 storage narrows).
F32_LAYERS = [n for n in sorted(LAYERS) if n.endswith("-f32")]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", F32_LAYERS)
def test_bf16_storage_matches_reference(compile_packed, name, seed):
    """storage=bf16: the only rounding is the weights' own (each weight
    widened back exactly, f32 accumulation), so the packed entry given the
    f32 weights equals the f32 reference given the weights rounded to bf16,
    within the f32 tolerance."""
    layer = LAYERS[name]
    fn = compile_packed(layer, threads=2, storage="bf16")
    check_stored(fn, layer, layer_case_inputs(layer, seed), R.round_bf16)


@pytest.mark.parametrize("tokens", [1, 7, 97, 250])
def test_bf16_storage_six_row_tiles(compile_packed, tokens):
    """bf16 panels on the host's kernel with blockable sizes (D = 64,
    H = 128: full panels, the tiles' row blocks and the prefetch)."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=64, h=128)
    fn = compile_packed(layer, threads=2, storage="bf16")
    check_stored(fn, layer, layer_inputs(layer, np.random.default_rng(tokens), "normal", tokens),
                 R.round_bf16)


def test_bf16_pack_rounds_by_the_bits(compile_packed):
    """The pack function's bf16 values are the f32 weights rounded to
    nearest even (ties to even, up to inf past the largest bf16), subnormals
    kept, a NaN the quiet NaN of its sign, packed as linalg.pack would."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_packed(layer, panel=16, storage="bf16")
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in layer.weight_shapes()]
    special = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x7F7FFFFF, 0x00000001,
                        0x80400000, 0x7F800000, 0xFF800000, 0x7F800001, 0xFFC00001,
                        0x00000000, 0x80000000], np.uint32).view(np.float32)
    weights[0].reshape(-1)[:special.size] = special
    want_special = np.array([0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x0000, 0x8040, 0x7F80,
                             0xFF80, 0x7FC0, 0xFFC0, 0x0000, 0x8000], np.uint16)
    packs = fn.pack(*weights)
    for w, p in zip(weights, packs):
        e, k, n = w.shape
        panels = -(-n // 16)
        bits = R.to_bf16_bits(w)
        nan = np.isnan(w)
        bits[nan] = (0x7FC0 | ((w[nan].view(np.uint32) >> 16) & 0x8000)).astype(np.uint16)
        want = np.zeros((e, k, panels * 16), np.uint16)
        want[:, :, :n] = bits
        want = want.reshape(e, k, panels, 16).transpose(0, 2, 1, 3)
        assert p.dtype == np.uint16 and p.shape == (e, panels, k, 16)
        np.testing.assert_array_equal(p, want)
    first = packs[0].reshape(-1)[:special.size]  # row 0 of panel 0 of expert 0
    np.testing.assert_array_equal(first, want_special)


def run_cpu_pipeline(tmp_path, options):
    """moe-opt --moe-cpu-pipeline=<options> on a small f32 layer."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    text, _ = builder.build_layer(layer)
    src = tmp_path / "layer.mlir"
    src.write_text(text)
    return runner.subprocess.run([runner.tool("moe-opt"), str(src), f"--moe-cpu-pipeline={options}"],
                                 capture_output=True, text=True)


def check_pipeline_options(tmp_path, good, produces, bad, message):
    """moe-cpu-pipeline with the options `good` succeeds and its output
    contains each of `produces`; each options string of `bad` fails with
    `message`."""
    ok = run_cpu_pipeline(tmp_path, good)
    assert ok.returncode == 0, ok.stderr
    assert all(text in ok.stdout for text in produces)
    for options in bad:
        refused = run_cpu_pipeline(tmp_path, options)
        assert refused.returncode != 0
        assert message in refused.stderr


def test_bf16_storage_through_the_pipeline(tmp_path):
    """moe-cpu-pipeline{pack-weights=true packed-storage=bf16} adds the
    same entries; another storage is refused when the pipeline is parsed."""
    ok = run_cpu_pipeline(tmp_path, "pack-weights=true packed-storage=bf16 threads=1")
    assert ok.returncode == 0, ok.stderr
    assert "bf16" in ok.stdout
    bad = run_cpu_pipeline(tmp_path, "packed-storage=f8")
    assert bad.returncode != 0
    assert "packed-storage must be f32, bf16, i8 or i4, got 'f8'" in bad.stderr


def test_bf16_storage_on_the_gpu_mapping(compile_packed):
    """The GPU pipeline (emulated on the host) takes bf16 packed weights:
    each expert's panels unpacked and widened to f32."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32")
    fn = compile_packed(layer, storage="bf16",
                        pipeline="moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}")
    check_stored(fn, layer, layer_inputs(layer, np.random.default_rng(3), "normal", 19),
                 R.round_bf16)
