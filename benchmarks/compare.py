#!/usr/bin/env python3
"""Benchmark greenlet-rs against upstream greenlet 3.5.6 on one interpreter.

    python benchmarks/compare.py                    # full run (10-12 minutes on 2 cores)
    python benchmarks/compare.py --fast             # half the processes (5 minutes)
    python benchmarks/compare.py --quick            # does it all work? (35 s; 1 min from nothing)
    python benchmarks/compare.py --python /path/to/python3.13
    python benchmarks/compare.py --bench throw --bench chain --no-memory
    python benchmarks/compare.py --stacks sliced,dedicated     # ours in both stack modes
    python benchmarks/compare.py --suite gevent --stacks sliced,dedicated,auto  # gevent workloads

It keeps two virtualenvs of the chosen interpreter (default: the one running
this script) under ~/.cache/greenlet-rs/bench/<interpreter>/ ($GREENLET_RS_CACHE
replaces ~/.cache/greenlet-rs): `upstream`, with greenlet==3.5.6 and pyperf,
and `ours`, with pyperf and greenlet-rs built from this repository by
`pip install <repo>`, reinstalled on every run unless --no-build.

Then it runs every benchmark of bench_greenlet.py for both, alternating: each
benchmark's pyperf processes are split into two rounds, upstream then ours,
and ours then upstream, so that drift in the machine's load falls on both
alike. The memory metrics of memory.py alternate the same way. Last it prints
a Markdown table of medians and the ratio ours / upstream (below 1: ours is
faster or smaller). The raw pyperf JSON files and logs stay in the run
directory it names.

--stacks runs ours once per stack mode listed (sliced, dedicated, auto,
dedicated:SIZE or auto:SIZE: the value of GREENLET_STACKS, which greenlet-rs
reads at import; sliced is the default). With more than one, the table has one
column per mode and one ratio per mode, each against upstream, and every
round runs upstream and each mode of ours, in an order reversed every round.
Each pyperf worker checks that it really runs the mode asked for.

--suite gevent runs benchmarks/bench_gevent.py instead, in two more venvs
(`gevent-upstream`, `gevent-ours`) that also have gevent's binary wheel;
in `gevent-ours` it is installed with --no-deps next to greenlet-rs, whose C
API it links against. No memory metrics there.

This is a benchmark, not a test: it fails only if something does not run.
If greenlet-rs does not build for the interpreter, or builds but refuses to
import there, it says so and exits with status 2 without benchmarking
anything.
"""

import argparse
import datetime
import glob
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_gevent  # noqa: E402  (the table only; imports neither pyperf nor gevent)
import bench_greenlet  # noqa: E402  (the table only; imports neither pyperf nor greenlet)
import memory  # noqa: E402

UPSTREAM_VERSION = "3.5.6"
OUR_IMPLEMENTATION = "greenlet-rs"  # greenlet.__implementation__ in our package
IMPLS = ("upstream", "ours")
EXIT_NO_BUILD = 2
STACKS_ENV = "GREENLET_STACKS"
# --suite: the pyperf script, its table, what its venvs hold besides greenlet
# and pyperf, and the prefix of their names.
SUITES = {
    "greenlet": (bench_greenlet, "bench_greenlet.py", [], ""),
    "gevent": (bench_gevent, "bench_gevent.py", bench_gevent.REQUIREMENTS, "gevent-"),
}


class Variant:
    """One column: an implementation (its venv) and the environment it runs in."""

    def __init__(self, key, label, impl, stacks=None):
        self.key = key          # in file names
        self.label = label      # in the table
        self.impl = impl        # "upstream" or "ours"
        self.stacks = stacks    # GREENLET_STACKS for ours, None: unset (sliced)

    def env(self):
        env = dict(os.environ)
        env.pop(STACKS_ENV, None)
        if self.stacks is not None:
            env[STACKS_ENV] = self.stacks
        return env

    def expected_mode(self):
        mode = (self.stacks or "sliced").split(":")[0]
        return mode if mode in ("dedicated", "auto") else "sliced"


