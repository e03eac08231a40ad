"""NumPy reference of the ``moe`` dialect: routing and whole layers.

This is the contract every backend is tested against (``shared/DESIGN.md``
and the attribute docs in ``docs/Dialects/MoE.md``):

* Scores are computed in f32. Ties always break toward the lower index.
  Selection is total: NaN ranks below every number (-inf included) and
  NaNs tie with each other (``argsort(-key, kind="stable")`` sorts them
  last, by index), so any float input yields a valid layout; gates follow
  IEEE arithmetic and may be NaN.
* Token choice: ``P = softmax|sigmoid(logits)`` per token; the selection key
  is ``P + bias``; with ``n_group > 1`` only the ``topk_group`` groups with
  the largest sum of their two best keys stay eligible; each token takes the
  ``top_k`` experts with the largest key. Gates are ``P`` of the chosen
  experts, divided by their sum when ``normalize`` (all-zero gates stay
  zero), times ``routed_scaling_factor``.
  With a ``capacity_factor``: ``C = ceil(cf * k * T / E)`` (f64), slots are
  filled choice by choice (all first choices, then all second choices...),
  tokens in index order (``position``) or by descending first gate, ties by
  index (``priority``); the rest are dropped. Without: every assignment,
  grouped by expert, by token within an expert (CSR with E+1 offsets).
* Expert choice: ``P = softmax(logits)`` per token; expert ``e`` takes the
  ``C = ceil(cf * T / E)`` tokens with the largest ``P[:, e]``; with
  ``normalize`` each token's gates are divided by their sum (experts in
  index order).
* Soft MoE: dispatch = softmax over tokens, combine = softmax over slots.

Routing decisions must agree bit for bit with the compiled code, ties
included, and mathematically equal probabilities (two tokens whose logits
are permutations of each other) are only equal in floating point if they
are rounded identically. So routing uses its own ``exp`` (``exp`` below,
``buildRoutingExp`` in the compiler), made of IEEE multiplies and adds that
NumPy, the CPU and the GPU all round the same way -- the C library's
``expf`` and CUDA's libdevice differ in the last bit here and there -- and
the reference accumulates the sums the compiled loops accumulate
sequentially (softmax denominators, gate normalization) sequentially too.
"""

import ctypes
import ctypes.util
import math

import numpy as np

from .policies import ExpertChoice, Layer, Soft, TokenChoice

F32 = np.float32

# ----------------------------------------------------------------------------
# bf16 emulation (round to nearest even, as arith.truncf does)
# ----------------------------------------------------------------------------


