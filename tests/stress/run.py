"""Run the stress harness: one subprocess per seed, a summary line at the end.

    python tests/stress/run.py --seed 1 --ops 20000 [--ops-per-seed 4000]
        [--threads] [--signals] [--minutes M] [--jobs J] [--timeout S]

Seeds S, S+1, ... run until ``--ops`` operations are done or ``--minutes``
have passed (whichever comes first; with only --minutes, until the time is
up).  A seed whose process fails an invariant, crashes (signal, abort) or hangs
is reported with its seed, the failing step and the tail of its operation log;
replay it with ``python tests/stress/worker.py --seed S --ops N`` (add the
same --threads/--signals).  The last line is::

    stress: N operations, seeds A..B, C crashes, L leaked references

(with ``, F failures`` when invariants failed) and the exit status is non-zero
on any failure.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")


def run_seed(seed, ops, opts, timeout):
    cmd = [sys.executable, "-X", "faulthandler", WORKER, "--seed", str(seed), "--ops", str(ops)]
    cmd += opts
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, universal_newlines=True)
    except subprocess.TimeoutExpired as e:
        return {"seed": seed, "ok": False, "crash": True, "ops": 0,
                "error": "seed %d: hung (no result after %ds)" % (seed, timeout),
                "stderr": (e.stderr or "")[-3000:] if isinstance(e.stderr, str) else ""}
    result = None
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    if result is None:
        return {"seed": seed, "ok": False, "crash": True, "ops": 0,
                "error": "seed %d: crashed, exit status %d" % (seed, p.returncode),
                "stderr": p.stderr[-4000:]}
    result["crash"] = False
    if p.returncode != 0 and result.get("ok"):
        result["ok"] = False
        result["error"] = "seed %d: exit status %d" % (seed, p.returncode)
    if p.stderr.strip():
        result["stderr"] = p.stderr[-4000:]
    return result


def report(res, out):
    out.write("FAIL %s\n" % res.get("error"))
    if res.get("trace"):
        out.write(res["trace"].rstrip() + "\n")
    if res.get("stderr"):
        out.write("--- stderr ---\n" + res["stderr"].rstrip() + "\n")
    if res.get("log"):
        out.write("--- last operations (step greenlet: op) ---\n")
        out.write("\n".join(res["log"][-40:]) + "\n")
    out.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="first seed")
    ap.add_argument("--ops", type=int, default=None, help="total operations")
    ap.add_argument("--ops-per-seed", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=250, help="operations between leak checks")
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--threads", action="store_true")
    ap.add_argument("--signals", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per seed")
    ap.add_argument("--refcount", choices=("auto", "on", "off"), default="auto",
                    help="see worker.py --help")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.ops is None and args.minutes is None:
        args.ops = 20000
    opts = ["--batch", str(args.batch), "--refcount", args.refcount]
    if args.threads:
        opts.append("--threads")
    if args.signals:
        opts.append("--signals")
    import greenlet
    policy = getattr(greenlet, "get_stack_policy", lambda: None)()
    sys.stdout.write("stress: greenlet %s (%s) on %s%s\n" % (
        greenlet.__version__, getattr(greenlet, "__implementation__", "upstream"),
        sys.version.split()[0] + (" debug" if hasattr(sys, "gettotalrefcount") else ""),
        ", stacks " + policy if policy else ""))
    sys.stdout.flush()
    start = time.time()
    deadline = start + args.minutes * 60 if args.minutes is not None else None
    done_ops = 0
    next_seed = args.seed
    last_seed = None
    crashes = failures = leaked = 0
    refs_checked = False
    running = []
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))

    def more():
        if deadline is not None and time.time() >= deadline:
            return False
        if args.ops is not None and done_ops + sum(n for _, n, _ in running) >= args.ops:
            return False
        return True

    while True:
        while len(running) < max(1, args.jobs) and more():
            n = args.ops_per_seed
            if args.ops is not None:
                n = min(n, args.ops - done_ops - sum(x for _, x, _ in running))
            running.append((next_seed, n, pool.submit(run_seed, next_seed, n, opts, args.timeout)))
            next_seed += 1
        if not running:
            break
        seed, n, fut = running.pop(0)
        res = fut.result()
        last_seed = seed if last_seed is None else max(last_seed, seed)
        done_ops += res.get("ops", 0)
        if res.get("crash"):
            crashes += 1
        elif not res.get("ok"):
            failures += 1
        leaked += res.get("leaked_refs", 0) or 0
        refs_checked = refs_checked or bool(res.get("refcount_checked"))
        if not res.get("ok"):
            report(res, sys.stdout)
        elif not args.quiet:
            sys.stdout.write("seed %d: %d operations ok (%.0fs)\n" % (seed, res["ops"], time.time() - start))
            sys.stdout.flush()
    pool.shutdown()
    line = "stress: %d operations, seeds %d..%d, %d crashes, %d leaked references" % (
        done_ops, args.seed, last_seed if last_seed is not None else args.seed - 1, crashes, leaked)
    if failures:
        line += ", %d failures" % failures
    if not refs_checked:
        line += " (objects counted; sys.gettotalrefcount() not checked)"
    line += " (%.0fs)" % (time.time() - start)
    sys.stdout.write(line + "\n")
    return 1 if (crashes or failures or leaked) else 0


if __name__ == "__main__":
    sys.exit(main())
