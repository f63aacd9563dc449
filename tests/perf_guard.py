#!/usr/bin/env python3
"""perf_guard.py BINARY CEILINGS SANITIZE - the perf-guard suite.

Counts instructions per operation with callgrind (instruction counts, not
times: they do not depend on the machine's load) by running BINARY OP N at
two N and dividing the difference (start-up costs cancel), and fails when an
operation exceeds its ceiling in CEILINGS by more than 10%.  Skips (exit 77)
without valgrind or in a sanitizer build (SANITIZE != none), whose counts
mean nothing.  Ceilings are for the release build of scripts/test (gcc 12,
Debian 12); after a deliberate change, record the new counts there.
"""
import re
import shutil
import subprocess
import sys

N1, N2 = 1000, 11000
SLACK = 1.10


def instructions(binary, op, n):
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", binary, op, str(n)],
        capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"perf-guard: {op} {n} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    m = re.search(r"refs:\s+([\d,]+)", out.stderr)
    if not m:
        sys.exit(f"perf-guard: no instruction count for {op}:\n{out.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def main():
    binary, ceilings_path, sanitize = sys.argv[1:4]
    if sanitize != "none":
        print(f"perf-guard: skipped in a sanitizer build ({sanitize})")
        return 77
    if not shutil.which("valgrind"):
        print("perf-guard: skipped: valgrind is not installed")
        return 77
    ceilings = {}
    for line in open(ceilings_path):
        line = line.split("#", 1)[0].split()
        if len(line) == 2:
            ceilings[line[0]] = int(line[1])
    failed = 0
    for op, ceiling in ceilings.items():
        per_op = (instructions(binary, op, N2) - instructions(binary, op, N1)) / (N2 - N1)
        limit = ceiling * SLACK
        verdict = "ok" if per_op <= limit else "OVER"
        failed += verdict != "ok"
        print(f"perf-guard: {op:10s} {per_op:8.1f} instructions/op  ceiling {ceiling} (+10%: {limit:.0f})  {verdict}")
    print(f"{len(ceilings) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
