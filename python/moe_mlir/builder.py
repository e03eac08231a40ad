"""Emits a whole MoE layer as ``moe`` dialect IR text.

``build_layer(layer)`` returns a module with one function::

    func.func @moe_layer(%x: tensor<TxDxdt>, %router: tensor<DxR'xdt>,
                         [%bias: tensor<Exf32>,] %w0, %w1[, %w2])
        -> tensor<TxDxdt>

that computes the router logits ``x @ router`` in f32, routes them with the
layer's policy, dispatches, applies the expert body (FFN with relu, gelu or
silu, or gated SwiGLU; matmuls accumulate in f32 and the hidden activations
are rounded to the layer's dtype) and combines into zeros. ``T`` is ``?``
unless ``layer.tokens`` is set.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from . import reference
from .policies import ExpertChoice, Layer, Soft, TokenChoice

Dim = Union[int, str]  # a size, or a symbol bound at call time ("T")


@dataclass(frozen=True)
class ArgSpec:
    """A tensor argument or result: name, shape (ints and symbols), dtype."""

    name: str
    shape: Tuple[Dim, ...]
    dtype: str  # "f32", "f16", "bf16", "i32"


@dataclass(frozen=True)
class Signature:
    name: str
    args: List[ArgSpec]
    results: List[ArgSpec]


def format_f64(value):
    """Formats a finite double as an MLIR float literal that parses back to
    exactly `value`: Python's shortest round-trip digits (``repr``), with the
    '.' that MLIR's float literals need (``5.0e-05``, ``1.0e+16``, ``2.0``;
    ``5e-05`` or ``1e+16`` would not parse)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"MLIR float literal of a non-finite value: {value!r}")
    text = repr(value)
    mantissa, exp, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + exp + exponent


def policy_attr(policy):
    """The `#moe...` attribute text of a policy (defaults elided)."""
    if isinstance(policy, Soft):
        return f"#moe.soft<slots_per_expert = {policy.slots_per_expert}>"
    if isinstance(policy, ExpertChoice):
        normalize = ", normalize = true" if policy.normalize else ""
        return (f"#moe.expert_choice<capacity_factor = {format_f64(policy.capacity_factor)}"
                f"{normalize}>")
    parts = [f"top_k = {policy.top_k}"]
    if policy.capacity_factor is not None:
        parts.append(f"capacity_factor = {format_f64(policy.capacity_factor)}")
    if policy.score != "softmax":
        parts.append(f"score = {policy.score}")
    if policy.normalize:
        parts.append("normalize = true")
    if policy.order != "position":
        parts.append(f"order = {policy.order}")
    if policy.n_group != 1:
        parts.append(f"n_group = {policy.n_group}")
    if policy.topk_group is not None:
        parts.append(f"topk_group = {policy.topk_group}")
    if policy.routed_scaling_factor != 1.0:
        parts.append(f"routed_scaling_factor = {format_f64(policy.routed_scaling_factor)}")
    return "#moe.token_choice<" + ", ".join(parts) + ">"


def _tensor(shape, dtype):
    dims = "x".join("?" if isinstance(d, str) or d is None else str(d) for d in shape)
    return f"tensor<{dims}x{dtype}>" if dims else f"tensor<{dtype}>"


def _is_dynamic(d):
    return d is None or isinstance(d, str)


def routed_size(layer, tokens):
    """C (capacity), T*k (dropless rows) or S (soft); None when dynamic."""
    policy = layer.policy
    if isinstance(policy, Soft):
        return policy.slots_per_expert
    if tokens is None:
        return None
    if isinstance(policy, ExpertChoice):
        return reference.capacity(policy.capacity_factor, 1, tokens, layer.experts)
    if policy.dropless:
        return tokens * policy.top_k
    return reference.capacity(policy.capacity_factor, policy.top_k, tokens, layer.experts)


class _Emitter:
    def __init__(self):
        self.lines = []

    def __call__(self, text, indent=2):
        self.lines.append(" " * indent + text)


