"""Routing policies and layer descriptions shared by the builder and the
reference, mirroring the ``#moe.token_choice``, ``#moe.expert_choice`` and
``#moe.soft`` attributes."""

from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(frozen=True)
class TokenChoice:
    """Every token picks its top-k experts (``#moe.token_choice``)."""

    top_k: int
    capacity_factor: Optional[float] = None  # None: dropless
    score: str = "softmax"  # or "sigmoid"
    normalize: bool = False
    order: str = "position"  # or "priority"
    n_group: int = 1
    topk_group: Optional[int] = None  # None: keep every group
    routed_scaling_factor: float = 1.0
    bias: bool = False  # whether the route takes a per-expert score bias

    @property
    def dropless(self):
        return self.capacity_factor is None


@dataclass(frozen=True)
class ExpertChoice:
    """Every expert picks its top-C tokens (``#moe.expert_choice``)."""

    capacity_factor: float
    normalize: bool = False  # divide each token's gates by their sum


@dataclass(frozen=True)
class Soft:
    """Soft MoE: every slot mixes all tokens (``#moe.soft``).

    With `normalize`, the logits are computed from l2-normalized tokens and
    slot parameters times a learned scale (Puigcerver et al., section 2.3):
    ``logits = scale * (x / |x|) @ (phi / |phi|)``, norms per token and per
    slot column, ``|v| = sqrt(sum v^2 + 1e-6)``. The layer then takes the
    scale as a ``tensor<1xf32>`` argument after the router."""

    slots_per_expert: int
    normalize: bool = False


Policy = Union[TokenChoice, ExpertChoice, Soft]

ACTIVATIONS = ("relu", "gelu", "silu", "swiglu")


@dataclass(frozen=True)
class Layer:
    """One MoE layer: sizes, routing policy, expert body and element type."""

    model_dim: int
    hidden_dim: int
    experts: int
    policy: Policy
    activation: str = "swiglu"
    dtype: str = "f32"  # or "bf16", "f16"
    tokens: Optional[int] = None  # None: dynamic token count

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}")
        if self.dtype not in ("f32", "bf16", "f16"):
            raise ValueError("dtype must be 'f32', 'bf16' or 'f16'")

    @property
    def router_columns(self):
        if isinstance(self.policy, Soft):
            return self.experts * self.policy.slots_per_expert
        return self.experts

    @property
    def gated(self):
        return self.activation == "swiglu"

    def weight_shapes(self):
        """Shapes of the expert weights, in operand order."""
        e, d, h = self.experts, self.model_dim, self.hidden_dim
        if self.gated:
            return [(e, d, h), (e, d, h), (e, h, d)]
        return [(e, d, h), (e, h, d)]
