"""Structure-aware fuzzer of the moe-mlir compiler.

    PYTHONPATH=python /usr/bin/python3 -m moe_mlir.fuzz --seed 1 --time 240 --out fuzz-out

Cases come from ``fuzz_gen`` (valid layers of every policy, targeted invalid
inputs, blind text mutations). Each one is written to a file and driven
through ``build/bin/moe-opt`` *subprocesses*, one per stage: parse + verify
(``--verify-roundtrip``), then a few model passes and pipelines drawn per
case, then one more ``moe-opt`` that parses every output again. Running the
tool out of process isolates crashes (a segfault or an abort is one failed
case, not a dead fuzzer), lets a timeout catch hangs, and exercises exactly
the binary users run -- built with MOE_ENABLE_SANITIZERS, the same driver
reports ASan/UBSan findings. The price is ~50 ms of process start per stage.

Oracle: valid input must parse and lower through every stage (exit 0) and
the output must parse again; invalid input must get ``file:line:col:
error:`` and exit 1; an invalid option value must be refused. Any signal,
exit code other than 0/1, sanitizer report, timeout, diagnostic without a
location, or op verifier error raised after a pass is a bug, whatever the
input. Every failing input is saved under ``OUT/corpus/`` with a one-line
``.reason`` file next to it; ``OUT/failures.txt`` lists input, class,
command and symptom; ``OUT/fuzz.xml`` is a JUnit report with one testcase
per oracle class. Exit status: 1 when a bug was found.
"""

import argparse
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from . import fuzz_gen

REPO_ROOT = Path(__file__).resolve().parents[2]

# Oracle classes: one JUnit testcase each, in this order.
CLASSES = {
    "crash": "no input makes moe-opt die on a signal or exit with a code other than 0/1",
    "sanitizer": "no input triggers an ASan/UBSan report",
    "hang": "every moe-opt run ends within the timeout",
    "unlocated-diagnostic": "every error has a file:line:col location",
    "verifier-after-pass": "no pass produces IR that fails an op verifier",
    "valid-rejected": "valid input parses and verifies",
    "lowering-failed": "valid input goes through every pass and pipeline",
    "output-does-not-reparse": "what a pass prints parses again",
    "negative-stats": "moe-routing-stats never reports a negative size or count",
    "invalid-accepted": "invalid input is rejected (exit 1)",
    "bad-option-accepted": "invalid option values are refused",
}
LOCATED = re.compile(r"^[^\s:][^:\n]*:\d+:\d+: error:", re.M)
SANITIZER = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|"
                       r"UndefinedBehaviorSanitizer|SUMMARY: \w+Sanitizer")
CRASH = re.compile(r"PLEASE submit a bug report|Stack dump:|LLVM ERROR:|Assertion .* failed")


