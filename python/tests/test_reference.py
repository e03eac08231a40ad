"""The NumPy reference on small cases computed by hand."""

import math

import numpy as np
import pytest

from moe_mlir import reference as R
from moe_mlir.policies import ExpertChoice, Layer, Soft, TokenChoice

F = np.float32


def test_capacity_formula():
    assert R.capacity(1.0, 2, 16, 4) == 8
    assert R.capacity(1.25, 2, 10, 8) == 4  # ceil(3.125)
    assert R.capacity(1e-5, 2, 10, 8) == 1
    assert R.capacity(1.0, 1, 0, 4) == 0
    # Evaluated in f64 left to right: 2.2 * 1 * 25 = 55.00000000000001.
    assert R.capacity(2.2, 1, 25, 1) == 56


def test_softmax_is_stable_and_sums_to_one():
    p = R.softmax(np.array([[1e4, 0.0, -1e4]], F), 1)
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])
    p = R.softmax(np.array([[0.0, math.log(3.0)]], F), 1)
    np.testing.assert_allclose(p, [[0.25, 0.75]], rtol=1e-6)


def test_sigmoid_saturates_without_nan():
    s = R.sigmoid(np.array([-1e4, 0.0, 1e4], F))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


def test_top_k_ties_go_to_lower_index():
    logits = np.array([[1.0, 3.0, 3.0, 2.0]], F)
    experts, gates = R.token_choices(logits, TokenChoice(2))
    np.testing.assert_array_equal(experts, [[1, 2]])
    np.testing.assert_allclose(gates[0, 0], gates[0, 1])


def test_normalize_and_scale():
    logits = np.log(np.array([[0.5, 0.3, 0.2]], F))
    _, gates = R.token_choices(logits, TokenChoice(2, normalize=True,
                                                   routed_scaling_factor=2.0))
    np.testing.assert_allclose(gates, [[2 * 0.5 / 0.8, 2 * 0.3 / 0.8]], rtol=1e-6)


def test_capacity_position_order():
    # 3 tokens, 2 experts, k = 1, C = ceil(1 * 1 * 3 / 2) = 2: all three
    # tokens want expert 0; tokens 0 and 1 get it, token 2 is dropped.
    logits = np.array([[5.0, 0.0], [4.0, 0.0], [9.0, 0.0]], F)
    ids, gates = R.route(logits, TokenChoice(1, capacity_factor=1.0), 2)
    np.testing.assert_array_equal(ids, [[0, 1], [-1, -1]])
    assert gates[1].sum() == 0


def test_capacity_priority_order():
    # Same, but by descending first gate: token 2 (gate ~1) then token 0.
    logits = np.array([[5.0, 0.0], [4.0, 0.0], [9.0, 0.0]], F)
    ids, _ = R.route(logits, TokenChoice(1, capacity_factor=1.0, order="priority"), 2)
    np.testing.assert_array_equal(ids, [[2, 0], [-1, -1]])


def test_capacity_second_choices_come_after_all_first_choices():
    # k = 2, C = ceil(0.5 * 2 * 2 / 2) = 1 slot per expert: token 0's first
    # choice (e1) and token 1's first choice (e0) fill both experts before
    # any second choice.
    logits = np.array([[0.0, 1.0], [1.0, 0.0]], F)
    ids, _ = R.route(logits, TokenChoice(2, capacity_factor=0.5), 2)
    np.testing.assert_array_equal(ids, [[1], [0]])


def test_dropless_csr_layout():
    logits = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 1.0, 2.0]], F)
    ids, gates, offsets = R.route(logits, TokenChoice(2), 3)
    # Choices: t0 -> (1, 2), t1 -> (0, 2), t2 -> (2, 1).
    np.testing.assert_array_equal(offsets, [0, 1, 3, 6])
    np.testing.assert_array_equal(ids, [1, 0, 2, 0, 1, 2])
    assert gates.shape == (6,)


