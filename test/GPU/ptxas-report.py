#!/usr/bin/python3
"""Assembles every .ptx file under a directory with `ptxas -v` and prints
each kernel's resource use and a summary that lit tests check.

Usage: ptxas-report.py PTXAS ARCH DIR
"""
import pathlib
import re
import subprocess
import sys


def main():
    ptxas, arch, directory = sys.argv[1:4]
    files = sorted(pathlib.Path(directory).glob("*.ptx"))
    kernels = 0
    max_registers = 0
    spill_bytes = 0
    stack_bytes = 0
    max_shared = 0
    failures = 0
    for path in files:
        run = subprocess.run([ptxas, "-v", f"-arch={arch}", str(path), "-o", "/dev/null"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            failures += 1
            print(f"FAILED {path.name}: {run.stderr.strip()}")
            continue
        for line in run.stderr.splitlines():
            match = re.search(r"Used (\d+) registers", line)
            if match:
                kernels += 1
                max_registers = max(max_registers, int(match.group(1)))
                shared = re.search(r"(\d+) bytes smem", line)
                if shared:
                    max_shared = max(max_shared, int(shared.group(1)))
            match = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                              r"(\d+) bytes spill loads", line)
            if match:
                stack_bytes += int(match.group(1))
                spill_bytes += int(match.group(2)) + int(match.group(3))
        print(f"{path.name}: {' | '.join(l.strip() for l in run.stderr.splitlines() if 'Used' in l)}")
    print(f"files: {len(files)}, failed: {failures}, kernels: {kernels}, "
          f"max registers: {max_registers}, max shared bytes: {max_shared}")
    print(f"spill bytes: {spill_bytes}, stack bytes: {stack_bytes}")
    return 1 if failures or not files else 0


if __name__ == "__main__":
    sys.exit(main())