def to_bf16_bits(x):
    """Rounds f32 values to bf16 and returns their bits as uint16."""
    bits = np.ascontiguousarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def from_bf16_bits(bits):
    """Widens bf16 bits (uint16) to f32."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(F32)


def round_bf16(x):
    """Rounds f32 values to the nearest bf16, kept in f32."""
    return from_bf16_bits(to_bf16_bits(x))


def quantize_i8(w):
    """Quantizes f32 weights [..., K, N] to int8, symmetric, one scale per
    output column (as moe-pack-expert-weights{storage=i8}): returns
    (q int8 [..., K, N], scales f32 [..., N]) with scales = max_k |w| / 127
    and q = round_half_even(w / scales) in [-127, 127]; a zero column has
    scale 0."""
    w = np.asarray(w, dtype=F32)
    # fmax/fmin ignore NaN as the compiled arith.maxnumf/minnumf do: a NaN
    # weight does not poison its column's scale and becomes -127.
    scales = (np.fmax.reduce(np.abs(w), axis=-2) / F32(127)).astype(F32)
    divisor = np.where(scales == 0, F32(1), scales)[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.rint(w / divisor)
    q = np.fmin(np.fmax(ratio, F32(-127)), F32(127)).astype(np.int8)
    return q, scales


def quantize_i4(w, group):
    """Quantizes f32 weights [..., K, N] to 4-bit values in [-8, 7], one
    scale per group of `group` rows and column (as
    moe-pack-expert-weights{storage=i4 group=G}): returns (v int8 [..., K,
    N], scales f32 [..., K / G, N]) with scales = max |w| / 7 over the
    group (NaN-blind) and v = round_half_even(w / scales) clamped to
    [-8, 7] (a NaN becomes -8); a zero group has scale 0."""
    w = np.asarray(w, dtype=F32)
    *lead, k, n = w.shape
    grouped = w.reshape(*lead, k // group, group, n)
    scales = (np.fmax.reduce(np.abs(grouped), axis=-2) / F32(7)).astype(F32)
    divisor = np.where(scales == 0, F32(1), scales)[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.rint(grouped / divisor)
    v = np.fmin(np.fmax(ratio, F32(-8)), F32(7)).astype(np.int8)
    return v.reshape(w.shape), scales


def dequantize_i4(v, scales, group):
    """The f32 weights 4-bit values and their group scales stand for."""
    return (v.astype(F32) * np.repeat(np.asarray(scales, dtype=F32), group, axis=-2)).astype(F32)


def pack_i4(v, scales, panel):
    """The #moe.packed<panel = P, storage = i4> operands of 4-bit values v
    [E, K, N] and scales [E, K / G, N]: bytes [E, ceil(N / P), K, P / 2]
    (column c of a panel row in the low nibble of byte c, column c + P / 2
    in its high nibble) and scales [E, ceil(N / P), K / G, P], zero-padded
    past N."""
    e, k, n = v.shape
    panels = -(-n // panel)
    padded = np.zeros((e, k, panels * panel), np.int8)
    padded[..., :n] = v
    halves = padded.reshape(e, k, panels, 2, panel // 2)
    low = halves[..., 0, :].view(np.uint8) & 0x0F
    high = (halves[..., 1, :].view(np.uint8) << 4) & 0xF0
    data = (low | high).view(np.int8).transpose(0, 2, 1, 3)
    groups = scales.shape[1]
    s = np.zeros((e, groups, panels * panel), np.asarray(scales).dtype)
    s[..., :n] = scales
    return np.ascontiguousarray(data), np.ascontiguousarray(
        s.reshape(e, groups, panels, panel).transpose(0, 2, 1, 3))


def round_f16(scales):
    """Scales as #moe.packed<..., scales = f16> stores them: rounded to
    nearest even f16 (past 65504: infinity)."""
    with np.errstate(over="ignore"):
        return np.asarray(scales, dtype=F32).astype(np.float16)


# GGUF's Q4_0 block: an f16 scale d, then 16 bytes whose byte j holds
# weight j in its low nibble and weight j + 16 in its high one, each as
# u = v + 8 (W = (u - 8) * d).
Q4_0_BLOCK = 32
Q4_0_BLOCK_BYTES = 18


def from_q4_0(blocks, k):
    """The 4-bit values and f16 scales of a GGUF Q4_0 matrix: `blocks` is
    its raw bytes (uint8), one row of K / 32 blocks per output column n
    (ggml's [K, N] tensor, K contiguous); returns (v int8 [K, N] in [-8,
    7], scales f16 [K / 32, N]) as quantize_i4 / round_f16 give them."""
    if k % Q4_0_BLOCK:
        raise ValueError(f"Q4_0 needs K divisible by {Q4_0_BLOCK}, got K = {k}")
    raw = np.ascontiguousarray(blocks, dtype=np.uint8)
    per_row = k // Q4_0_BLOCK * Q4_0_BLOCK_BYTES
    if raw.size % per_row:
        raise ValueError(f"Q4_0 data of {raw.size} bytes is not a whole number of "
                         f"rows of {per_row} bytes (K = {k})")
    cells = raw.reshape(-1, k // Q4_0_BLOCK, Q4_0_BLOCK_BYTES)
    scales = cells[..., :2].copy().view(np.float16)[..., 0]
    qs = cells[..., 2:]
    u = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    v = (u.astype(np.int8) - 8).reshape(-1, k)
    return np.ascontiguousarray(v.T), np.ascontiguousarray(scales.T)


def to_q4_0(v, scales):
    """The inverse of from_q4_0: values [K, N] in [-8, 7] and f16 scales
    [K / 32, N] as GGUF Q4_0 bytes [N, K / 32 * 18]."""
    k, n = v.shape
    u = (np.asarray(v, np.int16).T + 8).astype(np.uint8).reshape(n, k // Q4_0_BLOCK, Q4_0_BLOCK)
    qs = u[..., :16] | (u[..., 16:] << 4)
    d = np.ascontiguousarray(np.asarray(scales, np.float16).T)[..., None].view(np.uint8)
    return np.concatenate([d, qs], axis=-1).reshape(n, -1)


def dequantize_i8(q, scales):
    """The f32 weights int8 values and their column scales stand for."""
    return (q.astype(F32) * np.asarray(scales, dtype=F32)[..., None, :]).astype(F32)


def round_to(x, dtype):
    """Rounds f32 values to `dtype` ('f32', 'bf16' or 'f16', to nearest
    even), kept in f32."""
    x = np.asarray(x, dtype=F32)
    if dtype == "bf16":
        return round_bf16(x)
    if dtype == "f16":
        return x.astype(np.float16).astype(F32)
    return x


# ----------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------


_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_LIBM.expf.restype = ctypes.c_float
_LIBM.expf.argtypes = [ctypes.c_float]
_EXPF = np.frompyfunc(_LIBM.expf, 1, 1)


def libm_exp(x):
    """Elementwise f32 exp by the C library's expf: what math.exp in an
    expert body (silu, say) becomes in the compiled CPU code."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(over="ignore"):
        return np.asarray(_EXPF(x), dtype=F32).reshape(x.shape)