def test_grouped_routing_keeps_best_groups():
    # 4 experts in 2 groups; group 1 = experts (2, 3) has the larger top-2
    # sum, so with topk_group = 1 both choices come from it even though
    # expert 0 alone is the best.
    s = np.array([[0.9, 0.1, 0.6, 0.5]], F)
    logits = np.log(s / (1 - s))  # sigmoid(logits) == s
    policy = TokenChoice(2, score="sigmoid", n_group=2, topk_group=1)
    experts, gates = R.token_choices(logits, policy)
    np.testing.assert_array_equal(experts, [[2, 3]])
    np.testing.assert_allclose(gates, [[0.6, 0.5]], rtol=1e-5)


def test_bias_selects_but_does_not_weight():
    logits = np.zeros((1, 3), F)  # sigmoid = 0.5 everywhere
    bias = np.array([0.0, 0.0, 1.0], F)
    experts, gates = R.token_choices(logits, TokenChoice(1, score="sigmoid"), bias)
    np.testing.assert_array_equal(experts, [[2]])
    np.testing.assert_array_equal(gates, [[0.5]])


def test_expert_choice_takes_top_tokens_per_expert():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]], F)
    # C = ceil(1.0 * 3 / 2) = 2; expert 0 ranks tokens 0, 2, 1.
    ids, gates = R.route(logits, ExpertChoice(1.0), 2)
    np.testing.assert_array_equal(ids, [[0, 2], [1, 2]])
    assert gates[0, 0] > gates[0, 1]


def test_expert_choice_more_slots_than_tokens():
    ids, gates = R.route(np.zeros((2, 2), F), ExpertChoice(4.0), 2)
    # C = 4 > T = 2: two empty slots per expert; equal scores go by index.
    np.testing.assert_array_equal(ids, [[0, 1, -1, -1], [0, 1, -1, -1]])
    np.testing.assert_array_equal(gates[:, 2:], 0)


def test_soft_weights_are_column_and_row_softmaxes():
    logits = np.array([[0.0, 1.0], [1.0, 0.0]], F)
    dispatch, combine = R.route(logits, Soft(1), 2)
    np.testing.assert_allclose(dispatch.sum(0), [1, 1], rtol=1e-6)
    np.testing.assert_allclose(combine.sum(1), [1, 1], rtol=1e-6)


def test_bf16_rounds_to_nearest_even():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5], F)
    np.testing.assert_array_equal(R.round_bf16(x), [1.0, 1.0, 1.0 + 2**-6, -2.5])


def test_layer_tokens_nobody_takes_get_zero():
    layer = Layer(4, 8, 2, TokenChoice(1, capacity_factor=0.5), "relu")
    x = np.ones((4, 4), F)
    router = np.zeros((4, 2), F)  # all tokens tie: everybody wants expert 0
    w = [np.ones((2, 4, 8), F), np.ones((2, 8, 4), F)]
    y, (ids, _) = R.layer_forward(layer, x, router, w)
    # C = ceil(0.5 * 1 * 4 / 2) = 1: only token 0 is served.
    np.testing.assert_array_equal(ids, [[0], [-1]])
    assert np.all(y[0] == 0.5 * 32) and np.all(y[1:] == 0)


@pytest.mark.parametrize("name,expected", [("relu", [0.0, 0.0, 2.0]),
                                           ("silu", [-1 / (1 + math.e), 0.0, 2 / (1 + math.exp(-2))]),
                                           ("gelu", [0.5 * -1 * (1 + math.erf(-1 / math.sqrt(2))), 0.0,
                                                     0.5 * 2 * (1 + math.erf(2 / math.sqrt(2)))])])
def test_activations(name, expected):
    np.testing.assert_allclose(R.activation(name, np.array([-1.0, 0.0, 2.0], F)), expected,
                               rtol=1e-6, atol=1e-7)
