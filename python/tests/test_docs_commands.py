"""Every command the README and docs/*.md show runs as written.

The fenced blocks of README.md and docs/*.md (not the generated references
under docs/Dialects and docs/Passes, which docs-up-to-date.test checks) carry
their language: `sh` blocks are commands, `python` blocks are snippets, and
mlir, cmake, c, cpp and text blocks are not run. Each `sh` block runs command
by command (continuations joined, comments dropped) in a temporary directory
laid out like the repository root: test/, python/ and tools/ lead to the
source tree and build/ to the build, entry by entry, so that the relative
paths of the docs resolve and whatever a command writes stays in the
temporary directory. A command shown with its output (`# remark: ...` lines
after it) must print that output.

A command that cannot run as written in every test run is in EXEMPTIONS,
with why and what runs instead. Every other command runs, so a new command
runs as soon as a doc shows it, and an exemption that no doc shows any more
fails.
"""

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import pytest

from moe_mlir import builder
from moe_mlir.policies import Layer, TokenChoice

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MOE_BUILD", REPO / "build")).resolve()
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

SHELL = {"sh"}
PYTHON = {"python"}
NOT_COMMANDS = {"mlir", "cmake", "c", "cpp", "text"}

# How a command starts, to catch one in a block that is not run.
COMMAND_STARTS = ("build/bin/", "PYTHONPATH=", "cmake ", "clang-22 ", "/usr/lib/llvm-22/bin/",
                  "/usr/bin/python3", "python3 ", "python ", "bash ", "apt-get ", "sudo ",
                  "moe-opt ", "mlir-opt ", "mlir-runner ", "ptxas ", "LD_PRELOAD=", "MOE_")

# The CUDA toolkit (libdevice, ptxas) is not in Debian's archive, so CI has none.
HAVE_CUDA = (BUILD / "lib" / "libMoECUDARuntime.so").exists() and shutil.which("ptxas")

AS_WRITTEN = "as written"
TIMEOUT_S = 300


@dataclass(frozen=True)
class Exemption:
    """Why a command does not run as written in every test run, and what
    runs instead."""

    reason: str
    instead: Optional[str] = None  # None: nothing runs; AS_WRITTEN or a bounded form
    needs_cuda: bool = False  # runs only where a CUDA toolkit is installed
    interrupt_after: Optional[float] = None  # seconds before a SIGINT (Ctrl-C) ends it

    def runs_here(self):
        return self.instead is not None and (HAVE_CUDA or not self.needs_cuda)


NEEDS_CUDA = "needs the CUDA toolkit (libdevice), which Debian's archive, hence CI, lacks"
NEEDS_GPU = "needs a GPU and its driver"