_EXP_POLY = [F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                              4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)]


def exp(x):
    """The routing exp, operation for operation as the compiled code builds
    it (detail::buildRoutingExp): every step is one IEEE f32 multiply, add
    or integer op, so NumPy, the CPU and the GPU round it identically."""
    x = np.asarray(x, dtype=F32)
    nan = np.isnan(x)
    safe = np.minimum(np.maximum(np.where(nan, F32(0), x), F32(-104.0)), F32(89.0))
    magic = F32(12582912.0)
    k = (safe * F32(1.44269504088896341) + magic) - magic
    r = (safe - k * F32(0.693359375)) - k * F32(-2.12194440e-4)
    p = np.full_like(r, _EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        p = p * r + c
    p = (p * (r * r) + r) + F32(1.0)
    ki = k.astype(np.int32)
    k1 = ki >> 1
    k2 = ki - k1

    def pow2(e):
        return ((e + 127) << 23).astype(np.int32).view(F32)

    with np.errstate(over="ignore", under="ignore"):
        result = (p * pow2(k1)) * pow2(k2)
    return np.where(nan, x, result).astype(F32)


def seq_sum(x, axis):
    """Sum along `axis` accumulated in index order, as the compiled loops do."""
    if x.shape[axis] == 0:
        return np.zeros(np.delete(x.shape, axis), dtype=F32)
    return np.cumsum(x, axis=axis, dtype=F32).take(-1, axis=axis)


def softmax(x, axis):
    """exp(x - max) / sum(exp(x - max)) along `axis`, in f32."""
    x = np.asarray(x, dtype=F32)
    e = exp(x - x.max(axis=axis, keepdims=True, initial=-np.inf))
    return e / np.expand_dims(seq_sum(e, axis), axis)


def sigmoid(x):
    """1 / (1 + exp(-x)) in f32 (saturates to 0 and 1 without warnings)."""
    x = np.asarray(x, dtype=F32)
    return F32(1) / (F32(1) + exp(-x))


def matmul_seq(a, b):
    """a @ b in f32 with each dot product accumulated in index order from 0
    (multiply, round, add, round), exactly as the compiled loops of
    linalg.matmul do. Used for router logits, whose rounding decides ties."""
    a = np.asarray(a, dtype=F32)
    b = np.asarray(b, dtype=F32)
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=F32)
    for k in range(a.shape[1]):
        acc = acc + a[:, k:k + 1] * b[k:k + 1, :]
    return acc


def capacity(capacity_factor, top_k, tokens, experts):
    """C = ceil(cf * k * T / E), evaluated in f64 left to right."""
    return int(math.ceil(float(capacity_factor) * top_k * tokens / experts))


def _top_indices(keys, count):
    """Column indices of the `count` largest keys per row, best first, ties
    to the lower index."""
    return np.argsort(-keys, axis=1, kind="stable")[:, :count]


# ----------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------


def token_choices(logits, policy, bias=None):
    """Per-token choices of token-choice routing: experts [T, k] (best
    first) and their f32 gates [T, k]."""
    logits = np.asarray(logits, dtype=F32)
    t, e = logits.shape
    probs = softmax(logits, 1) if policy.score == "softmax" else sigmoid(logits)
    keys = probs + np.asarray(bias, dtype=F32)[None, :] if bias is not None else probs
    if policy.n_group > 1:
        size = e // policy.n_group
        grouped = keys.reshape(t, policy.n_group, size)
        best2 = np.sort(grouped, axis=2)[:, :, -2:]
        group_scores = best2[:, :, 1] + best2[:, :, 0]
        kept = policy.topk_group or policy.n_group
        keep = np.zeros((t, policy.n_group), dtype=bool)
        np.put_along_axis(keep, _top_indices(group_scores, kept), True, axis=1)
        keys = np.where(np.repeat(keep, size, axis=1), keys, F32(-np.inf))
    experts = _top_indices(keys, policy.top_k)
    gates = np.take_along_axis(probs, experts, axis=1)
    if policy.normalize:
        total = seq_sum(gates, 1)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            gates = np.where(total > 0, gates / total, gates)
    if policy.routed_scaling_factor != 1.0:
        gates = gates * F32(policy.routed_scaling_factor)
    return experts, gates.astype(F32)


