"""Inputs of the fuzzer (``python -m moe_mlir.fuzz``): valid layers drawn
from the whole space the builder covers, inputs known to be invalid, and
blind mutations of the text.

Every case is a function of (seed, index) alone: ``make_case(seed, i)``
draws from ``random.Random(f"{seed}:{i}")``, so a campaign is reproducible
whatever its time budget or number of jobs, and one case can be regenerated
from the two numbers printed next to it.

A case carries an *expectation*:

* ``valid``: the generator built it to be valid. It must parse, verify,
  go through every pass and pipeline it is sent to, and the output must
  parse again.
* ``invalid``: a targeted mutation that breaks a rule the dialect states
  (top_k > E, a capacity factor that is not a positive finite number, a
  size whose product overflows int64, ...). It must be rejected with a
  located diagnostic; exit 0 is a bug.
* ``mutant``: a blind mutation (byte flip, truncation, a line deleted or
  duplicated, a number or keyword replaced) whose validity is unknown. It
  may be accepted or rejected, but never with a crash, a hang, a sanitizer
  report or a diagnostic without a location; if it verifies, the passes it
  goes through must not produce IR that fails the verifier.
"""

import random
import re
from dataclasses import dataclass, field
from typing import List

from . import builder
from .policies import ExpertChoice, Layer, Soft, TokenChoice

INT64_MAX = 2**63 - 1

# Model passes and pipelines, as --pass-pipeline elements. Every case is sent
# through a few of them (drawn per case); a campaign covers them all.
PASSES = [
    "moe-token-to-expert-choice",
    "moe-token-to-expert-choice{keep-normalize=true}",
    "moe-token-to-expert-choice{capacity-factor=%CF%}",
    "moe-soft-to-dense",
    "moe-routing-stats",
    "moe-routing-stats{tokens=%T%}",
    "convert-moe-to-linalg",
]
PIPELINES = [
    "moe-cpu-pipeline",
    "moe-cpu-pipeline{fused=false}",
    "moe-cpu-pipeline{threads=2}",
    "moe-cpu-pipeline{tile-rows=%R%}",
    "moe-cpu-pipeline{vectorize=false results-to-out-params=true}",
    "moe-gpu-emulation-pipeline",
    "moe-gpu-emulation-pipeline{tile-rows=%R%}",
    "moe-gpu-pipeline{chip=sm_80 format=isa}",
]
# Option values the tools must refuse (exit 1, any message).
BAD_OPTIONS = [
    "moe-routing-stats{tokens=-3}",
    "moe-cpu-pipeline{tile-rows=0}",
    "moe-cpu-pipeline{tile-rows=-1}",
    "moe-cpu-pipeline{tile-rows=9223372036854775807}",
    "moe-cpu-pipeline{threads=1025}",
    "moe-cpu-pipeline{threads=-2}",
    "moe-token-to-expert-choice{capacity-factor=-1.0}",
    "moe-token-to-expert-choice{capacity-factor=nan}",
    # C = ceil(cf * T / E) past int64: the pass refuses to rewrite.
    "moe-token-to-expert-choice{capacity-factor=1e300}",
    "moe-gpu-emulation-pipeline{tile-rows=0}",
]


@dataclass
class Case:
    seed: int
    index: int
    expect: str  # "valid", "invalid" or "mutant"
    what: str  # one line: how the case was made
    text: str
    stages: List[str] = field(default_factory=list)  # --pass-pipeline elements
    bad_option: str = ""  # an option value that must be refused

    @property
    def name(self):
        return f"{self.seed}:{self.index}"


def _log_uniform(rng, lo, hi):
    return 10 ** rng.uniform(lo, hi)


def _experts(rng):
    r = rng.random()
    if r < 0.1:
        return 1
    if r < 0.75:
        return rng.randint(2, 16)
    return rng.choice([32, 64, 128, 160, 256, rng.randint(17, 256)])