# Commands (whitespace collapsed) and lines of Python snippets that do not
# run as written in every test run.
EXEMPTIONS = {
    "bash tools/test.sh":
        Exemption("runs this test; it is what CI runs (.ci/run)"),
    "apt-get install python3-torch libopenblas0-pthread":
        Exemption("a test must not install packages (CI runs as root with Debian's archive); "
                  "--simulate resolves the same packages",
                  "apt-get install --simulate python3-torch libopenblas0-pthread"),
    "PYTHONPATH=python /usr/bin/python3 -m moe_mlir.bench --json moe-bench.json":
        Exemption("every shape takes many minutes; the quick shape measures the machine, "
                  "runs every contender and writes the record (~20 s)",
                  "PYTHONPATH=python /usr/bin/python3 -m moe_mlir.bench --json moe-bench.json "
                  "--shapes quick"),
    "PYTHONPATH=python /usr/bin/python3 -m moe_mlir.bench --threads 2 --json moe-bench.json":
        Exemption("the README's benchmark with the thread count these figures were measured "
                  "with; the README's command runs (bounded), and every run spends ~20 s "
                  "measuring the machine, too long to repeat"),
    'build/bin/moe-opt layer.mlir --moe-gpu-pipeline="chip=sm_90 format=isa" '
    "--moe-dump-gpu-objects=dir=ptx":
        Exemption(NEEDS_CUDA, AS_WRITTEN, needs_cuda=True),
    'build/bin/moe-opt layer.mlir --moe-gpu-pipeline="chip=sm_90 format=isa" '
    "--moe-dump-gpu-objects=dir=ptx -o layer.llvm.mlir":
        Exemption(NEEDS_CUDA, AS_WRITTEN, needs_cuda=True),
    "ptxas -v -arch=sm_90 ptx/layer_kernel_3.sm_90.ptx -o /dev/null":
        Exemption("ptxas comes with the CUDA toolkit", AS_WRITTEN, needs_cuda=True),
    "PYTHONPATH=python /usr/bin/python3 python/tests/gpu_check.py build gpu-artifacts":
        Exemption(NEEDS_CUDA + "; 39 layers x 2 chips take minutes, one layer for one "
                  "chip goes through the same build",
                  "PYTHONPATH=python /usr/bin/python3 python/tests/gpu_check.py build "
                  "gpu-artifacts --chip sm_90 --layer mixtral-dropless-swiglu-f32",
                  needs_cuda=True),
    "python3 python/tests/gpu_check.py run gpu-artifacts":
        Exemption(NEEDS_GPU),
    "build/bin/moe-opt layer.mlir --moe-gpu-pipeline | MOE_CUDA_FATAL_ERRORS=1 "
    "/usr/lib/llvm-22/bin/mlir-runner -e main -entry-point-result=void "
    "--shared-libs=build/lib/libMoECUDARuntime.so,/usr/lib/llvm-22/lib/libmlir_c_runner_utils.so,"
    "/usr/lib/llvm-22/lib/libmlir_runner_utils.so":
        Exemption(NEEDS_GPU + " (test/GPU/runner-without-device.test checks that it links "
                  "and fails cleanly without one)"),
    "PYTHONPATH=python /usr/bin/python3 -m moe_mlir.fuzz --seed 1 --time 120 --jobs 2 "
    "--out build/fuzz-out":
        Exemption("tools/test.sh runs the 120 s campaign in CI; 3 s run the same campaign",
                  "PYTHONPATH=python /usr/bin/python3 -m moe_mlir.fuzz --seed 1 --time 3 "
                  "--jobs 2 --out build/fuzz-out"),
    "PYTHONPATH=python /usr/bin/python3 -m moe_mlir.fuzz --seed 7 --long --jobs 2 "
    "--out build/fuzz-long":
        Exemption("never ends by itself; a SIGINT after 3 s, as Ctrl-C, must end it with its "
                  "report written and exit 0", AS_WRITTEN, interrupt_after=3),
    "bash tools/check-sanitizers.sh":
        Exemption("builds build-asan/ (14 minutes from scratch) and runs tests under the "
                  "sanitizers; tools/test.sh runs it in CI"),
    "LD_PRELOAD=$(clang-22 -print-file-name=libclang_rt.asan-x86_64.so) "
    "ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0 MOE_SANITIZE=1 MOE_BUILD=build-asan "
    "PYTHONPATH=python /usr/bin/python3 -m pytest -q python/tests/test_data_fuzz.py":
        Exemption("needs build-asan/, which tools/check-sanitizers.sh builds after this test "
                  "in CI and runs these tests under"),
    "cmake --build build --target check-moe":
        Exemption("the build/ this block configures is fresh: this builds everything (tens of "
                  "minutes); tools/test.sh runs check-moe on CI's build"),
    "cmake --install build --prefix /opt/moe-mlir":
        Exemption("/opt is outside the temporary directory (and needs root); DESTDIR stages "
                  "the same install in it",
                  "DESTDIR=$PWD/destdir cmake --install build --prefix /opt/moe-mlir"),
    'gpu.build_artifact(text, sig, "artifacts", chip="sm_90")':
        Exemption(NEEDS_CUDA, AS_WRITTEN, needs_cuda=True),
    'fn, runtime = gpu.load_artifact("artifacts/moe_layer.sm_90.json")':
        Exemption(NEEDS_GPU),
}

# The test's prelude to every Python snippet: `layer` is the README's
# Mixtral-like layer, which the snippets of docs/cpu-codegen.md and
# docs/gpu.md continue, and x, router, w_gate, w_up, w_down are its
# arguments for 16 tokens. Its other names are private, so that a snippet
# that misses an import still fails.
PRELUDE = """\
import numpy as _np
from moe_mlir import builder as _builder
from moe_mlir.policies import Layer as _Layer, TokenChoice as _TokenChoice
layer = _Layer(model_dim=256, hidden_dim=512, experts=8,
               policy=_TokenChoice(top_k=2, normalize=True), activation="swiglu")
_rng = _np.random.default_rng(0)
x, router, w_gate, w_up, w_down = (
    (0.1 * _rng.standard_normal([16 if d == "T" else d for d in _a.shape])).astype(_np.float32)
    for _a in _builder.build_layer(layer)[1].args)
"""


# --------------------------------------------------------------- the docs --
@dataclass
class Block:
    doc: str
    line: int
    lang: str
    lines: List[str]

    @property
    def name(self):
        return f"{self.doc}:{self.line}"


