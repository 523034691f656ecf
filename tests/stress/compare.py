"""Run the same seeds under two interpreters (say greenlet-rs and upstream
greenlet) and compare every trace event the harness saw, step by step.

    python tests/stress/compare.py PYTHON_A PYTHON_B [--seed 1] [--seeds 20]
        [--ops 4000] [--threads] [--signals]

The operations of a seed depend only on the seed and the model, so both runs
perform the same steps; the trace events (kills and greenlets dying on the
way included, which the model does not predict one by one) must then be the
same.  Prints the first difference of each seed and a summary line; exits 1
on any difference or failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")


def run(python, seed, ops, opts, path):
    p = subprocess.run([python, WORKER, "--seed", str(seed), "--ops", str(ops),
                        "--dump-events", path] + opts,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=900)
    ok = p.returncode == 0
    with open(path) as f:
        return ok, f.read().splitlines(), p.stdout[-2000:]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("python_a")
    ap.add_argument("python_b")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--ops", type=int, default=4000)
    ap.add_argument("--threads", action="store_true")
    ap.add_argument("--signals", action="store_true")
    args = ap.parse_args(argv)
    opts = (["--threads"] if args.threads else []) + (["--signals"] if args.signals else [])
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seed, args.seed + args.seeds):
            a = run(args.python_a, seed, args.ops, opts, os.path.join(tmp, "a"))
            b = run(args.python_b, seed, args.ops, opts, os.path.join(tmp, "b"))
            if not (a[0] and b[0]):
                bad += 1
                print("seed %d: run failed (a ok=%s, b ok=%s)\n%s\n%s" % (seed, a[0], b[0], a[2], b[2]))
                continue
            if a[1] != b[1]:
                bad += 1
                for x, y in zip(a[1] + [None], b[1] + [None]):
                    if x != y:
                        print("seed %d: first difference\n  a: %s\n  b: %s" % (seed, x, y))
                        break
    print("compare: seeds %d..%d, %d operations each, %d differing" % (
        args.seed, args.seed + args.seeds - 1, args.ops, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