def _tokens(rng):
    r = rng.random()
    if r < 0.4:
        return None
    if r < 0.5:
        return 0
    if r < 0.65:
        return 1
    if r < 0.95:
        return rng.randint(2, 64)
    return rng.choice([4096, 65536, rng.randint(65, 10000)])


def _dims(rng):
    """D and H: small, now and then 0 (a static zero size is invalid IR
    since issue 14: valid_case expects a diagnostic for it)."""
    pick = lambda: 0 if rng.random() < 0.02 else rng.choice([1, 2, 3, 8, 16, 24, 32, 33, 64])
    return pick(), pick()


def random_policy(rng, experts):
    kind = rng.choice(["dropless", "capacity", "sigmoid", "grouped", "expert", "soft"])
    cf = round(_log_uniform(rng, -3, 3), rng.randint(1, 6)) or 1e-3
    if rng.random() < 0.03:  # valid, but outside the usual range
        cf = rng.choice([5e-05, 1e-05, 1e16])
    k = rng.choice([1, 2, 2, 3, 4, 8, experts])
    k = max(1, min(k, experts))
    if kind == "dropless":
        return TokenChoice(k, normalize=rng.random() < 0.5)
    if kind in ("capacity", "sigmoid"):
        return TokenChoice(
            k, capacity_factor=cf if kind == "capacity" or rng.random() < 0.5 else None,
            score="sigmoid" if kind == "sigmoid" else "softmax",
            normalize=rng.random() < 0.5,
            order=rng.choice(["position", "priority"]) if kind == "capacity" else "position",
            routed_scaling_factor=rng.choice([1.0, 2.5, round(_log_uniform(rng, -2, 2), 4)]))
    if kind == "grouped":
        groups = [g for g in range(2, experts // 2 + 1) if experts % g == 0]
        n_group = rng.choice(groups) if groups else 1
        topk_group = rng.randint(1, n_group) if n_group > 1 and rng.random() < 0.8 else None
        kept = (topk_group or n_group) * (experts // n_group)
        return TokenChoice(
            max(1, min(k, kept)), capacity_factor=cf if rng.random() < 0.3 else None,
            score=rng.choice(["sigmoid", "softmax"]), normalize=rng.random() < 0.7,
            n_group=n_group, topk_group=topk_group, bias=rng.random() < 0.8,
            routed_scaling_factor=rng.choice([1.0, 2.5, round(_log_uniform(rng, -2, 2), 4)]))
    if kind == "expert":
        return ExpertChoice(cf, normalize=rng.random() < 0.5)
    return Soft(rng.choice([1, 1, 2, 3, 4]), normalize=rng.random() < 0.4)


def random_layer(rng):
    experts = _experts(rng)
    policy = random_policy(rng, experts)
    d, h = _dims(rng)
    return Layer(d, h, experts, policy, rng.choice(["relu", "gelu", "silu", "swiglu"]),
                 rng.choice(["f32", "f32", "f16", "bf16"]), _tokens(rng))


def _fill(stage, rng):
    cf = rng.choice([str(round(_log_uniform(rng, -1, 1), 3))] * 8 + ["1e3", "1e-3"])
    return (stage.replace("%CF%", cf)
            .replace("%T%", str(rng.choice([1, 7, 4096])))
            .replace("%R%", str(rng.choice([1, 3, 4, 16, 100]))))


def _stages(rng):
    """Two model passes and two pipelines, and now and then a model pass
    followed by a pipeline."""
    chosen = [_fill(s, rng) for s in rng.sample(PASSES, 2) + rng.sample(PIPELINES, 2)]
    if rng.random() < 0.3:
        chosen.append(_fill(rng.choice(PASSES[:3]), rng) + "," + _fill(rng.choice(PIPELINES), rng))
    return chosen


def _zero_sized(layer):
    """Whether a static size of the layer is 0, which the verifiers reject
    (dynamic T may be 0 at run time; a static T, D or H may not)."""
    return 0 in (layer.tokens, layer.model_dim, layer.hidden_dim)


def valid_case(rng, seed, index):
    layer = random_layer(rng)
    expect = "invalid" if _zero_sized(layer) else "valid"
    if rng.random() < 0.15:
        expect = "invalid" if layer.tokens == 0 else "valid"  # no D or H here
        text, _ = builder.build_route(layer.policy, layer.experts, layer.tokens)
        what = f"route-only {builder.policy_attr(layer.policy)} E={layer.experts} T={layer.tokens}"
    else:
        text, _ = builder.build_layer(layer)
        what = (f"layer {builder.policy_attr(layer.policy)} E={layer.experts} T={layer.tokens} "
                f"D={layer.model_dim} H={layer.hidden_dim} {layer.activation} {layer.dtype}")
    return Case(seed, index, expect, what, text, _stages(rng))


# -- Targeted invalid inputs ---------------------------------------------------

_BAD_FLOATS = ["0.0", "-1.0", "-0.0", "1.0e400", "0x7FF0000000000000", "0x7FF8000000000000",
               "0xFFF0000000000000", "0x0000000000000000"]


def _small_layer(rng, policy, experts, tokens=None):
    return Layer(4, 8, experts, policy, "relu", "f32", tokens)


def invalid_case(rng, seed, index):
    """A layer that breaks one stated rule, and the rule."""
    e = rng.randint(2, 16)
    kind = rng.choice(["top_k", "cf", "rsf", "n_group", "topk_group", "slots", "overflow"])
    layer = _small_layer(rng, TokenChoice(2 if e >= 2 else 1, capacity_factor=1.0), e)
    text, _ = builder.build_layer(layer)
    attr = builder.policy_attr(layer.policy)
    if kind == "top_k":
        bad = attr.replace("top_k = 2", f"top_k = {rng.choice([0, -1, e + 1, INT64_MAX])}")
    elif kind == "cf":
        bad = attr.replace("capacity_factor = 1.0", f"capacity_factor = {rng.choice(_BAD_FLOATS)}")
    elif kind == "rsf":
        bad = attr.replace(">", f", routed_scaling_factor = {rng.choice(_BAD_FLOATS)}>")
    elif kind == "n_group":
        groups = [g for g in range(2, e + 1) if e % g] or [e + 1]
        bad = attr.replace(">", f", n_group = {rng.choice(groups + [0, -4])}>")
    elif kind == "topk_group":
        bad = attr.replace(">", f", n_group = 1, topk_group = {rng.choice([0, 2, -1])}>")
    elif kind == "slots":
        text, _ = builder.build_layer(_small_layer(rng, Soft(1), e))
        attr, bad = "slots_per_expert = 1", f"slots_per_expert = {rng.choice([0, -1])}"
    else:
        return overflow_case(rng, seed, index)
    return Case(seed, index, "invalid", f"invalid {kind}: {bad}", text.replace(attr, bad),
                ["moe-cpu-pipeline"])


def overflow_case(rng, seed, index):
    """Static sizes whose products overflow int64 (T * k, cf * k * T), typed
    as the wrapped product: the verifier must not agree with the wrap."""
    k = rng.choice([2, 4, 8])
    t = rng.choice([2**62, 2**61 + 1, INT64_MAX, 2**63 // k + 1])
    e = rng.choice([8, 16])
    wrapped = (t * k) % 2**64
    wrapped = wrapped - 2**64 if wrapped >= 2**63 else wrapped
    n = wrapped if wrapped >= 0 else 0
    text = (f"func.func @route(%logits: tensor<{t}x{e}xf32>) -> (tensor<{n}xi32>, "
            f"tensor<{n}xf32>, tensor<{e + 1}xi32>) {{\n"
            f"  %r0, %r1, %r2 = moe.route #moe.token_choice<top_k = {k}> %logits : "
            f"tensor<{t}x{e}xf32> -> tensor<{n}xi32>, tensor<{n}xf32>, tensor<{e + 1}xi32>\n"
            f"  return %r0, %r1, %r2 : tensor<{n}xi32>, tensor<{n}xf32>, tensor<{e + 1}xi32>\n}}\n")
    return Case(seed, index, "invalid", f"invalid overflow: T={t} k={k} ids typed {n}", text,
                ["moe-cpu-pipeline"])


# -- Blind mutations -----------------------------------------------------------

_INTERESTING_INTS = ["0", "1", "-1", "2", "3", "7", "65", "2147483648", "4294967296",
                     str(2**62), str(INT64_MAX), "9223372036854775808", "?"]
_INTERESTING_FLOATS = ["0.0", "-0.0", "1.0e-300", "5.0e-05", "1.0e+16", "1.0e17", "1.0e300",
                       "1.0e400", "0x7FF0000000000000", "0x7FF8000000000000", "1e-05", "3"]
_SWAPS = [("f32", "f16"), ("f32", "bf16"), ("f32", "i32"), ("token_choice", "expert_choice"),
          ("expert_choice", "soft"), ("softmax", "sigmoid"), ("position", "priority"),
          ("linalg.matmul", "linalg.batch_matmul"), ("moe.yield", "func.return"),
          ("indices(", "weights("), ("tensor<", "memref<"), ("true", "false"), ("?", "1")]
_BYTES = b"0123456789<>%(){}[]:,x?-#\"=. \n\x00\xff"


def _mutate_once(rng, text):
    ops = ["flip", "truncate", "delete", "duplicate", "swap-lines", "int", "float", "keyword"]
    op = rng.choice(ops)
    lines = text.split("\n")
    if op == "flip":
        data = bytearray(text.encode("utf-8", errors="surrogateescape"))
        pos = rng.randrange(len(data))
        data[pos] = rng.choice(_BYTES) if rng.random() < 0.8 else rng.randrange(256)
        return op, data.decode("utf-8", errors="surrogateescape")
    if op == "truncate":
        return op, text[:rng.randrange(len(text))]
    if op in ("delete", "duplicate", "swap-lines"):
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return op, "\n".join(lines)
    pattern = {"int": r"(?:(?<=[<x])|(?<![\w.%#@]))\d+(?=x|[^\w.]|$)",
               "float": r"\d+\.\d+(?:e[-+]?\d+)?", "keyword": None}[op]
    if op == "keyword":
        old, new = rng.choice(_SWAPS)
        if rng.random() < 0.5:
            old, new = new, old
        spots = [m.start() for m in re.finditer(re.escape(old), text)]
        if not spots:
            return op, text
        at = rng.choice(spots)
        return op, text[:at] + new + text[at + len(old):]
    spots = list(re.finditer(pattern, text))
    if not spots:
        return op, text
    m = rng.choice(spots)
    new = rng.choice(_INTERESTING_INTS if op == "int" else _INTERESTING_FLOATS)
    if op == "int" and rng.random() < 0.3:
        new = str(int(m.group()) + rng.choice([-1, 1]))
    return op, text[:m.start()] + new + text[m.end():]


def mutant_case(rng, seed, index):
    base = valid_case(rng, seed, index)
    text, done = base.text, []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op, text = _mutate_once(rng, text)
        done.append(op)
    return Case(seed, index, "mutant", f"mutant ({'+'.join(done)}) of {base.what}", text,
                rng.sample(PIPELINES[:2], 1) + ["convert-moe-to-linalg"])


def option_case(rng, seed, index):
    layer = _small_layer(rng, TokenChoice(2, capacity_factor=1.0), 4)
    text, _ = builder.build_layer(layer)
    bad = rng.choice(BAD_OPTIONS)
    return Case(seed, index, "invalid", f"bad option {bad}", text, [], bad_option=bad)


def make_case(seed, index):
    rng = random.Random(f"{seed}:{index}")
    r = rng.random()
    if r < 0.45:
        return valid_case(rng, seed, index)
    if r < 0.55:
        return invalid_case(rng, seed, index)
    if r < 0.58:
        return option_case(rng, seed, index)
    return mutant_case(rng, seed, index)