@dataclass
class Command:
    text: str  # what bash runs: continuations joined, comments dropped
    output: List[str] = field(default_factory=list)  # output the doc shows

    @property
    def key(self):
        return " ".join(self.text.split())


def read_blocks():
    blocks = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        start = None
        for number, line in enumerate(lines, 1):
            fence = re.match(r"\s*```(\S*)\s*$", line)
            if not fence:
                continue
            if start is None:
                start, lang = number, fence.group(1)
            else:
                blocks.append(Block(doc.relative_to(REPO).as_posix(), start, lang,
                                    lines[start:number - 1]))
                start = None
        assert start is None, f"{doc}:{start}: unterminated fence"
    return blocks


def strip_comment(line):
    """`line` without a trailing `# comment` (a `#` outside quotes that starts
    a word, as bash reads it)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def shell_commands(block):
    logical, current = [], ""
    for line in block.lines:
        if line.endswith("\\"):
            current += line[:-1]
        else:
            logical.append(current + line)
            current = ""
    commands, in_output = [], False
    for line in logical:
        stripped = line.strip()
        if stripped.startswith("#"):
            # `# remark: ...` after a command is its output; `#   ...` continues it.
            if commands and re.match(r"#\s*(remark|warning|error|note):", stripped):
                commands[-1].output.append(stripped[1:].strip())
                in_output = True
            elif in_output and re.match(r"#\s{2,}\S", stripped):
                commands[-1].output[-1] += " " + stripped[1:].strip()
            else:
                in_output = False
            continue
        in_output = False
        text = strip_comment(line)
        if text.strip():
            commands.append(Command(text.strip()))
    return commands


def python_lines(block):
    return {" ".join(line.split()) for line in block.lines if line.strip()}


BLOCKS = read_blocks()
SHELL_BLOCKS = [b for b in BLOCKS if b.lang in SHELL]
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang in PYTHON]


# ---------------------------------------------------- the temporary root --
def small_layer(root):
    """layer.mlir: the Mixtral-like layer of the README's Python example, as
    the builder writes it (function @layer: kernels layer_kernel_N)."""
    layer = Layer(model_dim=256, hidden_dim=512, experts=8,
                  policy=TokenChoice(top_k=2, normalize=True), activation="swiglu")
    (root / "layer.mlir").write_text(builder.build_layer(layer, "layer")[0])


def mixtral_sized_layer(root):
    """The routing-stats example: "a Mixtral-sized layer (bf16, D = 4096,
    H = 14336)", top-2 with capacity factor 1.25."""
    layer = Layer(model_dim=4096, hidden_dim=14336, experts=8,
                  policy=TokenChoice(top_k=2, capacity_factor=1.25), activation="swiglu",
                  dtype="bf16")
    (root / "layer.mlir").write_text(builder.build_layer(layer, "layer")[0])


def layer_with_main(root):
    """The JIT example: "a @main that prints with printMemrefF32"."""
    shutil.copy(REPO / "test/Integration/CPU/token-choice-dropless.mlir", root / "layer.mlir")


def saved_fuzz_input(root):
    """--replay reruns saved inputs: one that the fuzzer found, fixed since."""
    corpus = root / "build/fuzz-out/corpus"
    corpus.mkdir(parents=True)
    shutil.copy(REPO / "tools/fuzz-findings/gpu-t1-soft-route.mlir", corpus)


def source_tree(root):
    """`cmake -S . -B build`: the sources, a fresh build/, and a copy of docs/
    for moe-update-docs to write."""
    shutil.rmtree(root / "build")
    for name in ("CMakeLists.txt", "include", "lib"):
        (root / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "docs", root / "docs")


# What a block's commands assume beyond the repository layout, by a command
# of the block.
SETUPS = {
    "-moe-routing-stats=tokens=4096": mixtral_sized_layer,
    "--moe-cpu-pipeline | /usr/lib/llvm-22/bin/mlir-runner": layer_with_main,
    "--replay build/fuzz-out/corpus/*.mlir": saved_fuzz_input,
    "cmake -G Ninja -S . -B build": source_tree,
}


def make_root(root, block_text):
    for name in ("test", "python", "tools"):
        (root / name).symlink_to(REPO / name)
    # build/ holds links to the build's entries, so build/fuzz-out lands here.
    (root / "build").mkdir()
    for entry in BUILD.iterdir():
        (root / "build" / entry.name).symlink_to(entry)
    (root / "tmp").mkdir()
    small_layer(root)
    for key, setup in SETUPS.items():
        if key in block_text:
            setup(root)