class Tool:
    def __init__(self, build, timeout, env=None):
        self.moe_opt = str(Path(build) / "bin" / "moe-opt")
        self.timeout = timeout
        self.env = env
        self.runs = 0

    def __call__(self, args):
        """Runs moe-opt; returns (rc, stderr, seconds). rc is None on timeout."""
        cmd = [self.moe_opt] + args
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, env=self.env)
        self.runs += 1
        try:
            _, err = proc.communicate(timeout=self.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            rc = None
        return rc, err.decode(errors="replace"), time.monotonic() - start


def _first(pattern, text, default=""):
    m = re.search(pattern, text, re.M)
    return m.group(0).strip() if m else default


def _normalize(message):
    """A failure's signature: numbers, SSA names and paths do not matter."""
    message = re.sub(r"^\S*?:\d+:\d+: ", "", message)
    message = re.sub(r"0x[0-9A-Fa-f]+", "N", message)
    message = re.sub(r"%[\w#]+", "%V", message)
    return re.sub(r"\d+", "N", message)[:160]


def classify(rc, err):
    """The failure class of one moe-opt run that is a bug for any input, or
    None."""
    if rc is None:
        return "hang", "timeout"
    if SANITIZER.search(err):
        return "sanitizer", _first(r"(ERROR: \w+Sanitizer: [\w-]+|runtime error: .*)", err)
    if rc < 0:
        return "crash", f"killed by {signal.Signals(-rc).name}: {_first(CRASH.pattern, err)}"
    if rc not in (0, 1) or CRASH.search(err):
        return "crash", f"exit {rc}: {_first(r'(LLVM ERROR: .*|Assertion .*)', err)}"
    if rc == 1 and not LOCATED.search(err):
        return "unlocated-diagnostic", _first(r".*error:.*", err, err.strip()[:160])
    return None


class Campaign:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        (self.out / "corpus").mkdir(parents=True, exist_ok=True)
        self.tool = Tool(args.build, args.timeout)
        self.failures = {}  # signature -> [class, count, [saved files], symptom, command]
        self.counts = {"cases": 0, "valid": 0, "invalid": 0, "mutant": 0, "accepted": 0}
        self.stage_counts = {}
        self.lock = threading.Lock()
        (self.out / "failures.txt").write_text("")

    # -- one case ---------------------------------------------------------------

    def run_case(self, case):
        """Runs every stage of `case`; returns its findings and what ran."""
        findings, ran = [], []
        with tempfile.TemporaryDirectory(prefix="moe-fuzz-") as tmp:
            src = Path(tmp) / "input.mlir"
            src.write_bytes(case.text.encode("utf-8", errors="surrogateescape"))

            def found(cls, symptom, args):
                command = " ".join(["moe-opt"] + args).replace(str(src), "{input}")
                command = re.sub(r"-o \S+/out\d+\.mlir", "-o /dev/null", command)
                m = re.search(r"builtin\.module\((.*)\) -o", command)
                stage = re.sub(r"\{.*?\}", "", m.group(1)) if m else "parse"
                findings.append((cls, symptom, command, stage))

            if case.bad_option:
                args = [str(src), f"--pass-pipeline=builtin.module({case.bad_option})",
                        "-o", os.devnull]
                rc, err, _ = self.tool(args)
                bad = classify(rc, err)
                if bad and bad[0] != "unlocated-diagnostic":
                    found(*bad, args)
                elif rc == 0:
                    found("bad-option-accepted", f"{case.bad_option} accepted", args)
                return findings, ["bad-option"], False
            args = [str(src), "--verify-roundtrip", "-o", os.devnull]
            rc, err, _ = self.tool(args)
            ran.append("parse")
            bad = classify(rc, err)
            if bad:
                found(*bad, args)
            if rc == 1 and case.expect == "valid" and not bad:
                found("valid-rejected", _first(r"error: .*", err), args)
            if rc == 0 and case.expect == "invalid":
                found("invalid-accepted", case.what, args)
            if rc != 0:
                return findings, ran, False
            outputs = []
            for i, stage in enumerate(case.stages):
                dst = Path(tmp) / f"out{i}.mlir"
                args = [str(src), f"--pass-pipeline=builtin.module({stage})", "-o", str(dst)]
                rc, err, _ = self.tool(args)
                ran.append(stage)
                bad = classify(rc, err)
                if not bad and rc == 1:
                    # Did a pass fail, or did its output fail the verifier?
                    # Without -verify-each only the former still fails.
                    rc2, _, _ = self.tool(args + ["-verify-each=false"])
                    if rc2 != 1:
                        bad = ("verifier-after-pass", _first(r"error: .*", err))
                stats = re.search(r"remark: routing stats:.*?= -\d.*", err)
                if not bad and stats:
                    bad = ("negative-stats", stats.group(0)[:200])
                if bad:
                    found(*bad, args)
                elif rc == 1 and case.expect == "valid":
                    found("lowering-failed", _first(r"error: .*", err), args)
                if rc == 0:
                    outputs.append((stage, dst))
            if outputs:
                joined = Path(tmp) / "outputs.mlir"
                joined.write_text("\n// -----\n".join(p.read_text() for _, p in outputs))
                joined_name = "outputs-of-" + "+".join(re.sub(r"\W+", "_", s) for s, _ in outputs)
                joined = joined.rename(Path(tmp) / (joined_name[:120] + ".mlir"))
                args = [str(joined), "-split-input-file", "-o", os.devnull]
                rc, err, _ = self.tool(args)
                ran.append("reparse")
                bad = classify(rc, err)
                if bad:
                    found(*bad, args)
                elif rc != 0:
                    stages = ", ".join(s for s, _ in outputs)
                    found("output-does-not-reparse",
                          f"{_first(r'error: .*', err)} (outputs of {stages})", args)
        return findings, ran, True

    # -- bookkeeping ------------------------------------------------------------

    def record(self, case, findings, ran, accepted):
        with self.lock:
            self.counts["cases"] += 1
            self.counts[case.expect] += 1
            self.counts["accepted"] += accepted
            for stage in ran:
                kind = re.sub(r"\{.*?\}", "", stage)
                self.stage_counts[kind] = self.stage_counts.get(kind, 0) + 1
            for cls, symptom, command, stage in findings:
                sig = f"{cls} [{stage}]: {_normalize(symptom)}"
                digest = hashlib.sha1(sig.encode()).hexdigest()[:8]
                path = self.out / "corpus" / f"{cls}-{digest}-{case.seed}-{case.index}.mlir"
                command = command.replace("{input}", str(path))
                entry = self.failures.setdefault(sig, [cls, 0, [], symptom, command])
                entry[1] += 1
                if len(entry[2]) < self.args.keep and path.name not in entry[2]:
                    path.write_bytes(case.text.encode("utf-8", errors="surrogateescape"))
                    reason = f"{cls} [{case.expect}: {case.what}]: {symptom} -- {command}"
                    path.with_suffix(".reason").write_text(reason.replace("\n", " ") + "\n")
                    entry[2].append(path.name)
                    with open(self.out / "failures.txt", "a") as index:
                        index.write(f"{path.name}\t{cls}\t{command}\t{symptom}\n")
                    if self.args.verbose and entry[1] == 1:
                        print(f"[{case.name}] {cls}: {symptom}", flush=True)

    def run(self):
        args = self.args
        start = time.monotonic()
        deadline = None if args.time <= 0 else start + args.time
        limit = args.cases if args.cases > 0 else None
        stop = threading.Event()
        last_report = start

        def work(index):
            if stop.is_set() or (deadline and time.monotonic() > deadline):
                return None
            case = fuzz_gen.make_case(args.seed, index)
            return case, self.run_case(case)

        index = args.start
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            pending = []
            try:
                while True:
                    while (not stop.is_set() and len(pending) < 2 * args.jobs
                           and (limit is None or index < args.start + limit)):
                        pending.append(pool.submit(work, index))
                        index += 1
                    if not pending:
                        break
                    result = pending.pop(0).result()
                    if result is None:
                        stop.set()
                        continue
                    case, (findings, ran, accepted) = result
                    self.record(case, findings, ran, accepted)
                    if time.monotonic() - last_report > 60:
                        last_report = time.monotonic()
                        self.print_summary(time.monotonic() - start, brief=True)
            except KeyboardInterrupt:
                stop.set()
                print("interrupted; finishing the cases in flight", flush=True)
                for f in pending:
                    f.cancel()
        elapsed = time.monotonic() - start
        self.print_summary(elapsed)
        self.write_junit(elapsed)
        return 1 if self.failures or self.counts["cases"] == 0 else 0

    def print_summary(self, elapsed, brief=False):
        c = self.counts
        rate = c["cases"] / elapsed if elapsed else 0.0
        print(f"fuzz seed {self.args.seed}: {c['cases']} inputs in {elapsed:.0f} s "
              f"({rate:.2f} inputs/s, {self.tool.runs / max(elapsed, 1e-9):.1f} moe-opt runs/s; "
              f"{c['valid']} valid, {c['invalid']} invalid, {c['mutant']} mutants, "
              f"{c['accepted']} verified), {len(self.failures)} distinct failures", flush=True)
        if brief:
            return
        print("stages run: " + ", ".join(f"{k} {v}" for k, v in sorted(self.stage_counts.items())))
        for sig, (cls, count, files, symptom, command) in sorted(self.failures.items()):
            print(f"  {count:5d} x {sig}\n          e.g. {files[0] if files else '-'}: {command}")

    def write_junit(self, elapsed):
        cases = []
        for cls, description in CLASSES.items():
            found = [(s, e) for s, e in self.failures.items() if e[0] == cls]
            body = ""
            if found:
                text = "\n".join(f"{e[1]} x {s} (e.g. corpus/{e[2][0] if e[2] else '-'}: {e[4]})"
                                 for s, e in found)
                body = (f"<failure message={quoteattr(f'{len(found)} distinct failures')}>"
                        f"{escape(text)}</failure>")
            cases.append(f'  <testcase classname="fuzz" name={quoteattr(f"{cls}: {description}")} '
                         f'time="0">{body}</testcase>')
        if self.counts["cases"] == 0:
            cases.append('  <testcase classname="fuzz" name="campaign ran">'
                         '<failure message="no input ran"/></testcase>')
        failed = sum("<failure" in c for c in cases)
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="moe-fuzz" '
               f'tests="{len(cases)}" failures="{failed}" time="{elapsed:.1f}">\n'
               + "\n".join(cases) + "\n</testsuite>\n")
        Path(self.args.junit or self.out / "fuzz.xml").write_text(xml)


