"""Whole MoE layers, compiled by moe-cpu-pipeline, against the NumPy
reference over random inputs: every policy, dynamic T, ties, huge logits,
experts that get no token, C > T, k = E, f32 and bf16.

Tolerances (max abs error over the output, scale = max(1, max |ref|)):
f32: 1e-4 * scale (matmul summation order differs from NumPy's BLAS);
f16: 5e-3 * scale (one f16 ulp is 2^-11 relative, same reasoning as bf16);
bf16: 2e-2 * scale (one bf16 ulp is 2^-8 relative; hidden activations are
rounded to bf16 on both sides but may round differently when the f32
values differ in their last bits)."""

import numpy as np
import pytest

from cases import case_kind, layer_inputs, reference_layer, run_layer, token_count
from moe_mlir import builder
from moe_mlir.policies import ExpertChoice, Layer, Soft, TokenChoice

CASES_PER_LAYER = 12
TOLERANCE = {"f32": 1e-4, "f16": 5e-3, "bf16": 2e-2}


def _layer(policy, experts, activation, dtype, tokens=None, d=24, h=40):
    return Layer(d, h, experts, policy, activation, dtype, tokens)


LAYERS = {
    "mixtral-dropless-swiglu-f32": _layer(TokenChoice(2, normalize=True), 8, "swiglu", "f32"),
    "mixtral-dropless-swiglu-bf16": _layer(TokenChoice(2, normalize=True), 8, "swiglu", "bf16"),
    "capacity-position-relu-f32": _layer(TokenChoice(2, capacity_factor=1.25), 4, "relu", "f32"),
    "capacity-priority-gelu-bf16": _layer(
        TokenChoice(2, capacity_factor=1.0, order="priority", normalize=True), 4, "gelu", "bf16"),
    "capacity-sigmoid-silu-f32": _layer(
        TokenChoice(3, capacity_factor=1.5, score="sigmoid", normalize=True,
                    routed_scaling_factor=2.5), 6, "silu", "f32"),
    "capacity-C>T-silu-f32": _layer(TokenChoice(2, capacity_factor=4.0), 4, "silu", "f32"),
    "dropless-k=E-relu-f32": _layer(TokenChoice(4), 4, "relu", "f32"),
    "deepseek-grouped-swiglu-f32": _layer(
        TokenChoice(4, score="sigmoid", normalize=True, n_group=4, topk_group=2,
                    routed_scaling_factor=2.5, bias=True), 16, "swiglu", "f32", h=16),
    "deepseek-grouped-swiglu-bf16": _layer(
        TokenChoice(4, score="sigmoid", normalize=True, n_group=4, topk_group=2,
                    routed_scaling_factor=2.5, bias=True), 16, "swiglu", "bf16", h=16),
    "expert-choice-swiglu-f32": _layer(ExpertChoice(2.0), 8, "swiglu", "f32"),
    "expert-choice-swiglu-bf16": _layer(ExpertChoice(2.0), 8, "swiglu", "bf16"),
    "expert-choice-C>T-relu-f32": _layer(ExpertChoice(6.0), 4, "relu", "f32"),
    "expert-choice-normalize-gelu-f32": _layer(ExpertChoice(1.5, normalize=True), 4, "gelu", "f32"),
    "soft-gelu-f32": _layer(Soft(2), 4, "gelu", "f32"),
    "soft-swiglu-bf16": _layer(Soft(3), 4, "swiglu", "bf16"),
    "soft-normalized-gelu-f32": _layer(Soft(2, normalize=True), 4, "gelu", "f32"),
    "mixtral-dropless-swiglu-f16": _layer(TokenChoice(2, normalize=True), 8, "swiglu", "f16"),
    "expert-choice-relu-f16": _layer(ExpertChoice(2.0), 4, "relu", "f16"),
    "soft-gelu-f16": _layer(Soft(2), 4, "gelu", "f16"),
    # Sizes the CPU codegen can block (D, H multiples of 16), in every dtype.
    "blockable-swiglu-f32": _layer(TokenChoice(2, normalize=True), 4, "swiglu", "f32", d=32, h=64),
    "blockable-swiglu-bf16": _layer(TokenChoice(2, normalize=True), 4, "swiglu", "bf16", d=32, h=64),
    "blockable-relu-f16": _layer(ExpertChoice(2.0), 4, "relu", "f16", d=32, h=64),
}


def check_layer(layer, fn, seed, tokens=None, reference=None):
    """Runs `fn` (compiled from `layer`, possibly through model passes) on a
    random case and compares it with the reference of `reference` (default:
    `layer` itself)."""
    rng = np.random.default_rng(7919 * seed + layer.experts)
    kind = case_kind(seed)
    tokens = tokens if tokens is not None else token_count(rng, seed)
    inputs = layer_inputs(layer, rng, kind, tokens)
    got = run_layer(fn, layer, inputs)
    want, _ = reference_layer(reference or layer, inputs)
    assert got.shape == want.shape
    assert np.all(np.isfinite(got)), f"seed {seed} ({kind}): non-finite output"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= TOLERANCE[layer.dtype] * scale, (
        f"seed {seed} ({kind}, T={tokens}): max error {err:.3g} > "
        f"{TOLERANCE[layer.dtype]} * {scale:.3g}")
    return err


PIPELINES = {
    "fused": "moe-cpu-pipeline{results-to-out-params=false}",
    "reference": "moe-cpu-pipeline{fused=false results-to-out-params=false}",
    "fused-tile-3": "moe-cpu-pipeline{tile-rows=3 results-to-out-params=false}",
    "fused-threads-2": "moe-cpu-pipeline{threads=2 results-to-out-params=false}",
    # The launches of moe-gpu-pipeline, run as loops on the host.
    "gpu-emulated": "moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}",
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
