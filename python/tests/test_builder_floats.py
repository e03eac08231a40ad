"""The builder writes every float so that moe-opt parses it back to the same
double: Python's `repr` gives `5e-05` and `1e+16`, which MLIR's float
literals (they need a '.') reject with "expected '>'"."""

import re
import struct
import subprocess

import pytest

from moe_mlir import builder, runner
from moe_mlir.policies import ExpertChoice, Layer, TokenChoice

# MLIR's float literal: [-+]?[0-9]+[.][0-9]*([eE][-+]?[0-9]+)?
MLIR_FLOAT = re.compile(r"^-?[0-9]+\.[0-9]*([eE][-+]?[0-9]+)?$")

VALUES = [5e-05, 1e16, 1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
          0.1, 1.25, 2.0, 3.0, 123456789012345678.0, 1e22, 1e23, 2.5e-7, 6.02214076e23]


@pytest.mark.parametrize("value", VALUES + [-v for v in VALUES] + [0.0, -0.0])
def test_format_f64_is_an_mlir_literal_that_round_trips(value):
    text = builder.format_f64(value)
    assert MLIR_FLOAT.match(text), text
    got = float(text)
    assert struct.pack("<d", got) == struct.pack("<d", value), (text, got, value)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_format_f64_rejects_non_finite(value):
    with pytest.raises(ValueError):
        builder.format_f64(value)


def _roundtrip(text):
    """Parses and prints `text` with moe-opt; returns the printed IR."""
    proc = subprocess.run([runner.tool("moe-opt"), "-"], input=text, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _printed_factors(ir):
    return [float(v) for v in
            re.findall(r"(?:capacity_factor|routed_scaling_factor) = ([-+0-9.eE]+)", ir)]


# Factors whose repr has no '.' (5e-05, 1e+16) used to break build_layer.
LAYERS = {
    "capacity-5e-05": Layer(8, 16, 4, TokenChoice(2, capacity_factor=5e-05)),
    "capacity-1e16": Layer(8, 16, 4, TokenChoice(2, capacity_factor=1e16)),
    "scaling-1e16": Layer(8, 16, 4, TokenChoice(2, routed_scaling_factor=1e16,
                                                 normalize=True), "relu"),
    "scaling-5e-05-capacity-1e-3": Layer(
        8, 16, 4, TokenChoice(1, capacity_factor=1e-3, routed_scaling_factor=5e-05)),
    "scaling-subnormal": Layer(8, 16, 4, TokenChoice(2, routed_scaling_factor=5e-324)),
    "expert-choice-5e-05": Layer(8, 16, 4, ExpertChoice(5e-05)),
    "expert-choice-1e16": Layer(8, 16, 4, ExpertChoice(1e16), "silu"),
    "static-tokens-1e-3": Layer(8, 16, 4, ExpertChoice(2e-3), "gelu", tokens=4096),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_build_layer_factors_parse_back(name):
    layer = LAYERS[name]
    text, _ = builder.build_layer(layer)
    policy = layer.policy
    want = [policy.capacity_factor] if policy.capacity_factor is not None else []
    if isinstance(policy, TokenChoice) and policy.routed_scaling_factor != 1.0:
        want.append(policy.routed_scaling_factor)
    assert _printed_factors(_roundtrip(text)) == want