def replay(args, paths):
    """Runs saved inputs through every pass and pipeline, holding them to the
    oracle of valid input (a rejection is reported too)."""
    args.out = tempfile.mkdtemp(prefix="moe-fuzz-replay-")
    tool = Campaign(args)
    status = 0
    for path in paths:
        text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
        stages = fuzz_gen.PASSES + fuzz_gen.PIPELINES
        stages = [s.replace("%CF%", "2.0").replace("%T%", "7").replace("%R%", "3") for s in stages]
        case = fuzz_gen.Case(0, 0, "valid", path, text, stages)
        findings, ran, _ = tool.run_case(case)
        for cls, symptom, command, _ in findings:
            status = 1
            command = command.replace("{input}", path)
            print(f"{path}: {cls}: {symptom}\n    {command}")
        if not findings:
            print(f"{path}: no failure ({len(ran)} stages)")
    return status


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    p.add_argument("--time", type=float, default=240, help="time budget in seconds (<= 0: none)")
    p.add_argument("--long", action="store_true",
                   help="long campaign: no time budget unless --time is given too; "
                        "a summary every minute; stop with Ctrl-C")
    p.add_argument("--cases", type=int, default=0, help="stop after N inputs (exact replay)")
    p.add_argument("--start", type=int, default=0, help="index of the first input")
    p.add_argument("--jobs", type=int, default=1, help="inputs run in parallel")
    p.add_argument("--out", default=str(REPO_ROOT / "build" / "fuzz-out"),
                   help="output folder: corpus/, failures.txt, fuzz.xml (default build/fuzz-out)")
    p.add_argument("--junit", default="", help="JUnit XML report (default OUT/fuzz.xml)")
    p.add_argument("--build", default=os.environ.get("MOE_BUILD", str(REPO_ROOT / "build")),
                   help="build folder with bin/moe-opt (default $MOE_BUILD or build/)")
    p.add_argument("--timeout", type=float, default=60, help="seconds per moe-opt run")
    p.add_argument("--keep", type=int, default=3, help="inputs saved per distinct failure")
    p.add_argument("--verbose", action="store_true", help="print each new saved failure")
    p.add_argument("--print-case", type=int, metavar="INDEX",
                   help="print input INDEX of --seed and its stages, run nothing")
    p.add_argument("--replay", nargs="+", metavar="FILE", help="run saved inputs, every stage")
    args = p.parse_args(argv)
    if args.long and "--time" not in (argv or sys.argv):
        args.time = 0
    if args.print_case is not None:
        case = fuzz_gen.make_case(args.seed, args.print_case)
        print(f"// {case.expect}: {case.what}\n// stages: {case.stages} {case.bad_option}")
        sys.stdout.buffer.write(case.text.encode("utf-8", errors="surrogateescape"))
        return 0
    if not Path(args.build, "bin", "moe-opt").exists():
        print(f"no moe-opt in {args.build}/bin: build first (tools/setup.sh)", file=sys.stderr)
        return 2
    if args.replay:
        return replay(args, args.replay)
    return Campaign(args).run()


if __name__ == "__main__":
    sys.exit(main())
