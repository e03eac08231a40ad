"""The model passes, compiled and run: --moe-token-to-expert-choice must
give exactly the expert-choice reference (and per-expert loads of exactly
C), --moe-soft-to-dense exactly the Soft MoE reference."""

import numpy as np
import pytest

from cases import case_kind, logits, token_count
from moe_mlir import builder
from moe_mlir import reference as R
from moe_mlir.policies import ExpertChoice, Layer, Soft, TokenChoice
from test_layers import check_layer

CASES = 8
CPU = "moe-cpu-pipeline{results-to-out-params=false}"


def expert_choice_of(policy, capacity_factor=None, keep_normalize=False):
    """The expert-choice policy the pass turns `policy` into."""
    factor = capacity_factor or policy.top_k * (policy.capacity_factor or 1.0)
    return ExpertChoice(factor, normalize=keep_normalize and policy.normalize)


def _converted(layer, policy):
    return Layer(layer.model_dim, layer.hidden_dim, layer.experts, policy, layer.activation,
                 layer.dtype, layer.tokens)


TOKEN_CHOICE = {
    "capacity-relu": Layer(24, 40, 4, TokenChoice(2, capacity_factor=1.25), "relu"),
    "dropless-swiglu": Layer(24, 40, 8, TokenChoice(2, normalize=True), "swiglu"),
    "grouped-sigmoid-swiglu": Layer(
        24, 16, 16, TokenChoice(4, score="sigmoid", normalize=True, n_group=4, topk_group=2,
                                routed_scaling_factor=2.5, bias=True), "swiglu"),
    "dropless-bf16": Layer(24, 40, 8, TokenChoice(2, normalize=True), "swiglu", "bf16"),
}
VARIANTS = {
    "default": ("moe-token-to-expert-choice", {}),
    "keep-normalize": ("moe-token-to-expert-choice{keep-normalize=true}", {"keep_normalize": True}),
    "capacity-1.5": ("moe-token-to-expert-choice{capacity-factor=1.5}", {"capacity_factor": 1.5}),
}


@pytest.mark.parametrize("seed", range(CASES))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", sorted(TOKEN_CHOICE))
def test_token_to_expert_choice_layer(compiled, name, variant, seed):
    layer = TOKEN_CHOICE[name]
    passes, kwargs = VARIANTS[variant]
    fn = compiled(builder.build_layer(layer), pipeline=f"{passes},{CPU}")
    target = _converted(layer, expert_choice_of(layer.policy, **kwargs))
    check_layer(layer, fn, seed, reference=target)


# Capacity layouts keep their types under the default capacity, so the route
# can be converted even when its results are returned, and observed.
CAPACITY = {
    "top1": (TokenChoice(1, capacity_factor=1.0), 4),
    "top2": (TokenChoice(2, capacity_factor=1.25), 8),
    "grouped-sigmoid": (TokenChoice(2, capacity_factor=0.5, score="sigmoid", n_group=2,
                                    bias=True, routed_scaling_factor=2.0), 8),
}


@pytest.mark.parametrize("seed", range(CASES))
@pytest.mark.parametrize("name", sorted(CAPACITY))
def test_expert_choice_load_is_exactly_c(compiled, name, seed):
    policy, experts = CAPACITY[name]
    target = expert_choice_of(policy)
    text, before = builder.build_route(policy, experts)
    _, after = builder.build_route(target, experts)
    # The function keeps its arguments (the bias becomes unused) and returns
    # the expert-choice routing.
    signature = builder.Signature(before.name, before.args, after.results)
    fn = compiled((text, signature), pipeline=f"moe-token-to-expert-choice,{CPU}")
    rng = np.random.default_rng(31 * seed + experts)
    tokens = token_count(rng, seed)
    scores = logits(rng, case_kind(seed), tokens, experts)
    args = [scores] + ([np.zeros(experts, np.float32)] if policy.bias else [])
    ids, gates = fn(*args)
    c = R.capacity(target.capacity_factor, 1, tokens, experts)
    assert ids.shape == (experts, c)
    # Perfect balance: every expert takes exactly min(C, T) tokens.
    np.testing.assert_array_equal((ids >= 0).sum(axis=1), min(c, tokens))
    want_ids, want_gates = R.route(scores, target, experts)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(gates, want_gates, rtol=2e-6, atol=1e-7)


SOFT = {
    "soft-gelu-f32": Layer(24, 40, 4, Soft(2), "gelu"),
    "soft-swiglu-bf16": Layer(24, 40, 4, Soft(3), "swiglu", "bf16"),
    "soft-normalized-relu-f32": Layer(24, 40, 6, Soft(2, normalize=True), "relu"),
    "soft-normalized-swiglu-bf16": Layer(24, 40, 4, Soft(2, normalize=True), "swiglu", "bf16"),
}


@pytest.mark.parametrize("seed", range(CASES))
@pytest.mark.parametrize("name", sorted(SOFT))
def test_soft_to_dense_layer(compiled, name, seed):
    layer = SOFT[name]
    fn = compiled(builder.build_layer(layer), pipeline=f"moe-soft-to-dense,{CPU}")
    check_layer(layer, fn, seed)
