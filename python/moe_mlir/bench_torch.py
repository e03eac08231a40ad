"""The PyTorch eager peer of the benchmark: routing in PyTorch inside the
timed region, then per expert index_select, the FFN and index_add, as model
code writes it."""

import numpy as np

from . import reference as R
from .policies import ExpertChoice, TokenChoice


def torch_supports(policy):
    """Whether the PyTorch peer routes `policy`: expert choice, and dropless
    token choice without expert groups or score bias."""
    if isinstance(policy, ExpertChoice):
        return True
    return (isinstance(policy, TokenChoice) and policy.dropless and policy.n_group == 1
            and not policy.bias)


def _torch_route(torch, layer, logits):
    """Routing in PyTorch as model code writes it, per the reference
    semantics (see torch_supports): [(token indices, gates)] per expert."""
    policy = layer.policy
    experts = layer.experts
    tokens = logits.shape[0]
    if isinstance(policy, ExpertChoice):
        probs = torch.softmax(logits, dim=1)
        slots = min(R.capacity(policy.capacity_factor, 1, tokens, experts), tokens)
        gates, ids = probs.topk(slots, dim=0)  # [C, E]: every expert's top-C tokens
        if policy.normalize:
            sums = torch.zeros(tokens, dtype=probs.dtype).index_add_(
                0, ids.reshape(-1), gates.reshape(-1))
            picked = sums[ids]
            gates = torch.where(picked > 0, gates / picked, gates)
        return [(ids[:, e], gates[:, e]) for e in range(experts)]
    probs = torch.softmax(logits, dim=1) if policy.score == "softmax" else torch.sigmoid(logits)
    gates, chosen = probs.topk(policy.top_k, dim=1)  # [T, k], best first
    if policy.normalize:
        total = gates.sum(dim=1, keepdim=True)
        gates = torch.where(total > 0, gates / total, gates)
    if policy.routed_scaling_factor != 1.0:
        gates = gates * policy.routed_scaling_factor
    flat = chosen.reshape(-1)
    order = torch.argsort(flat, stable=True)  # rows grouped by expert, tokens in order
    token_of = torch.div(order, policy.top_k, rounding_mode="floor")
    counts = torch.bincount(flat, minlength=experts).tolist()
    return list(zip(token_of.split(counts), gates.reshape(-1)[order].split(counts)))


def torch_layer(layer, x, router, weights, routing=None, project=None):
    """A PyTorch eager MoE layer as model code writes it: route in PyTorch
    (logits = x @ router, softmax, top-k, renormalize), then per expert
    index_select its tokens, run the FFN, index_add the gated output. With
    `routing` (the reference's), the routing is taken as given and only the
    experts run. `project(i, e, rows)` replaces `rows @ weights[i][e]`.
    Returns a callable, or None when the policy is not implemented here."""
    import torch

    tx, trouter = torch.from_numpy(x), torch.from_numpy(router)
    tw = [torch.from_numpy(w) for w in weights]
    act = {"relu": torch.relu, "gelu": torch.nn.functional.gelu,
           "silu": torch.nn.functional.silu}
    if routing is not None:
        if isinstance(layer.policy, ExpertChoice):
            ids, gates = routing
            given = [(torch.from_numpy(ids[e][ids[e] >= 0].astype(np.int64)),
                      torch.from_numpy(gates[e][ids[e] >= 0])) for e in range(layer.experts)]
        else:
            ids, gates, offsets = routing
            given = [(torch.from_numpy(ids[offsets[e]:offsets[e + 1]].astype(np.int64)),
                      torch.from_numpy(gates[offsets[e]:offsets[e + 1]]))
                     for e in range(layer.experts)]
    elif not torch_supports(layer.policy):
        return None

    if project is None:
        def project(i, e, rows):
            return rows @ tw[i][e]

    def run():
        with torch.no_grad():
            per_expert = given if routing is not None else _torch_route(torch, layer, tx @ trouter)
            out = torch.zeros_like(tx)
            for e, (idx, g) in enumerate(per_expert):
                if idx.numel() == 0:
                    continue
                rows = tx.index_select(0, idx)
                if layer.gated:
                    h = torch.nn.functional.silu(project(0, e, rows)) * project(1, e, rows)
                    y = project(2, e, h)
                else:
                    y = project(1, e, act[layer.activation](project(0, e, rows)))
                out.index_add_(0, idx, y * g[:, None])
            return out.numpy()
    return run


def torch_int8_layer(layer, x, router, weights):
    """The PyTorch peer with int8 expert weights as PyTorch users quantize
    them: torch.ao.quantization.quantize_dynamic with per-channel int8
    weights (each weight a DynamicQuantizedLinear, quantized once here) and
    activations quantized per call (w8a8). Returns (run, quantize seconds,
    engine), or None when the policy is not implemented or this PyTorch
    has no quantized engine."""
    import time

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if not torch_supports(layer.policy):
        return None
    engines = [e for e in ("fbgemm", "onednn", "x86") if e in
               torch.backends.quantized.supported_engines]
    if not engines:
        return None
    torch.backends.quantized.engine = engines[0]
    start = time.perf_counter()
    # One projection at a time, so that only one f32 copy (the transposed
    # weight nn.Linear wants) exists at once: the big shapes' weights are
    # 5.6 GB.
    quantized = []
    for w in weights:
        for e in range(w.shape[0]):
            linear = torch.nn.Linear(w.shape[1], w.shape[2], bias=False)
            linear.weight.data = torch.from_numpy(np.ascontiguousarray(w[e].T))
            wrapped = quantize_dynamic(torch.nn.Sequential(linear),
                                       {torch.nn.Linear: per_channel_dynamic_qconfig},
                                       dtype=torch.qint8)
            quantized.append(wrapped[0])
            del linear, wrapped
    experts = layer.experts
    run = torch_layer(layer, x, router, weights,
                      project=lambda i, e, rows: quantized[i * experts + e](rows))
    return run, time.perf_counter() - start, engines[0]


def torch_bf16_layer(layer, x, router, weights):
    """The PyTorch peer with bf16 expert weights (converted once here, one
    expert at a time): each projection multiplies its rows, made bf16, by
    the bf16 weight and returns f32 for the gated sum. Returns (run,
    convert seconds), or None when the policy is not implemented here."""
    import time

    import torch

    if not torch_supports(layer.policy):
        return None
    start = time.perf_counter()
    bf16 = [torch.from_numpy(w[e]).to(torch.bfloat16)
            for w in weights for e in range(w.shape[0])]
    experts = layer.experts

    def project(i, e, rows):
        return (rows.to(torch.bfloat16) @ bf16[i * experts + e]).to(torch.float32)

    run = torch_layer(layer, x, router, weights, project=project)
    return run, time.perf_counter() - start