def _expert_body(layer, rows_shape, emit):
    """The region of moe.expert: one expert on its rows."""
    dt, d, h = layer.dtype, layer.model_dim, layer.hidden_dim
    r = rows_shape[0]
    rows_t = _tensor((r, d), dt)
    dyn = "%n" if _is_dynamic(r) else ""
    names = ["%eg", "%eu", "%ed"] if layer.gated else ["%e1", "%e2"]
    shapes = [(d, h), (d, h), (h, d)] if layer.gated else [(d, h), (h, d)]
    args = ", ".join([f"%rows: {rows_t}"] + [f"{n}: {_tensor(s, dt)}" for n, s in zip(names, shapes)])
    emit(f"^bb0({args}):", 2)
    i = 4
    emit("%i0 = arith.constant 0 : index", i)
    emit("%f0 = arith.constant 0.0 : f32", i)
    if dyn:
        emit(f"%n = tensor.dim %rows, %i0 : {rows_t}", i)
    h32, hdt = _tensor((r, h), "f32"), _tensor((r, h), dt)
    d32, ddt = _tensor((r, d), "f32"), _tensor((r, d), dt)
    emit(f"%he = tensor.empty({dyn}) : {h32}", i)
    emit(f"%h0 = linalg.fill ins(%f0 : f32) outs(%he : {h32}) -> {h32}", i)
    w_in = _tensor((d, h), dt)
    map2 = "affine_map<(d0, d1) -> (d0, d1)>"

    def act(name, value):
        """Emits the activation of scalar `value`; returns its name."""
        if name == "relu":
            emit(f"%act = arith.maximumf {value}, %f0 : f32", 8)
        elif name == "gelu":
            emit("%sqrt2 = arith.constant 1.41421354 : f32", 8)
            emit("%half = arith.constant 0.5 : f32", 8)
            emit("%one = arith.constant 1.0 : f32", 8)
            emit(f"%scaled = arith.divf {value}, %sqrt2 : f32", 8)
            emit("%erf = math.erf %scaled : f32", 8)
            emit("%onep = arith.addf %one, %erf : f32", 8)
            emit(f"%hx = arith.mulf %half, {value} : f32", 8)
            emit("%act = arith.mulf %hx, %onep : f32", 8)
        else:  # silu
            emit("%one = arith.constant 1.0 : f32", 8)
            emit(f"%neg = arith.negf {value} : f32", 8)
            emit("%exp = math.exp %neg : f32", 8)
            emit("%den = arith.addf %one, %exp : f32", 8)
            emit(f"%act = arith.divf {value}, %den : f32", 8)
        return "%act"

    def narrow(value, result):
        if dt == "f32":
            emit(f"linalg.yield {value} : f32", 8)
        else:
            emit(f"{result} = arith.truncf {value} : f32 to {dt}", 8)
            emit(f"linalg.yield {result} : {dt}", 8)

    emit(f"%hd = tensor.empty({dyn}) : {hdt}", i)
    if layer.gated:
        emit(f"%g = linalg.matmul ins(%rows, %eg : {rows_t}, {w_in}) outs(%h0 : {h32}) -> {h32}", i)
        emit(f"%u = linalg.matmul ins(%rows, %eu : {rows_t}, {w_in}) outs(%h0 : {h32}) -> {h32}", i)
        emit(f"%h = linalg.generic {{indexing_maps = [{map2}, {map2}, {map2}], "
             f"iterator_types = [\"parallel\", \"parallel\"]}} "
             f"ins(%g, %u : {h32}, {h32}) outs(%hd : {hdt}) {{", i)
        emit(f"^bb0(%a: f32, %b: f32, %unused: {dt}):", 6)
        act("silu", "%a")
        emit("%prod = arith.mulf %act, %b : f32", 8)
        narrow("%prod", "%narrow")
        emit(f"}} -> {hdt}", i)
        w_out = "%ed"
    else:
        emit(f"%pre = linalg.matmul ins(%rows, %e1 : {rows_t}, {w_in}) outs(%h0 : {h32}) -> {h32}", i)
        emit(f"%h = linalg.generic {{indexing_maps = [{map2}, {map2}], "
             f"iterator_types = [\"parallel\", \"parallel\"]}} "
             f"ins(%pre : {h32}) outs(%hd : {hdt}) {{", i)
        emit(f"^bb0(%a: f32, %unused: {dt}):", 6)
        value = act(layer.activation, "%a")
        narrow(value, "%narrow")
        emit(f"}} -> {hdt}", i)
        w_out = "%e2"
    emit(f"%oe = tensor.empty({dyn}) : {d32}", i)
    emit(f"%o0 = linalg.fill ins(%f0 : f32) outs(%oe : {d32}) -> {d32}", i)
    emit(f"%o = linalg.matmul ins(%h, {w_out} : {hdt}, {_tensor((h, d), dt)}) "
         f"outs(%o0 : {d32}) -> {d32}", i)
    if dt == "f32":
        emit(f"moe.yield %o : {ddt}", i)
    else:
        emit(f"%od = tensor.empty({dyn}) : {ddt}", i)
        emit(f"%out = linalg.generic {{indexing_maps = [{map2}, {map2}], "
             f"iterator_types = [\"parallel\", \"parallel\"]}} "
             f"ins(%o : {d32}) outs(%od : {ddt}) {{", i)
        emit(f"^bb0(%a: f32, %unused: {dt}):", 6)
        narrow("%a", "%narrow")
        emit(f"}} -> {ddt}", i)
        emit(f"moe.yield %out : {ddt}", i)