def environment(root, **extra):
    env = dict(os.environ, MOE_BUILD=str(BUILD), TMPDIR=str(root / "tmp"),
               PYTHONDONTWRITEBYTECODE="1")
    # The commands set PYTHONPATH themselves where they need it.
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run(argv, root, interrupt_after=None, **extra_env):
    proc = subprocess.Popen(argv, cwd=root, env=environment(root, **extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    try:
        if interrupt_after is not None:
            try:
                proc.wait(interrupt_after)
            except subprocess.TimeoutExpired:
                # bash execs a lone command, so this reaches it as Ctrl-C would.
                proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{argv[-1]}: no end after {TIMEOUT_S} s\n{out[-4000:]}")
    return proc.returncode, out


def shows(output, expected):
    """Whether a line of `output` holds `expected`, whose `...` stand for
    anything (whitespace compared loosely)."""
    parts = [p.strip().rstrip(",").strip() for p in " ".join(expected.split()).split("...")]
    pattern = ".*?".join(re.escape(p) for p in parts if p)
    return any(re.search(pattern, " ".join(line.split())) for line in output.splitlines())


# ------------------------------------------------------------------ tests --
def test_fences_name_their_language():
    known = SHELL | PYTHON | NOT_COMMANDS
    unknown = [f"{b.name}: ```{b.lang}" for b in BLOCKS if b.lang not in known]
    assert not unknown, (f"tag these blocks with one of {sorted(known)}:\n" + "\n".join(unknown))


def test_commands_are_in_sh_blocks():
    stray = [f"{b.name}: {line.strip()}" for b in BLOCKS if b.lang in NOT_COMMANDS
             for line in b.lines if line.strip().startswith(COMMAND_STARTS)]
    assert not stray, "commands outside ```sh blocks (not run):\n" + "\n".join(stray)


def test_exemptions_and_setups_are_in_the_docs():
    shown = {c.key for b in SHELL_BLOCKS for c in shell_commands(b)}
    shown |= set().union(*(python_lines(b) for b in PYTHON_BLOCKS))
    stale = [key for key in EXEMPTIONS if key not in shown]
    assert not stale, "exemptions for what no doc shows any more:\n" + "\n".join(stale)
    text = "\n".join(c.key for b in SHELL_BLOCKS for c in shell_commands(b))
    stale = [key for key in SETUPS if key not in text]
    assert not stale, "setups for commands no doc shows any more:\n" + "\n".join(stale)


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.name)
def test_sh_block(block, tmp_path):
    commands = shell_commands(block)
    assert commands, f"{block.name}: a ```sh block without a command"
    make_root(tmp_path, "\n".join(c.key for c in commands))
    skipped = []
    for command in commands:
        exemption = EXEMPTIONS.get(command.key)
        text = command.text
        if exemption:
            if not exemption.runs_here():
                skipped.append(f"{command.key}: {exemption.reason}")
                continue
            if exemption.instead != AS_WRITTEN:
                text = exemption.instead
        if command.key.startswith("bash tools/run.sh"):
            # tools/setup.sh deletes a build configured with another compiler.
            cache = (BUILD / "CMakeCache.txt").read_text()
            if not re.search(r"CMAKE_CXX_COMPILER:\S*=\S*clang\+\+-22", cache):
                skipped.append(f"{command.key}: {BUILD} is not a clang++-22 build")
                continue
        status, output = run(["bash", "-o", "pipefail", "-c", text], tmp_path,
                             exemption.interrupt_after if exemption else None)
        assert status == 0, f"{block.name}: `{text}` exited with {status}:\n{output[-6000:]}"
        for expected in command.output:
            assert shows(output, expected), (f"{block.name}: `{text}` did not print\n"
                                             f"  {expected}\nbut:\n{output[-6000:]}")
    if skipped and len(skipped) == len(commands):
        pytest.skip("; ".join(skipped))


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.name)
def test_python_block(block, tmp_path):
    exemption = next((EXEMPTIONS[k] for k in python_lines(block) if k in EXEMPTIONS), None)
    if exemption and not exemption.runs_here():
        pytest.skip(exemption.reason)
    make_root(tmp_path, "")
    script = tmp_path / "snippet.py"
    script.write_text(PRELUDE + "\n".join(block.lines) + "\n")
    # As the README says: PYTHONPATH=python, Debian's /usr/bin/python3.
    status, output = run(["/usr/bin/python3", script.name], tmp_path, PYTHONPATH="python")
    assert status == 0, f"{block.name} failed:\n{output[-6000:]}"
