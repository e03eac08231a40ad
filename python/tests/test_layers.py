"""Whole MoE layers, compiled by moe-cpu-pipeline, against the NumPy
reference over random inputs: every policy, dynamic T, ties, huge logits,
experts that get no token, C > T, k = E, f32, f16 and bf16. The layers and
tolerances are in layer_cases.py."""

import os

import numpy as np
import pytest

import gpu_sweep
from cases import case_kind, layer_inputs, reference_layer, run_layer, token_count
from layer_cases import CASES_PER_LAYER, EDGE_LAYERS, LAYERS, TOLERANCE, _layer, check_layer
from moe_mlir import builder, runner
from moe_mlir.policies import ExpertChoice, Soft, TokenChoice

PIPELINES = {
    "fused": "moe-cpu-pipeline{results-to-out-params=false}",
    "reference": "moe-cpu-pipeline{fused=false results-to-out-params=false}",
    "fused-tile-3": "moe-cpu-pipeline{tile-rows=3 results-to-out-params=false}",
    "fused-threads-2": "moe-cpu-pipeline{threads=2 results-to-out-params=false}",
    # The launches of moe-gpu-pipeline, run as loops on the host.
    "gpu-emulated": "moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}",
    # 16-row tiles: f16/bf16 GEMMs that 16 x 8 x 16 divides become warp tiles.
    "gpu-emulated-16": "moe-gpu-emulation-pipeline{tile-rows=16}",
}


# Tiles of 3 rows (many partial tiles) and two threads on every third case.
CASES = [(name, pipeline, seed) for name in sorted(LAYERS) for pipeline in sorted(PIPELINES)
         for seed in range(CASES_PER_LAYER)
         if pipeline in ("fused", "reference") or seed % 3 == 0]


@pytest.mark.parametrize("name,pipeline,seed", CASES)
def test_layer_matches_reference(compiled, name, pipeline, seed):
    layer = LAYERS[name]
    check_layer(layer, compiled(builder.build_layer(layer), pipeline=PIPELINES[pipeline]), seed)


@pytest.mark.parametrize("policy", [TokenChoice(2, capacity_factor=1.0), TokenChoice(2),
                                    ExpertChoice(1.0), Soft(2)],
                         ids=["capacity", "dropless", "expert-choice", "soft"])
def test_static_token_count(compiled, policy):
    layer = _layer(policy, 4, "swiglu", "f32", tokens=12)
    fn = compiled(builder.build_layer(layer))
    for seed in range(4):
        check_layer(layer, fn, seed, tokens=12)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gpu_mapping_equals_reference_lowering_bit_for_bit(compiled, name, seed):
    """The GPU mapping (expert tiles, per-token combine), run on the host,
    computes every sum in the order the reference lowering does: the outputs
    are equal bit for bit, not just within tolerance. (On a GPU, activations
    use libdevice instead of libm; routing stays bit-identical.)"""
    layer = LAYERS[name]
    text = builder.build_layer(layer)
    reference = compiled(text, pipeline=PIPELINES["reference"])
    mapped = compiled(text, pipeline=PIPELINES["gpu-emulated"])
    rng = np.random.default_rng(31 * seed + 7)
    inputs = layer_inputs(layer, rng, case_kind(seed + 1), token_count(rng, seed + 1))
    np.testing.assert_array_equal(run_layer(mapped, layer, inputs),
                                  run_layer(reference, layer, inputs))


@pytest.mark.parametrize("pipeline", ["gpu-emulated", "gpu-emulated-16"])
@pytest.mark.parametrize("name", sorted(EDGE_LAYERS))
def test_gpu_mapping_of_one_token_or_one_expert(compiled, name, pipeline):
    """T = 1 (static) and E = 1, whose single-iteration loops the
    canonicalizer folds: the GPU mapping still runs all of the work on the
    device, and matches the reference."""
    layer = EDGE_LAYERS[name]
    fn = compiled(builder.build_layer(layer), pipeline=PIPELINES[pipeline])
    for seed in range(4):
        check_layer(layer, fn, seed)