def _emit_normalized_logits(emit, layer, t, dyn, x_t, logits_t):
    """logits = scale * (x / |x|) @ (phi / |phi|), norms over D."""
    dt, d, cols = layer.dtype, layer.model_dim, layer.router_columns
    r_t = _tensor((d, cols), dt)
    xn_t, rn_t = _tensor((t, d), "f32"), _tensor((d, cols), "f32")
    m = lambda dims: f"affine_map<(i, j) -> ({dims})>"
    ext = f"arith.extf %a : {dt} to f32" if dt != "f32" else "arith.addf %a, %f0n : f32"

    def norm(name, src, src_t, out_t, size_t, reduce_dim, keep):
        emit(f"%{name}_e = tensor.empty({dyn if keep == 'i' else ''}) : {size_t}")
        emit(f"%{name}_z = linalg.fill ins(%zero : f32) outs(%{name}_e : {size_t}) -> {size_t}")
        iterators = '"parallel", "reduction"' if keep == "i" else '"reduction", "parallel"'
        emit(f"%{name}_ss = linalg.generic {{indexing_maps = [{m('i, j')}, {m(keep)}], "
             f"iterator_types = [{iterators}]}} "
             f"ins(%{src} : {src_t}) outs(%{name}_z : {size_t}) {{")
        emit(f"^bb0(%a: {dt}, %acc: f32):", 2)
        emit(f"  %w = {ext}", 2)
        emit("  %sq = arith.mulf %w, %w : f32", 2)
        emit("  %s = arith.addf %acc, %sq : f32", 2)
        emit("  linalg.yield %s : f32", 2)
        emit(f"}} -> {size_t}")
        emit(f"%{name}_oe = tensor.empty({dyn if keep == 'i' else ''}) : {out_t}")
        emit(f"%{name} = linalg.generic {{indexing_maps = [{m('i, j')}, {m(keep)}, {m('i, j')}], "
             f"iterator_types = [\"parallel\", \"parallel\"]}} "
             f"ins(%{src}, %{name}_ss : {src_t}, {size_t}) outs(%{name}_oe : {out_t}) {{")
        emit(f"^bb0(%a: {dt}, %ss: f32, %unused: f32):", 2)
        emit(f"  %w = {ext}", 2)
        emit("  %eps = arith.constant 1.0e-6 : f32", 2)
        emit("  %se = arith.addf %ss, %eps : f32", 2)
        emit("  %r = math.rsqrt %se : f32", 2)
        emit("  %n = arith.mulf %w, %r : f32", 2)
        emit("  linalg.yield %n : f32", 2)
        emit(f"}} -> {out_t}")

    emit("%f0n = arith.constant 0.0 : f32")
    norm("xn", "x", x_t, xn_t, _tensor((t,), "f32"), 1, "i")
    norm("rn", "router", r_t, rn_t, _tensor((cols,), "f32"), 0, "j")
    emit(f"%dot = linalg.matmul ins(%xn, %rn : {xn_t}, {rn_t}) outs(%l0 : {logits_t}) -> {logits_t}")
    emit("%c0s = arith.constant 0 : index")
    emit("%s = tensor.extract %scale[%c0s] : tensor<1xf32>")
    emit(f"%logits = linalg.generic {{indexing_maps = [{m('i, j')}, {m('i, j')}], "
         f"iterator_types = [\"parallel\", \"parallel\"]}} ins(%dot : {logits_t}) outs(%le : {logits_t}) {{")
    emit("^bb0(%a: f32, %unused: f32):", 2)
    emit("  %v = arith.mulf %a, %s : f32", 2)
    emit("  linalg.yield %v : f32", 2)
    emit(f"}} -> {logits_t}")


