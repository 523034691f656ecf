#!/usr/bin/env python3
"""Run pytest so that a crashing test cannot hide the results of the others.

    python tools/pytest_isolated.py [pytest args...] PATH...

Each test file under PATH runs in a pytest process of its own. When one of
those processes dies without its summary line (a segfault, an abort), that
file is run again one test per process, and a test whose process dies is
counted as failed. The last line has pytest's form,
`N passed, N failed, N skipped in Ns`, with the counts of all the runs.

tools/test.sh uses this only after a plain pytest run crashed.
"""

import os
import re
import subprocess
import sys
import time

SUMMARY = re.compile(r"^(=+ )?\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed)\b")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)\b")
KINDS = {"passed": "passed", "xfailed": "passed", "failed": "failed",
         "error": "failed", "errors": "failed", "xpassed": "failed",
         "skipped": "skipped"}
# pytest's "no tests ran" exit status; not a failure for one file.
NO_TESTS = 5


def run(cmd):
    """Run a pytest command, echoing its output; return (rc, counts or None)."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    lines = [line for line in proc.stdout.splitlines() if SUMMARY.match(line)]
    if not lines:
        return proc.returncode, None
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for number, word in COUNT.findall(lines[-1]):
        counts[KINDS[word]] += int(number)
    return proc.returncode, counts


def split_args(argv):
    """Separate pytest options from the paths to test."""
    options, paths = [], []
    takes_value = {"-k", "-m", "-p", "-W", "-o", "-c", "--rootdir", "--deselect"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value and i + 1 < len(argv):
            options += [arg, argv[i + 1]]
            i += 2
            continue
        (options if arg.startswith("-") else paths).append(arg)
        i += 1
    return options, paths


def test_files(path):
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.startswith("test_") and f.endswith(".py")]
    return found


def main(argv):
    options, paths = split_args(argv)
    pytest = [sys.executable, "-m", "pytest", "-q", *options]
    total = {"passed": 0, "failed": 0, "skipped": 0}
    start = time.time()

    def add(counts):
        for key in total:
            total[key] += counts[key]

    for path in paths:
        for test_file in test_files(path):
            print(f"---- {test_file}", flush=True)
            rc, counts = run([*pytest, test_file])
            if counts is not None:
                add(counts)
                continue
            if rc == NO_TESTS:
                continue
            print(f"---- {test_file} died (exit {rc}); one process per test", flush=True)
            collect = subprocess.run([*pytest, "--collect-only", test_file],
                                     stdout=subprocess.PIPE, text=True, errors="replace")
            ids = [line.strip() for line in collect.stdout.splitlines()
                   if "::" in line and not line.startswith(" ")]
            if not ids:
                total["failed"] += 1
                continue
            for test_id in ids:
                rc, counts = run([*pytest, test_id])
                if counts is None:
                    print(f"---- {test_id} died (exit {rc}): counted as failed", flush=True)
                    total["failed"] += 1
                else:
                    add(counts)
    took = time.time() - start
    print(f"{total['passed']} passed, {total['failed']} failed, "
          f"{total['skipped']} skipped in {took:.2f}s", flush=True)
    return 1 if total["failed"] or not (total["passed"] + total["skipped"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
