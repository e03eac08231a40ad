"""The fuzzer itself (python/moe_mlir/fuzz.py): its inputs are a function of
(seed, index), its generator covers every policy, its oracle classifies tool
outcomes as documented, and a short campaign runs end to end."""

import os
import random
import signal
import subprocess
import xml.etree.ElementTree as ET

import pytest

from moe_mlir import builder, fuzz, fuzz_gen, runner
from moe_mlir.policies import TokenChoice


def test_cases_are_deterministic():
    for index in range(40):
        a, b = fuzz_gen.make_case(5, index), fuzz_gen.make_case(5, index)
        assert (a.text, a.stages, a.expect, a.bad_option) == \
            (b.text, b.stages, b.expect, b.bad_option)
    assert fuzz_gen.make_case(5, 0).text != fuzz_gen.make_case(6, 0).text


@pytest.mark.parametrize("bad", fuzz_gen.BAD_OPTIONS)
def test_bad_options_are_refused(tmp_path, bad):
    # The oracle expects every BAD_OPTIONS entry to be refused: an option
    # value that became valid (threads=0 means every core) is a false
    # failure in whichever campaign happens to draw it.
    layer = fuzz_gen._small_layer(random.Random(0), TokenChoice(2, capacity_factor=1.0), 4)
    text, _ = builder.build_layer(layer)
    src = tmp_path / "layer.mlir"
    src.write_text(text)
    proc = subprocess.run([runner.tool("moe-opt"), str(src), f"--pass-pipeline=builtin.module({bad})",
                           "-o", os.devnull], capture_output=True, text=True)
    assert proc.returncode != 0, f"{bad} accepted"
    assert "error" in proc.stderr


def test_generator_covers_every_policy_and_size():
    seen, zero = set(), False
    for index in range(600):
        case = fuzz_gen.make_case(1, index)
        if case.expect == "valid":
            seen.update(word for word in ("token_choice", "expert_choice", "soft", "n_group",
                                          "priority", "sigmoid", "bias(", "bf16", "f16",
                                          "tensor<1x", "tensor<?x")
                        if word in case.text)
            assert "tensor<0x" not in case.text
        # Static zero sizes are generated, as inputs the verifiers reject.
        zero |= case.expect == "invalid" and "tensor<0x" in case.text
    assert len(seen) == 11, seen
    assert zero


@pytest.mark.parametrize("rc,err,want", [
    (None, "", "hang"),
    (-signal.SIGSEGV, "", "crash"),
    (134, "LLVM ERROR: boom", "crash"),
    (1, "==1==ERROR: AddressSanitizer: heap-buffer-overflow", "sanitizer"),
    (1, "x.cpp:3:4: runtime error: signed integer overflow", "sanitizer"),
    (1, "error: no location", "unlocated-diagnostic"),
    (1, "in.mlir:3:4: error: 'moe.route' op bad", None),
    (0, "", None),
])
def test_classify(rc, err, want):
    got = fuzz.classify(rc, err)
    assert (got[0] if got else None) == want


def test_short_campaign(tmp_path, capsys):
    build = os.environ.get("MOE_BUILD", str(runner.REPO_ROOT / "build"))
    status = fuzz.main(["--seed", "1", "--cases", "4", "--time", "0", "--out", str(tmp_path),
                        "--build", build])
    assert status in (0, 1)  # 1: it found a bug, which is its job
    assert "verified" in capsys.readouterr().out
    cases = list(ET.parse(tmp_path / "fuzz.xml").getroot().iter("testcase"))
    assert len(cases) == len(fuzz.CLASSES)
    for line in (tmp_path / "failures.txt").read_text().splitlines():
        name = line.split("\t")[0]
        assert (tmp_path / "corpus" / name).exists()
        reason = (tmp_path / "corpus" / name).with_suffix(".reason").read_text()
        assert len(reason.splitlines()) == 1


# Each input the first campaigns found (tools/fuzz-findings, issue 14) and
# what it must do now: lower everywhere, or be rejected with a located
# diagnostic naming the rule.
FINDINGS = {
    "zero-tokens-capacity-layer.mlir": "T is 0 in the scores",
    "zero-tokens-soft-route.mlir": "T is 0 in the scores",
    "gpu-e1-t1-route.mlir": None,
    "gpu-t1-soft-route.mlir": None,
    "dropless-tk-overflow.mlir": "which overflows int64",
    "dropless-tk-wraps-to-zero.mlir": "which overflows int64",
    "capacity-factor-1e300.mlir": "does not fit int64",
    "token-to-ec-cf-1e300.mlir": None,
    "hex-capacity-factor.mlir": "must be a positive finite number",
}
FINDING_PIPELINES = ["moe-cpu-pipeline", "moe-cpu-pipeline{fused=false}",
                     "moe-gpu-emulation-pipeline", "moe-gpu-pipeline{chip=sm_80 format=isa}",
                     "moe-token-to-expert-choice,moe-cpu-pipeline"]


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_fuzz_findings_stay_fixed(name):
    import subprocess
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "fuzz-findings", name)
    rejected = FINDINGS[name]
    for pipeline in FINDING_PIPELINES:
        proc = subprocess.run([str(runner.tool("moe-opt")), path,
                               f"--pass-pipeline=builtin.module({pipeline})", "-o", os.devnull],
                              capture_output=True, text=True, timeout=300)
        assert fuzz.classify(proc.returncode, proc.stderr) is None, proc.stderr[-2000:]
        if rejected is None:
            assert proc.returncode == 0, f"{pipeline}: {proc.stderr[-2000:]}"
        else:
            assert proc.returncode == 1 and rejected in proc.stderr, f"{pipeline}: {proc.stderr}"