@pytest.mark.parametrize("name", sorted(EDGE_LAYERS))
def test_gpu_mapping_of_one_token_or_one_expert_bit_for_bit(compiled, name):
    """The same layers through the GPU mapping and the reference lowering:
    equal bit for bit, as for the other layers."""
    layer = EDGE_LAYERS[name]
    text = builder.build_layer(layer)
    reference = compiled(text, pipeline=PIPELINES["reference"])
    mapped = compiled(text, pipeline=PIPELINES["gpu-emulated"])
    rng = np.random.default_rng(17)
    tokens = layer.tokens if layer.tokens is not None else 5
    inputs = layer_inputs(layer, rng, "ties", tokens)
    np.testing.assert_array_equal(run_layer(mapped, layer, inputs),
                                  run_layer(reference, layer, inputs))


# A single token or a single expert, every policy, f32 (the sweep in
# gpu_sweep.py covers f16/bf16 and more token counts).
SWEEP = [(label, layer) for label, layer in gpu_sweep.layers((1, 8), ("f32",), (1, None))
         if layer.experts == 1 or layer.tokens == 1]


LIBDEVICE = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"),
                         "nvvm", "libdevice", "libdevice.10.bc")


@pytest.mark.skipif(not os.path.exists(LIBDEVICE),
                    reason="no CUDA toolkit: moe-gpu-pipeline needs libdevice")
@pytest.mark.parametrize("label,layer", SWEEP, ids=[label for label, _ in SWEEP])
def test_gpu_pipelines_accept_the_same_layers(label, layer):
    """moe-gpu-pipeline and the emulation share one mapping: both accept
    every valid layer, with one token or one expert too."""
    text, _ = builder.build_layer(layer)
    moe_opt = str(runner.tool("moe-opt"))
    errors = {name: gpu_sweep.run(moe_opt, text, gpu_sweep.PIPELINES[name])
              for name in ("sm_80", "emulation")}
    assert errors == {"sm_80": None, "emulation": None}, errors


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_padded_weight_copies(compiled, dtype):
    """Rows of H = 1024 weights are 4 KiB apart (cache-set aliasing), so experts
    with at least 16 rows run on padded copies of their weights; both that
    path and the plain one (fewer rows) match the reference."""
    layer = _layer(TokenChoice(2, normalize=True), 4, "swiglu", dtype, d=16, h=1024)
    fn = compiled(builder.build_layer(layer),
                  pipeline="moe-cpu-pipeline{tile-rows=16 results-to-out-params=false}")
    for seed, tokens in ((1, 200), (2, 5)):
        check_layer(layer, fn, seed, tokens=tokens)


SPECIAL_LAYERS = ["mixtral-dropless-swiglu-f32", "capacity-priority-gelu-bf16",
                  "capacity-position-relu-f32", "deepseek-grouped-swiglu-f32",
                  "expert-choice-normalize-gelu-f32", "soft-gelu-f32"]


@pytest.mark.parametrize("pipeline", ["fused", "reference", "fused-threads-2", "gpu-emulated"])
@pytest.mark.parametrize("name", SPECIAL_LAYERS)
def test_special_token_values(compiled, name, pipeline):
    """Tokens holding NaN, +-Inf, 1e30, subnormals or -0.0 do not break the
    layer: it runs (no out-of-bounds access: the routing of every token is a
    valid layout), and every token whose row is finite gets the reference's
    output, with the NaN tokens competing for capacity exactly as the
    reference says (NaN ranks last)."""
    layer = LAYERS[name]
    fn = compiled(builder.build_layer(layer), pipeline=PIPELINES[pipeline])
    rng = np.random.default_rng(5)
    tokens = 23
    inputs = layer_inputs(layer, rng, "normal", tokens)
    x = inputs["x"]
    x[1] = np.nan
    x[4, 3] = np.inf
    x[6, 2] = -np.inf
    x[9] = 1e30
    x[12] = 1e-40  # subnormal (zero in bf16)
    x[15] = -0.0
    x[18, :5] = np.nan
    got = run_layer(fn, layer, inputs)
    with np.errstate(all="ignore"):
        want, _ = reference_layer(layer, inputs)
    assert got.shape == want.shape
    rows = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(want), axis=1)
    if not isinstance(layer.policy, Soft):
        assert rows.sum() >= tokens - 7
    scale = max(1.0, float(np.abs(want[rows]).max(initial=0.0)))
    err = float(np.abs(got[rows] - want[rows]).max(initial=0.0))
    assert err <= TOLERANCE[layer.dtype] * scale