def route(logits, policy, experts, bias=None):
    """Routing results of `policy`, as `moe.route` returns them.

    Capacity layout: (ids [E, C] int32 with -1 for empty slots, gates [E, C]).
    Grouped layout (dropless): (ids [T*k], gates [T*k], offsets [E+1]).
    Soft: (dispatch [T, E*S], combine [T, E*S]).
    """
    logits = np.asarray(logits, dtype=F32)
    tokens = logits.shape[0]
    if isinstance(policy, Soft):
        return softmax(logits, 0), softmax(logits, 1)

    if isinstance(policy, ExpertChoice):
        probs = softmax(logits, 1)
        slots = capacity(policy.capacity_factor, 1, tokens, experts)
        ids = np.full((experts, slots), -1, dtype=np.int32)
        gates = np.zeros((experts, slots), dtype=F32)
        for e in range(experts):
            order = np.argsort(-probs[:, e], kind="stable")[:slots]
            ids[e, : len(order)] = order
            gates[e, : len(order)] = probs[order, e]
        if policy.normalize:
            sums = np.zeros(tokens, dtype=F32)
            for e in range(experts):
                for c in range(slots):
                    if ids[e, c] >= 0:
                        sums[ids[e, c]] += gates[e, c]
            for e in range(experts):
                for c in range(slots):
                    t = ids[e, c]
                    if t >= 0 and sums[t] > 0:
                        gates[e, c] = gates[e, c] / sums[t]
        return ids, gates

    chosen, chosen_gates = token_choices(logits, policy, bias)
    k = policy.top_k
    if policy.dropless:
        ids, gates, counts = [], [], np.zeros(experts, dtype=np.int64)
        rows = [[] for _ in range(experts)]
        for t in range(tokens):
            for j in range(k):
                rows[chosen[t, j]].append((t, chosen_gates[t, j]))
        for e in range(experts):
            counts[e] = len(rows[e])
            ids += [t for t, _ in rows[e]]
            gates += [g for _, g in rows[e]]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return (np.array(ids, dtype=np.int32).reshape(tokens * k),
                np.array(gates, dtype=F32).reshape(tokens * k), offsets)

    slots = capacity(policy.capacity_factor, k, tokens, experts)
    ids = np.full((experts, slots), -1, dtype=np.int32)
    gates = np.zeros((experts, slots), dtype=F32)
    counts = np.zeros(experts, dtype=np.int64)
    if policy.order == "priority":
        order = np.lexsort((np.arange(tokens), -chosen_gates[:, 0]))
    else:
        order = np.arange(tokens)
    for j in range(k):
        for t in order:
            e = chosen[t, j]
            if counts[e] < slots:
                ids[e, counts[e]] = t
                gates[e, counts[e]] = chosen_gates[t, j]
                counts[e] += 1
    return ids, gates


# ----------------------------------------------------------------------------
# Dispatch, experts, combine
# ----------------------------------------------------------------------------


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def activation(name, x):
    """The expert activations, in f32: relu, gelu (exact, erf), silu."""
    x = np.asarray(x, dtype=F32)
    if name == "relu":
        return np.maximum(x, F32(0))
    if name == "gelu":
        return (F32(0.5) * x * (F32(1) + _erf(x / np.sqrt(F32(2))).astype(F32))).astype(F32)
    if name in ("silu", "swiglu"):
        return x / (F32(1) + libm_exp(-x))
    raise ValueError(f"unknown activation {name!r}")


def expert_ffn(layer, rows, weights, lhs=None):
    """One expert on its rows (f32 values of `layer.dtype`): matmuls
    accumulate in f32, the hidden activations are rounded to the layer's
    dtype before the second matmul, and so is the output. `lhs`, if given,
    maps each matmul's left-hand side first (e.g. quantize_rows_i8)."""
    dt = layer.dtype
    lhs = lhs or (lambda a: a)
    if layer.gated:
        wg, wu, wd = weights
        h = activation("silu", lhs(rows) @ wg) * (lhs(rows) @ wu)
        out = lhs(round_to(h, dt)) @ wd
    else:
        w1, w2 = weights
        out = lhs(round_to(activation(layer.activation, lhs(rows) @ w1), dt)) @ w2
    return round_to(out, dt)