def build_layer(layer: Layer, name: str = "moe_layer"):
    """Returns (module text, Signature) for `layer`."""
    dt, d, e = layer.dtype, layer.model_dim, layer.experts
    t = layer.tokens if layer.tokens is not None else "T"
    cols = layer.router_columns
    policy = layer.policy
    has_bias = isinstance(policy, TokenChoice) and policy.bias
    weight_names = ["w_gate", "w_up", "w_down"] if layer.gated else ["w1", "w2"]

    args = [ArgSpec("x", (t, d), dt), ArgSpec("router", (d, cols), dt)]
    soft_normalize = isinstance(policy, Soft) and policy.normalize
    if soft_normalize:
        args.append(ArgSpec("scale", (1,), "f32"))
    if has_bias:
        args.append(ArgSpec("bias", (e,), "f32"))
    args += [ArgSpec(n, s, dt) for n, s in zip(weight_names, layer.weight_shapes())]
    sig = Signature(name, args, [ArgSpec("y", (t, d), dt)])

    emit = _Emitter()
    arg_text = ", ".join(f"%{a.name}: {_tensor(a.shape, a.dtype)}" for a in args)
    x_t = _tensor((t, d), dt)
    emit(f"func.func @{name}({arg_text}) -> {x_t} {{", 0)
    emit("%c0 = arith.constant 0 : index")
    emit("%zero = arith.constant 0.0 : f32")
    dyn = ""
    if _is_dynamic(t):
        emit(f"%t = tensor.dim %x, %c0 : {x_t}")
        dyn = "%t"
    logits_t = _tensor((t, cols), "f32")
    emit(f"%le = tensor.empty({dyn}) : {logits_t}")
    emit(f"%l0 = linalg.fill ins(%zero : f32) outs(%le : {logits_t}) -> {logits_t}")
    if soft_normalize:
        _emit_normalized_logits(emit, layer, t, dyn, x_t, logits_t)
    else:
        emit(f"%logits = linalg.matmul ins(%x, %router : {x_t}, {_tensor((d, cols), dt)}) "
             f"outs(%l0 : {logits_t}) -> {logits_t}")

    tokens = layer.tokens
    routed = routed_size(layer, tokens)
    rsz = routed if routed is not None else "?"
    bias_text = f" bias(%bias : {_tensor((e,), 'f32')})" if has_bias else ""
    weights_text = ", ".join(f"%{n}" for n in weight_names)
    weights_types = ", ".join(_tensor(s, dt) for s in layer.weight_shapes())

    if isinstance(policy, Soft):
        s = policy.slots_per_expert
        emit(f"%disp, %comb = moe.route {policy_attr(policy)} %logits : {logits_t} -> {logits_t}, {logits_t}")
        in_t = _tensor((e, s, d), dt)
        emit(f"%xe = moe.dispatch %x weights(%disp : {logits_t}) : {x_t} -> {in_t}")
        emit(f"%ye = moe.expert %xe weights({weights_text} : {weights_types}) : {in_t} -> {in_t} {{")
        _expert_body(layer, (s,), emit)
        emit("}")
        combine = f"%ye weights(%comb : {logits_t})"
        out_t = in_t
    elif isinstance(policy, TokenChoice) and policy.dropless:
        ids_t = _tensor((rsz,), "i32")
        gates_t = _tensor((rsz,), "f32")
        off_t = _tensor((e + 1,), "i32")
        emit(f"%ids, %gates, %offsets = moe.route {policy_attr(policy)} %logits{bias_text} "
             f": {logits_t} -> {ids_t}, {gates_t}, {off_t}")
        in_t = _tensor((rsz, d), dt)
        emit(f"%xe = moe.dispatch %x indices(%ids : {ids_t}) : {x_t} -> {in_t}")
        emit(f"%ye = moe.expert %xe offsets(%offsets : {off_t}) weights({weights_text} : {weights_types}) "
             f": {in_t} -> {in_t} {{")
        _expert_body(layer, ("?",), emit)
        emit("}")
        combine = f"%ye indices(%ids : {ids_t}) weights(%gates : {gates_t})"
        out_t = in_t
    else:
        ids_t = _tensor((e, rsz), "i32")
        gates_t = _tensor((e, rsz), "f32")
        emit(f"%ids, %gates = moe.route {policy_attr(policy)} %logits{bias_text} "
             f": {logits_t} -> {ids_t}, {gates_t}")
        in_t = _tensor((e, rsz, d), dt)
        emit(f"%xe = moe.dispatch %x indices(%ids : {ids_t}) : {x_t} -> {in_t}")
        emit(f"%ye = moe.expert %xe weights({weights_text} : {weights_types}) : {in_t} -> {in_t} {{")
        _expert_body(layer, (rsz,), emit)
        emit("}")
        combine = f"%ye indices(%ids : {ids_t}) weights(%gates : {gates_t})"
        out_t = in_t

    emit(f"%init = tensor.empty({dyn}) : {x_t}")
    zero_dt = "%zero" if dt == "f32" else "%zero_dt"
    if dt != "f32":
        emit(f"%zero_dt = arith.constant 0.0 : {dt}")
    emit(f"%acc = linalg.fill ins({zero_dt} : {dt}) outs(%init : {x_t}) -> {x_t}")
    emit(f"%y = moe.combine {combine} into %acc : {out_t} -> {x_t}")
    emit(f"return %y : {x_t}")
    emit("}", 0)
    return "\n".join(emit.lines) + "\n", sig


