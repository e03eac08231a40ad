"""The layer configurations and the check every compiled layer must pass,
shared by the pytest suites and gpu_check.py (which runs on GPU machines
without pytest).

Tolerances (max abs error over the output, scale = max(1, max |ref|)):
f32: 1e-4 * scale (matmul summation order differs from NumPy's BLAS);
f16: 5e-3 * scale (one f16 ulp is 2^-11 relative, same reasoning as bf16);
bf16: 2e-2 * scale (one bf16 ulp is 2^-8 relative; hidden activations are
rounded to bf16 on both sides but may round differently when the f32
values differ in their last bits)."""

import numpy as np

from cases import case_kind, layer_inputs, reference_layer, run_layer, token_count
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

# A single token (static T = 1) and a single expert (E = 1): the loops over
# them have one iteration, which the canonicalizer folds away, and the GPU
# mapping must still put all of the work on the device. Every policy that
# allows E = 1 (top_k <= E, n_group divides E); f16/bf16 with sizes the
# 16 x 8 x 16 tensor-core tiles divide.
EDGE_LAYERS = {
    "T=1-dropless-swiglu-f32": _layer(TokenChoice(2, normalize=True), 8, "swiglu", "f32", tokens=1),
    "T=1-capacity-position-relu-f32": _layer(
        TokenChoice(2, capacity_factor=1.25), 4, "relu", "f32", tokens=1),
    "T=1-capacity-priority-gelu-bf16": _layer(
        TokenChoice(2, capacity_factor=1.0, order="priority", normalize=True), 4, "gelu", "bf16",
        tokens=1, d=32, h=64),
    "T=1-sigmoid-silu-f16": _layer(
        TokenChoice(3, capacity_factor=1.5, score="sigmoid", normalize=True,
                    routed_scaling_factor=2.5), 6, "silu", "f16", tokens=1, d=32, h=64),
    "T=1-deepseek-grouped-swiglu-f32": _layer(
        TokenChoice(4, score="sigmoid", normalize=True, n_group=4, topk_group=2,
                    routed_scaling_factor=2.5, bias=True), 16, "swiglu", "f32", tokens=1, h=16),
    "T=1-expert-choice-swiglu-bf16": _layer(ExpertChoice(2.0), 8, "swiglu", "bf16", tokens=1,
                                            d=32, h=64),
    "T=1-soft-gelu-f32": _layer(Soft(2), 4, "gelu", "f32", tokens=1),
    "E=1-dropless-swiglu-bf16": _layer(TokenChoice(1, normalize=True), 1, "swiglu", "bf16",
                                       d=32, h=64),
    "E=1-capacity-position-relu-f32": _layer(TokenChoice(1, capacity_factor=1.25), 1, "relu", "f32"),
    "E=1-capacity-priority-gelu-f16": _layer(
        TokenChoice(1, capacity_factor=1.0, order="priority", normalize=True), 1, "gelu", "f16",
        d=32, h=64),
    "E=1-sigmoid-silu-f32": _layer(
        TokenChoice(1, capacity_factor=1.5, score="sigmoid", routed_scaling_factor=2.5), 1,
        "silu", "f32"),
    "E=1-deepseek-grouped-swiglu-f32": _layer(
        TokenChoice(1, score="sigmoid", normalize=True, topk_group=1, routed_scaling_factor=2.5,
                    bias=True), 1, "swiglu", "f32", tokens=16),
    "E=1-expert-choice-relu-f32": _layer(ExpertChoice(2.0), 1, "relu", "f32"),
    "E=1-soft-swiglu-bf16": _layer(Soft(3), 1, "swiglu", "bf16", d=32, h=64),
    "T=1-E=1-dropless-swiglu-f32": _layer(TokenChoice(1), 1, "swiglu", "f32", tokens=1),
    "T=1-E=1-expert-choice-gelu-f16": _layer(ExpertChoice(1.0), 1, "gelu", "f16", tokens=1,
                                             d=32, h=64),
    "T=1-E=1-soft-relu-f32": _layer(Soft(2), 1, "relu", "f32", tokens=1),
}


def layer_case_inputs(layer, seed, tokens=None, salt=7919):
    """The inputs of `layer`'s random case `seed` (its kind from
    case_kind), of `tokens` tokens (default: the layer's static T, else a
    random count); `salt` picks another stream of cases."""
    rng = np.random.default_rng(salt * seed + layer.experts)
    if tokens is None:
        tokens = layer.tokens if layer.tokens is not None else token_count(rng, seed)
    return layer_inputs(layer, rng, case_kind(seed), tokens)


def check_layer(layer, fn, seed, tokens=None, reference=None):
    """Runs `fn` (compiled from `layer`, possibly through model passes) on a
    random case of `tokens` tokens (default: the layer's static T, else a
    random count) and compares it with the reference of `reference`
    (default: `layer` itself)."""
    kind = case_kind(seed)
    inputs = layer_case_inputs(layer, seed, tokens)
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