def quantize_rows_i8(x, group):
    """The f32 values int8 rows stand for, as the tiles by 4-bit weights
    with `activations = i8` quantize them: per row and group of `group`
    values, t = max |x| / 127 (NaN-blind) and a = round_half_even(x / t)
    clamped to [-127, 127] (a NaN becomes -127; t = 0 divides by 1);
    returns a * t."""
    x = np.asarray(x, dtype=F32)
    *lead, k = x.shape
    grouped = x.reshape(*lead, k // group, group)
    t = (np.fmax.reduce(np.abs(grouped), axis=-1, initial=F32(0)) / F32(127)).astype(F32)
    divisor = np.where(t == 0, F32(1), t)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.rint(grouped / divisor)
    a = np.fmin(np.fmax(ratio, F32(-127)), F32(127))
    return (a * t[..., None]).astype(F32).reshape(x.shape)


def pack_i4_for_int8_rows(data):
    """pack_i4's bytes [E, P', K, P / 2] as #moe.packed<..., activations =
    i8> stores them: each nibble v + 8, and each four rows' 2P bytes
    interleaved (byte 4c + r of the run is byte c of row r)."""
    e, panels, k, half = data.shape
    flipped = data.view(np.uint8) ^ np.uint8(0x88)
    quads = flipped.reshape(e, panels, k // 4, 4, half).transpose(0, 1, 2, 4, 3)
    return np.ascontiguousarray(quads).reshape(e, panels, k, half).view(np.int8)


def l2_normalize(v, axis):
    """v / sqrt(sum v^2 + 1e-6) along `axis`, in f32."""
    v = np.asarray(v, dtype=F32)
    return v / np.sqrt((v * v).sum(axis=axis, keepdims=True, dtype=F32) + F32(1e-6))


def layer_forward(layer, x, router, weights, bias=None, scale=None, lhs=None):
    """The whole layer on f32 arrays holding values of `layer.dtype`:
    logits = x @ router (f32; for normalized Soft MoE
    scale * l2n(x) @ l2n(router)), route, dispatch, experts, combine (f32
    accumulation), rounded to `layer.dtype`; `lhs` as for expert_ffn.
    Returns (y, routing)."""
    x = np.asarray(x, dtype=F32)
    tokens, dim = x.shape
    policy = layer.policy
    if isinstance(policy, Soft) and policy.normalize:
        logits = (l2_normalize(x, 1) @ l2_normalize(router, 0)) * F32(np.asarray(scale).reshape(-1)[0])
    else:
        logits = matmul_seq(x, router)
    routing = route(logits, policy, layer.experts, bias)
    acc = np.zeros((tokens, dim), dtype=F32)
    per_expert = lambda e: [w[e] for w in weights]

    if isinstance(policy, Soft):
        dispatch, combine = routing
        s = policy.slots_per_expert
        slots = round_to(dispatch.T @ x, layer.dtype)  # [E*S, D]
        outs = np.concatenate([
            expert_ffn(layer, slots[e * s:(e + 1) * s], per_expert(e), lhs)
            for e in range(layer.experts)])
        acc += combine @ outs
        return round_to(acc, layer.dtype), routing

    if isinstance(policy, TokenChoice) and policy.dropless:
        ids, gates, offsets = routing
        outs = np.zeros((len(ids), dim), dtype=F32)
        for e in range(layer.experts):
            lo, hi = offsets[e], offsets[e + 1]
            if hi > lo:
                outs[lo:hi] = expert_ffn(layer, x[ids[lo:hi]], per_expert(e), lhs)
        for i, t in enumerate(ids):
            acc[t] += gates[i] * outs[i]
        return round_to(acc, layer.dtype), routing

    ids, gates = routing
    for e in range(layer.experts):
        rows = np.where((ids[e] >= 0)[:, None], x[np.maximum(ids[e], 0)], F32(0))
        outs = expert_ffn(layer, rows, per_expert(e), lhs)
        for c, t in enumerate(ids[e]):
            if t >= 0:
                acc[t] += gates[e, c] * outs[c]
    return round_to(acc, layer.dtype), routing