def variants_for(stacks):
    """The columns for --stacks: upstream, then ours once per mode."""
    modes = [m.strip() for m in stacks.split(",") if m.strip()]
    for m in modes:
        if m.split(":")[0] not in ("sliced", "dedicated", "auto"):
            die(f"--stacks: {m!r} is not sliced, dedicated, auto or dedicated:SIZE / auto:SIZE")
    out = [Variant("upstream", "upstream", "upstream")]
    if modes == ["sliced"]:
        # The original two columns, GREENLET_STACKS left unset.
        return out + [Variant("ours", "ours", "ours")]
    for m in modes:
        key = "ours-" + m.replace(":", "-")
        out.append(Variant(key, f"ours {m}", "ours", None if m == "sliced" else m))
    return out

# Asked of a venv's interpreter: which greenlet it imports.
PROBE = (
    "import json, greenlet, pyperf; print(json.dumps({"
    "'version': greenlet.__version__, "
    "'impl': getattr(greenlet, '__implementation__', None), "
    "'pyperf': pyperf.__version__}))"
)


def say(msg):
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def die(msg, status=1):
    say(msg)
    sys.exit(status)


# ---------------------------------------------------------------- interpreters


def find_python(spec):
    """A path, a command on PATH, or a version such as 3.13 (looked up in pyenv)."""
    import shutil

    if os.sep in spec:
        if not os.access(spec, os.X_OK):
            die(f"{spec} is not an executable")
        return spec
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    if spec[:1].isdigit():
        found = sorted(glob.glob(os.path.join(pyenv, "versions", spec + "*", "bin", "python")))
        if found:
            return found[-1]
        spec = "python" + spec
    path = shutil.which(spec)
    if not path:
        die(f"no interpreter {spec!r} (give a path, a command or a version like 3.11)")
    return path