def build_route(policy, experts, tokens=None, name="route"):
    """Returns (module text, Signature) of a function that only routes:
    f32 logits [T, E'] (and a bias [E] when the policy takes one) to the
    routing tensors of `moe.route`."""
    t = tokens if tokens is not None else "T"
    cols = experts * policy.slots_per_expert if isinstance(policy, Soft) else experts
    logits_t = _tensor((t, cols), "f32")
    args = [ArgSpec("logits", (t, cols), "f32")]
    has_bias = isinstance(policy, TokenChoice) and policy.bias
    if has_bias:
        args.append(ArgSpec("bias", (experts,), "f32"))
    layer = Layer(1, 1, experts, policy, "relu", "f32", tokens)
    routed = routed_size(layer, tokens)
    if isinstance(policy, Soft):
        results = [ArgSpec("dispatch", (t, cols), "f32"), ArgSpec("combine", (t, cols), "f32")]
    elif isinstance(policy, TokenChoice) and policy.dropless:
        n = routed if routed is not None else "N"
        results = [ArgSpec("ids", (n,), "i32"), ArgSpec("gates", (n,), "f32"),
                   ArgSpec("offsets", (experts + 1,), "i32")]
    else:
        c = routed if routed is not None else "C"
        results = [ArgSpec("ids", (experts, c), "i32"), ArgSpec("gates", (experts, c), "f32")]
    types = ", ".join(_tensor(r.shape, r.dtype) for r in results)
    arg_text = ", ".join(f"%{a.name}: {_tensor(a.shape, a.dtype)}" for a in args)
    bias_text = f" bias(%bias : {_tensor((experts,), 'f32')})" if has_bias else ""
    names = ", ".join(f"%r{i}" for i in range(len(results)))
    text = (f"func.func @{name}({arg_text}) -> ({types}) {{\n"
            f"  {names} = moe.route {policy_attr(policy)} %logits{bias_text} : {logits_t} -> {types}\n"
            f"  return {names} : {types}\n}}\n")
    return text, Signature(name, args, results)
