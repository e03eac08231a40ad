"""Random test inputs: router logits and whole-layer inputs with the
awkward cases the routing must get right (exact ties, huge logits, experts
no token picks, token counts not divisible by E, C > T)."""

import numpy as np

from moe_mlir import reference as R
from moe_mlir.policies import Soft, TokenChoice

KINDS = ("normal", "ties", "extreme", "skewed")


def case_kind(seed):
    return KINDS[seed % len(KINDS)]


def token_count(rng, seed):
    """1..40 tokens, biased toward counts not divisible by 4 or 8; seed 0
    always gets a single token."""
    if seed == 0:
        return 1
    return int(rng.integers(1, 41))


def logits(rng, kind, tokens, columns):
    """Router logits of one kind. `extreme` draws from +-1e4 buckets plus
    small integers, so that every exp is exactly 0 or a normal number on
    every implementation (no denormal boundary that libraries round
    differently)."""
    if kind == "ties":
        out = rng.integers(-2, 3, size=(tokens, columns)).astype(np.float32)
        if tokens > 1:
            out[rng.integers(0, tokens)] = out[0]  # a duplicated token
        return out
    if kind == "extreme":
        buckets = rng.choice(np.array([-1e4, -5e3, 0.0, 5e3, 1e4], np.float32),
                             size=(tokens, columns))
        return (buckets + rng.integers(-3, 4, size=(tokens, columns))).astype(np.float32)
    out = rng.standard_normal((tokens, columns)).astype(np.float32)
    if kind == "skewed":
        # The upper half of the experts is never preferred.
        out[:, columns // 2:] -= 30.0
    return out


def layer_inputs(layer, rng, kind, tokens):
    """A dict of the layer's inputs by argument name (x, router, [scale],
    [bias], weights as "weights") as f32 arrays holding values of the
    layer's dtype, with ties, huge or skewed logits by `kind`."""
    d, cols = layer.model_dim, layer.router_columns
    x = rng.standard_normal((tokens, d)).astype(np.float32)
    router = (rng.standard_normal((d, cols)) / np.sqrt(d)).astype(np.float32)
    x[:, 0] = 1.0  # a constant feature: router row 0 acts as a bias
    if kind == "ties" and cols > 1:
        router[:, 1] = router[:, 0]  # experts 0 and 1 always tie
        if tokens > 1:
            x[-1] = x[0]  # and two tokens are identical
    elif kind == "extreme":
        router[1:] *= 0.01
        router[0] = rng.choice(np.array([-1e4, -5e3, 0.0, 5e3, 1e4], np.float32), size=cols)
    elif kind == "skewed":
        router[0, cols // 2:] -= 30.0
    weights = [(rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32)
               for s in layer.weight_shapes()]
    bias = None
    if isinstance(layer.policy, TokenChoice) and layer.policy.bias:
        bias = (0.1 * rng.standard_normal(layer.experts)).astype(np.float32)
    x, router = R.round_to(x, layer.dtype), R.round_to(router, layer.dtype)
    weights = [R.round_to(w, layer.dtype) for w in weights]
    inputs = {"x": x, "router": router, "bias": bias, "weights": weights}
    if isinstance(layer.policy, Soft) and layer.policy.normalize:
        inputs["scale"] = np.array([rng.uniform(2.0, 8.0)], np.float32)
    return inputs


def run_layer(fn, layer, inputs):
    """Calls a compiled layer with `inputs` (see layer_inputs); returns its
    output as f32."""
    args = []
    for spec in fn.signature.args:
        if spec.name in ("x", "router"):
            args.append(native(inputs[spec.name], layer.dtype))
        elif spec.name in ("bias", "scale"):
            args.append(inputs[spec.name])
    args += [native(w, layer.dtype) for w in inputs["weights"]]
    out = fn(*args)
    if layer.dtype == "bf16":
        return R.from_bf16_bits(out)
    return out.astype(np.float32)


def reference_layer(layer, inputs):
    """The reference output and routing of `layer` on `inputs`."""
    return R.layer_forward(layer, inputs["x"], inputs["router"], inputs["weights"],
                           inputs.get("bias"), inputs.get("scale"))


def native(array, dtype):
    """The array as the compiled function takes it (bf16 as uint16 bits)."""
    if dtype == "bf16":
        return R.to_bf16_bits(array)
    if dtype == "f16":
        return np.ascontiguousarray(array, np.float16)
    return np.ascontiguousarray(array, np.float32)