def describe(python):
    out = subprocess.run(
        [python, "-c",
         "import sys, sysconfig, platform; print(platform.python_implementation(), "
         "platform.python_version(), sys.executable, "
         "bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout.split()
    impl, version, executable, free_threaded = out
    return impl, version, os.path.realpath(executable), free_threaded == "True"


# ---------------------------------------------------------------- venvs


def run_logged(cmd, log, **kw):
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kw).returncode


def tail(path, lines=25):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def probe(venv):
    """(what the venv imports, None) or (None, why it imports nothing)."""
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        return None, f"{py} does not exist"
    r = subprocess.run([py, "-c", PROBE], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "no output"
    return json.loads(r.stdout), None


def make_venv(python, venv, log):
    if not os.path.exists(os.path.join(venv, "bin", "python")):
        say(f"creating {venv}")
        if run_logged([python, "-m", "venv", venv], log):
            die(f"could not create {venv}; see {log}:\n{tail(log)}")
    return os.path.join(venv, "bin", "python")


def pip(py, args, log):
    return run_logged([py, "-m", "pip", "install", "--disable-pip-version-check", *args], log)


def has_extras(venv, extras, log):
    """Whether the venv imports the suite's extra packages (e.g. gevent)."""
    if not extras:
        return True
    py = os.path.join(venv, "bin", "python")
    names = [bench_gevent.IMPORT_NAMES.get(e.split("=")[0], e.split("=")[0]) for e in extras]
    return os.path.exists(py) and not run_logged(
        [py, "-c", "import " + ", ".join(names)], log)


def install_extras(py, extras, log):
    """The suite's packages, without letting pip replace the venv's greenlet.

    Each is installed with --no-deps, then its requirements other than
    greenlet (gevent's binary wheel links against greenlet's C API, which
    greenlet-rs provides).
    """
    if not extras:
        return
    if pip(py, ["--no-deps", *extras], log):
        die(f"pip failed; see {log}:\n{tail(log)}")
    deps = bench_gevent.requirements_besides_greenlet(py, extras)
    if deps and pip(py, deps, log):
        die(f"pip failed; see {log}:\n{tail(log)}")


def ensure_upstream(python, venv, log, extras=()):
    info, _ = probe(venv)
    if info and info["version"] == UPSTREAM_VERSION and not info["impl"] \
            and has_extras(venv, extras, log):
        return info
    py = make_venv(python, venv, log)
    say(f"installing greenlet=={UPSTREAM_VERSION} and pyperf into {venv}")
    if pip(py, ["pyperf", f"greenlet=={UPSTREAM_VERSION}", *extras], log):
        die(f"pip failed; see {log}:\n{tail(log)}")
    info, why = probe(venv)
    if not info or info["impl"] or info["version"] != UPSTREAM_VERSION:
        die(f"{venv} does not import upstream greenlet {UPSTREAM_VERSION}: {info or why}")
    return info


def ensure_ours(python, venv, log, build, version, extras=()):
    py = make_venv(python, venv, log)
    if run_logged([py, "-c", "import pyperf"], log) and pip(py, ["pyperf"], log):
        die(f"pip failed; see {log}:\n{tail(log)}")
    if not has_extras(venv, extras, log):
        say(f"installing {' '.join(extras)} into {venv} (--no-deps; greenlet stays ours)")
        install_extras(py, extras, log)
    if build:
        say(f"building greenlet-rs from {REPO} into {venv} (pip install; log: {log})")
        t0 = time.monotonic()
        if pip(py, ["--force-reinstall", "--no-deps", REPO], log):
            die(
                f"greenlet-rs does not build for Python {version} ({python}); "
                f"nothing was benchmarked. The end of the build log ({log}):\n"
                f"{tail(log)}\n"
                f"greenlet-rs does not build for Python {version}: skipped.",
                EXIT_NO_BUILD,
            )
        say(f"built and installed in {time.monotonic() - t0:.0f} s")
    info, why = probe(venv)
    if info is None and build:
        # It built, but refuses this interpreter at import time.
        die(f"greenlet-rs built for Python {version} but does not import there:\n"
            f"  {why}\ngreenlet-rs does not support Python {version}: skipped.",
            EXIT_NO_BUILD)
    if not info or info["impl"] != OUR_IMPLEMENTATION:
        die(f"{venv} does not import greenlet-rs ({info or why}); "
            + ("see " + log if build else "run once without --no-build"))
    return info


# ---------------------------------------------------------------- running


def bench_runs(bench, args, module=bench_greenlet):
    """[(round, extra pyperf args)]: the benchmark's processes in rounds."""
    if args.quick:
        return [(0, [])]  # bench_greenlet --quick: one process, one value
    processes, values = module.settings(bench, fast=args.fast)
    rounds = max(1, min(args.rounds, processes))
    per = [processes // rounds + (i < processes % rounds) for i in range(rounds)]
    # One loop of a heavy workload takes a second or more, more than pyperf's
    # min_time: skip the calibration process that would find that out.
    loops = ["--loops", "1"] if bench.heavy else []
    return [(r, ["--processes", str(n), "--values", str(values), *loops])
            for r, n in enumerate(per)]


def order(round_, variants=IMPLS):
    return variants if round_ % 2 == 0 else variants[::-1]


def run_bench(py, bench, extra, out_json, log, quick, script="bench_greenlet.py",
              variant=None):
    cmd = [py, os.path.join(HERE, script), "--bench", bench.id,
           "--output", out_json, *extra]
    if quick:
        cmd.append("--quick")
    env = None
    if variant is not None:
        env = variant.env()
        # pyperf's workers get a filtered environment; the script checks
        # that each one runs the mode asked for.
        cmd += ["--inherit-environ", STACKS_ENV] if STACKS_ENV in env else []
        cmd += ["--expect-stacks", variant.expected_mode()]
    return run_logged(cmd, log, env=env)


def values_of(paths):
    """Every value (seconds per operation) in these pyperf JSON files."""
    values = []
    for path in paths:
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                for run in b["runs"]:
                    values.extend(run.get("values", ()))
    return values


# ---------------------------------------------------------------- the table


def fmt_time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    raise AssertionError


def fmt_spread(values):
    # The spread of the values, as a percentage of their median.
    if len(values) < 2:
        return ""
    return f" ±{100 * statistics.stdev(values) / statistics.median(values):.0f}%"


def fmt_bytes(n):
    return f"{n:,.0f} B"


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in rows])


def main():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    p.add_argument("--python", default=sys.executable,
                   help="interpreter to benchmark on (path, command or version; "
                        "default: this one)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true",
                      help="half the pyperf processes (about 5 minutes)")
    mode.add_argument("--quick", action="store_true",
                      help="tiny workloads, one value each: checks that everything "
                           "runs; the numbers are rough")
    p.add_argument("--no-build", action="store_true",
                   help="use greenlet-rs as already installed in the venv")
    p.add_argument("--suite", choices=sorted(SUITES), default="greenlet",
                   help="greenlet: bench_greenlet.py and memory.py (default); "
                        "gevent: bench_gevent.py, in venvs with gevent")
    p.add_argument("--bench", action="append", default=[],
                   choices=sorted({b.id for s in SUITES.values() for b in s[0].BENCHMARKS}),
                   help="only this benchmark (repeatable; default: all of the suite)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory metrics")
    p.add_argument("--stacks", default="sliced",
                   help="comma-separated GREENLET_STACKS modes to run ours in: "
                        "sliced, dedicated, auto, or with :SIZE (default: sliced, with "
                        "GREENLET_STACKS unset: the two-column table)")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternating rounds per benchmark (default 2: "
                        "upstream, ours, ours, upstream)")
    args = p.parse_args()

    module, script, extras, prefix = SUITES[args.suite]
    variants = tuple(variants_for(args.stacks))
    labels = [v.label for v in variants]
    for b in args.bench:
        if b not in module.BY_ID:
            die(f"--bench {b} is not in the {args.suite} suite")

    t_start = time.monotonic()
    python = find_python(args.python)
    impl, version, real, free_threaded = describe(python)
    if impl != "CPython":
        die(f"{python} is {impl}; greenlet-rs is for CPython")
    tag = f"{impl.lower()}-{version}{'t' if free_threaded else ''}-" + \
        hashlib.sha1(real.encode()).hexdigest()[:8]
    cache = os.environ.get("GREENLET_RS_CACHE", os.path.expanduser("~/.cache/greenlet-rs"))
    base = os.path.join(cache, "bench", tag)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(base, "runs", stamp + ("-" + args.suite if prefix else "")
                           + ("-quick" if args.quick else ""))
    os.makedirs(run_dir, exist_ok=True)
    setup_log = os.path.join(run_dir, "setup.log")
    say(f"Python {version} ({real}); venvs in {base}; results in {run_dir}")

    venvs = {i: os.path.join(base, prefix + i) for i in IMPLS}
    info = {"upstream": ensure_upstream(python, venvs["upstream"], setup_log, extras),
            "ours": ensure_ours(python, venvs["ours"], setup_log, not args.no_build,
                                version, extras)}
    pys = {i: os.path.join(venvs[i], "bin", "python") for i in IMPLS}
    for i in IMPLS:
        say(f"{i}: greenlet {info[i]['version']} ({info[i]['impl'] or 'upstream'}), "
            f"pyperf {info[i]['pyperf']}")
    if len(variants) > 2:
        say("columns: " + ", ".join(labels))

    load_before = os.getloadavg()
    t_bench = time.monotonic()
    selected = [module.BY_ID[i] for i in args.bench] or module.BENCHMARKS
    scale = 10 if args.quick else 1
    rows = []
    for n, bench in enumerate(selected, 1):
        files = {v.key: [] for v in variants}
        crashed = {}
        t0 = time.monotonic()
        for round_, extra in bench_runs(bench, args, module):
            for v in order(round_, variants):
                if v.key in crashed:
                    continue
                out = os.path.join(run_dir, f"{bench.id}.{v.key}.r{round_}.json")
                log = os.path.join(run_dir, f"{bench.id}.{v.key}.log")
                rc = run_bench(pys[v.impl], bench, extra, out, log, args.quick, script, v)
                if rc:
                    if v.impl == "ours":
                        die(f"{bench.id} failed with {pys[v.impl]} ({v.label}); "
                            f"see {log}:\n{tail(log)}")
                    # Upstream failing is a finding, not a reason to stop (upstream
                    # 3.5.6 segfaults in `chain` on CPython 3.13.0, for one).
                    crashed[v.key] = rc
                    say(f"{bench.id}: {v.label} failed (exit {rc}); see {log}")
                    continue
                files[v.key].append(out)
        med, cells = {}, {}
        for v in variants:
            if v.key in crashed:
                cells[v.key] = f"crashed (exit {crashed[v.key]})"
                continue
            values = values_of(files[v.key])
            med[v.key] = statistics.median(values)
            cells[v.key] = fmt_time(med[v.key]) + fmt_spread(values)
        ratios = [f"{med[v.key] / med['upstream']:.2f}"
                  if v.key in med and "upstream" in med else "-" for v in variants[1:]]
        name = bench.display_name(scale)
        rows.append([name, bench.per, *(cells[v.key] for v in variants), *ratios])
        say(f"[{n}/{len(selected)}] {name}: "
            + ", ".join(f"{v.label} {cells[v.key]}" for v in variants)
            + f", ratio {' '.join(ratios)} ({time.monotonic() - t0:.0f} s)")

    mem_rows = []
    if not args.no_memory and not prefix:
        t0 = time.monotonic()
        mem = {}
        rounds = 1 if args.quick else 3
        for r in range(rounds):
            for v in order(r, variants):
                cmd = [pys[v.impl], os.path.join(HERE, "memory.py"), "--json", "--repeat", "1"]
                if args.quick:
                    cmd.append("--quick")
                if len(variants) == 2:
                    # The original metrics only (the stack-mode ones say nothing
                    # without a dedicated column).
                    cmd += ["--metrics", ",".join(memory.BASIC)]
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=v.env())
                if r.returncode:
                    die(f"memory.py failed with {pys[v.impl]} ({v.label}):\n{r.stderr}")
                result = json.loads(r.stdout)
                count = result["count"]
                for metric, value in result["bytes"].items():
                    mem.setdefault((metric, v.key), []).append(value)
        with open(os.path.join(run_dir, "memory.json"), "w") as f:
            json.dump({f"{m}.{k}": vals for (m, k), vals in mem.items()}, f, indent=1)
        for metric, label in memory.METRICS.items():
            if (metric, "upstream") not in mem:
                continue
            meds = [statistics.median(mem[metric, v.key]) for v in variants]
            unit = memory.UNITS.get(metric)
            if metric in ("rss", "rss_deep", "vmas", "dedicated"):
                label += f", {count:,} greenlets"
            fmt = fmt_bytes if unit is None else (lambda x, u=unit: f"{x:,.0f} {u}")
            ratios = [f"{m / meds[0]:.2f}" if unit is None and meds[0] else "-"
                      for m in meds[1:]]
            mem_rows.append([label, *(fmt(m) for m in meds), *ratios])
        say(f"memory metrics ({time.monotonic() - t0:.0f} s)")
    load_after = os.getloadavg()

    mode = "--quick (rough numbers: tiny workloads, one value)" if args.quick else \
        "--fast" if args.fast else "full"
    commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True).stdout.strip() or "?"
    print()
    print(f"greenlet-rs ({commit}) vs upstream greenlet {UPSTREAM_VERSION} on CPython "
          f"{version} ({real}), {args.suite} suite, {mode} run, {stamp}")
    print(f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after: {' '.join(f'{x:.2f}' for x in load_after)}; "
          f"benchmarks took {time.monotonic() - t_bench:.0f} s, "
          f"everything {time.monotonic() - t_start:.0f} s")
    print()
    ratio_heads = ["ours/upstream"] if len(variants) == 2 else \
        [f"{v.label.replace('ours ', '')}/upstream" for v in variants[1:]]
    print(table(rows, ["benchmark", "per", *(f"{lb} (median)" for lb in labels),
                       *ratio_heads]))
    if mem_rows:
        print()
        print(table(mem_rows, ["memory", *labels, *ratio_heads]))
    print()
    print(f"Times are medians of every pyperf value, ± the standard deviation as a "
          f"percentage of the median. Raw results: {run_dir}")


if __name__ == "__main__":
    main()
