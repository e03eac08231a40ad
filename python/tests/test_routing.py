"""Compiled moe.route against the NumPy reference, policy by policy, on the
CPU and through the GPU mapping (emulated): token ids and gates must match
bit for bit (the routing exp rounds identically everywhere)."""

import numpy as np
import pytest

from cases import case_kind, logits, token_count
from moe_mlir import builder
from moe_mlir import reference as R
from moe_mlir.policies import ExpertChoice, Soft, TokenChoice

CASES_PER_POLICY = 40

POLICIES = {
    "tc-capacity-position": (TokenChoice(2, capacity_factor=1.0), 8),
    "tc-capacity-priority": (TokenChoice(2, capacity_factor=1.25, order="priority",
                                         normalize=True), 8),
    "tc-capacity-overflow": (TokenChoice(1, capacity_factor=0.5), 4),
    "tc-capacity-C>T": (TokenChoice(2, capacity_factor=4.0), 4),
    "tc-dropless": (TokenChoice(2, normalize=True), 8),
    "tc-dropless-k=E": (TokenChoice(4), 4),
    "tc-sigmoid-scaled": (TokenChoice(3, capacity_factor=1.5, score="sigmoid", normalize=True,
                                      routed_scaling_factor=2.5), 6),
    "tc-grouped-deepseek": (TokenChoice(4, score="sigmoid", normalize=True, n_group=4,
                                        topk_group=2, routed_scaling_factor=2.5, bias=True), 16),
    "tc-grouped-capacity": (TokenChoice(2, capacity_factor=1.0, n_group=2, bias=True,
                                        order="priority"), 8),
    "expert-choice": (ExpertChoice(2.0), 8),
    "expert-choice-C>T": (ExpertChoice(6.0), 4),
    "expert-choice-normalize": (ExpertChoice(1.5, normalize=True), 8),
    "soft": (Soft(2), 4),
}


def _compare(got, want, seed):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape, f"seed {seed}: shape {g.shape} != {w.shape}"
        assert np.all(np.isfinite(g)) if g.dtype.kind == "f" else True
        np.testing.assert_array_equal(g, w, err_msg=f"seed {seed}")


PIPELINES = {
    "cpu": "moe-cpu-pipeline{results-to-out-params=false}",
    "gpu-emulated": "moe-gpu-emulation-pipeline",
}


@pytest.mark.parametrize("seed", range(CASES_PER_POLICY))
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_route_matches_reference(compiled, name, pipeline, seed):
    policy, experts = POLICIES[name]
    fn = compiled(builder.build_route(policy, experts), pipeline=PIPELINES[pipeline])
    rng = np.random.default_rng(1000 * seed + len(name))
    tokens = token_count(rng, seed)
    columns = experts * policy.slots_per_expert if isinstance(policy, Soft) else experts
    scores = logits(rng, case_kind(seed), tokens, columns)
    args = [scores]
    bias = None
    if isinstance(policy, TokenChoice) and policy.bias:
        bias = (0.1 * rng.standard_normal(experts)).astype(np.float32)
        args.append(bias)
    got = fn(*args)
    want = R.route(scores, policy, experts, bias)
    _compare(got, want, seed)


@pytest.mark.parametrize("name", ["tc-capacity-position", "tc-dropless", "expert-choice", "soft"])
def test_route_no_tokens(compiled, name):
    policy, experts = POLICIES[name]
    fn = compiled(builder.build_route(policy, experts))
    columns = experts * policy.slots_per_expert if isinstance(policy, Soft) else experts
    scores = np.zeros((0, columns), np.float32)
    _compare(fn(scores), R.route(scores, policy, experts), 0)


def test_capacity_load_never_exceeds_c(compiled):
    policy, experts = POLICIES["tc-capacity-overflow"]
    fn = compiled(builder.build_route(policy, experts))
    rng = np.random.default_rng(7)
    scores = logits(rng, "skewed", 37, experts)
    ids, gates = fn(scores)
    c = R.capacity(policy.capacity_factor, policy.top_k, 37, experts)
    assert ids.shape == (experts, c)
    # Skewed logits overflow the favoured experts: every slot is taken there.
    assert np.all(ids[: experts // 2] >= 0)
    assert np.all(gates[ids < 0] == 0)


def test_runtime_capacity_matches_the_f64_formula(compiled):
    # 2.2 * 1 * 25 / 1 = 55.00000000000001 in f64, so C = 56, computed at run
    # time here because T is dynamic.
    policy = TokenChoice(1, capacity_factor=2.2)
    fn = compiled(builder.build_route(policy, 1))
    ids, gates = fn(np.zeros((25, 1), np.float32))
    assert ids.shape == (1, 56)
    np.testing.assert_array_equal(ids[0, :25], np.arange(25))
    assert np.all(ids[0, 25:] == -1)


# Scores no model should produce but any data can: routing stays a valid
# layout (NaN ranks below every number, -inf included; ties and NaNs to the
# lower index), and equals the reference bit for bit, NaN gates included.
SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e30, -1e30, 1e-45,
                    -1e-45, 1.2e-38, 3.0, -3.0], np.float32)


def special_logits(rng, tokens, columns):
    """Logits mixing ordinary values with NaN, +-Inf, -0.0, subnormals and
    +-1e30; with whole rows of NaN, of +Inf, of -Inf and of -0.0."""
    out = rng.standard_normal((tokens, columns)).astype(np.float32)
    mask = rng.random((tokens, columns)) < 0.3
    out[mask] = rng.choice(SPECIAL, size=int(mask.sum()))
    for row, value in zip(range(tokens), (np.nan, np.inf, -np.inf, -0.0)):
        out[row] = value
    return out


def check_layout(got, policy, experts, tokens):
    """The invariants every consumer of the routing relies on."""
    if isinstance(policy, Soft):
        return
    ids = got[0]
    if isinstance(policy, TokenChoice) and policy.dropless:
        offsets = got[2]
        assert ids.shape == (tokens * policy.top_k,)
        assert offsets[0] == 0 and offsets[-1] == tokens * policy.top_k
        assert np.all(np.diff(offsets) >= 0)
        assert np.all((ids >= 0) & (ids < tokens))
        # Every token exactly k times, never twice for one expert.
        assert np.all(np.bincount(ids, minlength=tokens) == policy.top_k)
        for e in range(experts):
            rows = ids[offsets[e]:offsets[e + 1]]
            assert len(set(rows.tolist())) == len(rows)
        return
    assert np.all((ids >= -1) & (ids < tokens))
    for e in range(experts):
        taken = ids[e][ids[e] >= 0]
        assert len(set(taken.tolist())) == len(taken)
    if isinstance(policy, TokenChoice):
        assert np.all(np.bincount(ids[ids >= 0], minlength=tokens) <= policy.top_k)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_route_special_values(compiled, name, pipeline, seed):
    policy, experts = POLICIES[name]
    fn = compiled(builder.build_route(policy, experts), pipeline=PIPELINES[pipeline])
    rng = np.random.default_rng(77 * seed + len(name))
    tokens = 4 + seed * 3
    columns = experts * policy.slots_per_expert if isinstance(policy, Soft) else experts
    scores = special_logits(rng, tokens, columns)
    args = [scores]
    bias = None
    if isinstance(policy, TokenChoice) and policy.bias:
        bias = rng.choice(SPECIAL, size=experts).astype(np.float32)
        args.append(bias)
    got = fn(*args)
    check_layout(got, policy, experts, tokens)
    with np.errstate(invalid="ignore", over="ignore"):
        want = R.route(scores, policy, experts, bias)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w, err_msg=f"seed {seed}")
