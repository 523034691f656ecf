#!/usr/bin/env python3
"""Run the test suites of greenlet's real clients against greenlet-rs.

Usage:

    python3 tools/clients.py gevent --baseline          # ours and upstream, both modes
    python3 tools/clients.py gevent --quick --baseline  # a few test files only (CI smoke)
    python3 tools/clients.py gevent --mode pure         # ours only, compared to the last baseline
    python3 tools/clients.py gevent --tests test__hub test__event --baseline

Nothing of the clients is part of this repository: the client (as the binary
wheel published for the interpreter) and its test dependencies are
downloaded with pip at test time and cached, with the virtualenvs, under
~/.cache/greenlet-rs/clients (or $GREENLET_RS_CACHE/clients).

For each client there are two virtualenvs per interpreter,
`<client>-<X.Y>-ours` (greenlet-rs built from this checkout) and
`<client>-<X.Y>-upstream` (upstream greenlet 3.5.6 from its wheel). The client
is installed next to greenlet with `--no-deps`, its other requirements
(read from its own metadata, greenlet left out) separately, and afterwards
the runner checks that `greenlet` in each venv is still the one it should be.

A test that fails with greenlet-rs *and* with upstream greenlet 3.5.6 on the
same machine is an environment failure, not ours: `--baseline` runs the same
selection against upstream too, and only the differences count as failures.
Without `--baseline` the last saved upstream results for the same mode are
used, if there are any (otherwise every failure counts).

The suites run in a network namespace of their own that has only loopback
(`unshare -n`), so no test can send traffic beyond this machine and lookups
of outside names fail at once. `--no-netns` runs without it (then only
gevent's `-u-network` and the excluded files keep the suite off the network).

The last line is `<client>: N passed, N failed, N skipped`, counted in test
files (gevent runs and reports each test file as one unit); a file that
fails with upstream as well is counted as skipped (an environment failure).
Exit status: 0 if nothing failed that passes with upstream, 1 otherwise,
2 for a setup error.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM_GREENLET = "3.5.6"
OUR_IMPLEMENTATION = "greenlet-rs"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def say(msg):
    print(f"clients: {msg}", flush=True)


class SetupError(Exception):
    pass


def cache_root():
    base = os.environ.get("GREENLET_RS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "greenlet-rs"
    )
    return os.path.join(base, "clients")


def run(cmd, check=True, **kw):
    """Run a setup command, echoing it; raise SetupError if it fails."""
    say("+ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], **kw)
    if check and proc.returncode != 0:
        raise SetupError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    return proc


def fmt_seconds(s):
    return f"{s:.0f}s ({s / 60:.1f} min)"


# ------------------------------------------------------------------ interpreters


def find_python(spec):
    """A path or a version like 3.11 (pyenv's first, then pythonX.Y on PATH)."""
    if os.sep in spec:
        path = spec
    elif re.fullmatch(r"\d+\.\d+", spec):
        pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
        path = None
        vdir = os.path.join(pyenv, "versions")
        if os.path.isdir(vdir):
            for name in sorted(os.listdir(vdir), reverse=True):
                if re.fullmatch(re.escape(spec) + r"\.\d+", name):
                    cand = os.path.join(vdir, name, "bin", "python")
                    if os.access(cand, os.X_OK):
                        path = cand
                        break
        path = path or shutil.which(f"python{spec}")
    else:
        path = shutil.which(spec)
    if not path or not os.access(path, os.X_OK):
        raise SetupError(f"no interpreter for {spec!r}")
    out = subprocess.run(
        [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    )
    return path, out.stdout.strip()


# ------------------------------------------------------------------ our wheel


def source_fingerprint():
    """A hash of everything that goes into our wheel (tracked and untracked files)."""
    paths = ["crates", "python", "Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md"]
    try:
        out = subprocess.run(
            ["git", "-C", REPO_ROOT, "ls-files", "-co", "--exclude-standard", "--", *paths],
            capture_output=True, text=True, check=True,
        ).stdout.split("\n")
        files = sorted(f for f in out if f)
    except (OSError, subprocess.CalledProcessError):
        files = []
        for p in paths:
            full = os.path.join(REPO_ROOT, p)
            if os.path.isfile(full):
                files.append(p)
            for dirpath, dirnames, filenames in os.walk(full):
                dirnames[:] = [d for d in dirnames if d not in ("target", "__pycache__")]
                files += [os.path.relpath(os.path.join(dirpath, f), REPO_ROOT) for f in filenames]
        files.sort()
    h = hashlib.sha256()
    for f in files:
        full = os.path.join(REPO_ROOT, f)
        if f.endswith(".so") or not os.path.isfile(full):
            continue
        h.update(f.encode() + b"\0")
        with open(full, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:16]


def our_wheel(python, pyver):
    """Build (or reuse) the wheel of this checkout for `python`."""
    fp = source_fingerprint()
    wdir = os.path.join(cache_root(), "wheels", f"{pyver}-{fp}")
    wheels = [f for f in os.listdir(wdir) if f.endswith(".whl")] if os.path.isdir(wdir) else []
    if not wheels:
        tmp = wdir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.monotonic()
        run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp, REPO_ROOT])
        os.replace(tmp, wdir)
        say(f"built our wheel in {time.monotonic() - t0:.0f}s")
        wheels = [f for f in os.listdir(wdir) if f.endswith(".whl")]
    if len(wheels) != 1:
        raise SetupError(f"expected one wheel in {wdir}, found {wheels}")
    return os.path.join(wdir, wheels[0]), fp


# ------------------------------------------------------------------ venvs


def download(python, reqs, binary=True):
    """pip download `reqs` (without dependencies) into the cache; return the files."""
    ddir = os.path.join(cache_root(), "downloads")
    os.makedirs(ddir, exist_ok=True)
    before = set(os.listdir(ddir))
    cmd = [python, "-m", "pip", "download", "-q", "--no-deps", "-d", ddir]
    cmd += ["--only-binary=:all:"] if binary else ["--no-binary=:all:"]
    run(cmd + list(reqs))
    return ddir, before


def find_download(ddir, name, version, exts):
    """The cached file for name==version (wheel or sdist)."""
    norm = re.sub(r"[-_.]+", "_", name).lower()
    for f in sorted(os.listdir(ddir)):
        fl = f.lower().replace("-", "_")
        if fl.startswith(f"{norm}_{version}_") or fl.startswith(f"{norm}_{version}."):
            if any(f.endswith(e) for e in exts):
                return os.path.join(ddir, f)
    raise SetupError(f"{name}=={version} not in {ddir}")


def wheel_requirements(python, wheel, extras):
    """Requires-Dist of a wheel, markers evaluated for `python` with `extras`, greenlet left out."""
    code = r"""
import json, sys, zipfile
from pip._vendor.packaging.requirements import Requirement
whl, extras = sys.argv[1], json.loads(sys.argv[2])
with zipfile.ZipFile(whl) as z:
    meta = [n for n in z.namelist() if n.endswith('.dist-info/METADATA')][0]
    text = z.read(meta).decode()
out = []
for line in text.split('\n'):
    if line == '':
        break
    if not line.startswith('Requires-Dist:'):
        continue
    req = Requirement(line.split(':', 1)[1].strip())
    if req.marker is not None:
        if not any(req.marker.evaluate({'extra': e}) for e in [''] + extras):
            continue
    req.marker = None
    out.append(str(req))
print(json.dumps(out))
"""
    out = subprocess.run(
        [python, "-c", code, wheel, json.dumps(extras)],
        capture_output=True, text=True, check=True,
    ).stdout
    return [r for r in json.loads(out) if not re.match(r"greenlet\b", r, re.I)]


def greenlet_identity(vpy):
    code = (
        "import json, greenlet; print(json.dumps({'file': greenlet.__file__,"
        " 'version': greenlet.__version__,"
        " 'implementation': getattr(greenlet, '__implementation__', None)}))"
    )
    proc = subprocess.run([vpy, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"greenlet does not import in {vpy}:\n{proc.stderr}")
    return json.loads(proc.stdout)


def check_greenlet(venv, side):
    """Make sure pip did not replace (or fail to install) the greenlet this venv is for."""
    vpy = os.path.join(venv, "bin", "python")
    ident = greenlet_identity(vpy)
    inside = os.path.realpath(ident["file"]).startswith(os.path.realpath(venv) + os.sep)
    if side == "ours":
        ok = inside and ident["implementation"] == OUR_IMPLEMENTATION
    else:
        ok = inside and ident["implementation"] is None and ident["version"] == UPSTREAM_GREENLET
    if not ok:
        raise SetupError(f"wrong greenlet in {venv}: {ident}")
    say(f"{os.path.basename(venv)}: greenlet {ident['version']}"
        f" ({ident['implementation'] or 'upstream'}) from {ident['file']}")
    return ident


def ensure_venv(client, python, pyver, side, reinstall=False):
    """Create/refresh the venv for `client` on `side` ('ours'/'upstream'); return its path."""
    venv = os.path.join(cache_root(), f"{client.name}-{pyver}-{side}")
    vpy = os.path.join(venv, "bin", "python")
    if reinstall and os.path.isdir(venv):
        shutil.rmtree(venv)
    if not os.access(vpy, os.X_OK):
        run([python, "-m", "venv", venv])

    if side == "ours":
        gwheel, gid = our_wheel(vpy, pyver)
    else:
        ddir, _ = download(vpy, [f"greenlet=={UPSTREAM_GREENLET}"])
        gwheel = find_download(ddir, "greenlet", UPSTREAM_GREENLET, [".whl"])
        gid = UPSTREAM_GREENLET
    state_file = os.path.join(venv, "greenlet-rs-clients.json")
    want = {"greenlet": gid, "client": client.fingerprint()}
    try:
        with open(state_file) as f:
            have = json.load(f)
    except (OSError, ValueError):
        have = {}
    if have.get("greenlet") != want["greenlet"] or have.get("client") != want["client"]:
        # First, so that the client's other requirements see greenlet as installed.
        run([vpy, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", gwheel])
        have = {"greenlet": want["greenlet"]}
    if have.get("client") != want["client"]:
        client.install(vpy)
        have["client"] = want["client"]
    check_greenlet(venv, side)
    with open(state_file, "w") as f:
        json.dump(have, f)
    return venv


# ------------------------------------------------------------------ sandboxing


def netns_prefix(use_netns):
    """Command prefix that runs a command in a fresh network namespace with only loopback."""
    if not use_netns:
        return []
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        raise SetupError("need unshare and ip (util-linux, iproute2) for the loopback-only"
                         " sandbox; or pass --no-netns")
    prefix = [unshare, "--net", "--", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh"]
    probe = subprocess.run(prefix + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SetupError(f"unshare --net does not work here ({probe.stderr.strip()}); "
                         "pass --no-netns to run without the loopback-only sandbox")
    return prefix


# ------------------------------------------------------------------ results


class Results:
    """Per-unit (test file) results of one run: name -> dict(status, ran, skipped, secs)."""

    def __init__(self, units=None, meta=None):
        self.units = units or {}
        self.meta = meta or {}

    def save(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump({"meta": self.meta, "units": self.units}, f, indent=1, sort_keys=True)

    @classmethod
    def load(cls, path):
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError):
            return None
        return cls(d["units"], d["meta"])


def compare(ours, base, expected):
    """Classify each expected unit; return (rows, counts)."""
    rows = []
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for name in sorted(set(expected) | set(ours.units)):
        o = ours.units.get(name)
        b = base.units.get(name) if base else None
        ostat = o["status"] if o else "missing"
        bstat = b["status"] if b else None
        if ostat == "passed":
            kind = "passed"
            if o.get("ran") and o.get("skipped") == o.get("ran"):
                kind, note = "skipped", "all tests skipped"
            else:
                note = "flaky: passed on rerun" if o.get("rerun") else ""
        elif bstat is not None and bstat != "passed":
            only = sorted(set(o.get("cases", [])) - set(b.get("cases", [])))
            if o.get("cases") and b.get("cases") and only:
                kind = "failed"
                note = f"fails with upstream too, but these only with ours: {', '.join(only)}"
            else:
                kind, note = "skipped", f"environment: fails with upstream too ({bstat})"
        else:
            kind = "failed"
            note = ostat + (" (upstream passed)" if bstat == "passed" else " (no baseline)")
        counts[kind] += 1
        rows.append((name, kind, ostat, bstat, note))
    return rows, counts


# ------------------------------------------------------------------ clients


class Gevent:
    name = "gevent"
    version = "26.9.0"
    # Installed besides gevent's own requirements with the [test] extra.
    extra_deps = ["dnspython"]
    modes = {"cython": {}, "pure": {"PURE_PYTHON": "1"}}
    quick = ["test__greenlet", "test__hub", "test__event", "test__pool", "test__queue",
             "test__monkey"]
    # Test files left out: they resolve an outside host name whatever -u says.
    excluded = ["test__getaddrinfo_import.py"]
    default_timeout = 120

    def fingerprint(self):
        return f"{self.name}=={self.version};deps={','.join(self.extra_deps)};v1"

    def install(self, vpy):
        ddir, _ = download(vpy, [f"gevent=={self.version}"])
        whl = find_download(ddir, "gevent", self.version, [".whl"])
        deps = wheel_requirements(vpy, whl, ["test"]) + self.extra_deps
        say(f"gevent requirements (greenlet left out): {' '.join(deps)}")
        run([vpy, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", whl])
        run([vpy, "-m", "pip", "install", "-q"] + deps)

    def import_check(self, vpy, env):
        """gevent must import with no 'size changed' warning; in cython mode, compiled."""
        code = (
            "import warnings; warnings.simplefilter('error')\n"
            "import gevent, gevent.greenlet, gevent.hub, gevent._abstract_linkable\n"
            "import gevent.local, gevent.queue, gevent.event, gevent.pool\n"
            "print(gevent.__version__, gevent.greenlet.Greenlet.__module__,"
            " gevent.hub.Hub.__mro__)\n"
        )
        proc = subprocess.run([vpy, "-W", "error", "-c", code], capture_output=True,
                              text=True, env=env)
        out = (proc.stdout + proc.stderr).strip()
        bad = proc.returncode != 0 or "size changed" in out
        compiled = "_gevent_c" in proc.stdout
        if not bad and env.get("PURE_PYTHON") != "1" and not compiled:
            bad, out = True, out + "\n(expected gevent's compiled modules, got pure Python)"
        return not bad, out

    def suite_command(self, vpy, tests, jobs, timeout):
        # `python -m gevent.tests`, with the per-file timeout changed first.
        code = (
            "import sys; from gevent.testing import testrunner as t; "
            f"t.TIMEOUT = {timeout}; t.DEFAULT_RUN_OPTIONS['timeout'] = {timeout}; "
            "sys.argv[0] = 'gevent.tests'; t.main()"
        )
        ignore = os.path.join(cache_root(), "gevent-ignore.txt")
        with open(ignore, "w") as f:
            f.write("".join(x + "\n" for x in self.excluded))
        return [vpy, "-u", "-c", code, "-u-network", "--no-combine", "-j", str(jobs),
                "--ignore", ignore] + [t if t.endswith(".py") else t + ".py" for t in tests]

    def expected_units(self, vpy, tests, env):
        """The test files the runner will run (its own discovery)."""
        cmd = self.suite_command(vpy, tests, 1, 1) + ["--discover"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            return None
        names = [self.unit_name(line) for line in proc.stdout.splitlines()]
        return [n for n in names if n]

    @staticmethod
    def unit_name(name):
        m = re.search(r"-m\s*gevent\.tests\.(\S+)", name) or re.search(r"(test\S*?)(?:\.py)?$", name)
        return m.group(1) if m else None

    def parse(self, text):
        """Per-file results from the testrunner's `- name [...]` / `! name [code N] [...]` lines."""
        units = {}
        status_re = (r"\[(?:Ran (?P<ran>\d+) tests in|took) (?P<secs>[\d.]+)s"
                     r"(?: \(skipped=(?P<skipped>\d+)\))?\]")
        for line in ANSI.sub("", text).splitlines():
            m = (re.match(r"^- (?P<name>.+?) " + status_re + r"\s*$", line)
                 or re.match(r"^! (?P<name>.+?) \[code (?P<code>[^\]]+)\] " + status_re + r"\s*$",
                             line))
            if not m:
                continue
            name = self.unit_name(m.group("name"))
            if not name:
                continue
            code = m.groupdict().get("code")
            if code is None:
                status = "passed"
            elif code == "TIMEOUT":
                status = "timeout"
            else:
                status = f"failed (code {code})"
            units[name] = {
                "status": status,
                "ran": int(m.group("ran") or 0),
                "skipped": int(m.group("skipped") or 0),
                "secs": float(m.group("secs")),
            }
        for name, cases in self.failing_cases(text).items():
            if name in units and units[name]["status"] != "passed":
                units[name]["cases"] = cases
        return units

    def failing_cases(self, text):
        """unittest's FAIL:/ERROR: lines in the output blocks (`| name` + indented lines)
        that the testrunner prints for each failing file."""
        out, name = {}, None
        for line in ANSI.sub("", text).splitlines():
            if line.startswith("| "):
                name = self.unit_name(line[2:].strip())
                continue
            if name and line and not line.startswith("  "):
                name = None
            if name:
                m = re.match(r"^  (?:FAIL|ERROR): (\S+) \(([^)]*)\)", line)
                if m:
                    cls = m.group(2).split(".")[-2] if "." in m.group(2) else m.group(2)
                    out.setdefault(name, []).append(f"{cls}.{m.group(1)}")
        return {n: sorted(set(c)) for n, c in out.items()}

    def rerun_command(self, vpy, name, timeout):
        return self.suite_command(vpy, [name], 1, timeout)


CLIENTS = {"gevent": Gevent}


# ------------------------------------------------------------------ running


def run_suite(client, venv, mode, tests, args, prefix, side, pyver):
    """Run `client`'s suite in `venv` in `mode`; return Results (also saved)."""
    vpy = os.path.join(venv, "bin", "python")
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("GEVENT", "PYTHON")) or k in ("PURE_PYTHON", "VIRTUAL_ENV"):
            env.pop(k)
    env.update(client.modes[mode])
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    tag = f"{client.name}-{pyver}-{side}-{mode}"
    logdir = os.path.join(cache_root(), "logs")
    os.makedirs(logdir, exist_ok=True)
    log = os.path.join(logdir, tag + ".log")

    ok, out = client.import_check(vpy, env)
    say(f"[{side}/{mode}] import check: {'ok' if ok else 'FAILED'}: {out.splitlines()[-1] if out else ''}")
    if not ok:
        print(out)

    expected = client.expected_units(vpy, tests, env) or []
    cmd = prefix + client.suite_command(vpy, tests, args.jobs, args.timeout)
    say(f"[{side}/{mode}] running {len(expected)} test files, log: {log}")
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                  timeout=args.suite_timeout, cwd=venv)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "suite timeout"
    elapsed = time.monotonic() - t0
    with open(log, errors="replace") as f:
        units = client.parse(f.read())
    say(f"[{side}/{mode}] finished in {fmt_seconds(elapsed)} (exit {rc}); "
        f"{sum(u['status'] == 'passed' for u in units.values())} of {len(units)} files passed")
    meta = {"client": client.name, "version": client.version, "mode": mode, "side": side,
            "python": pyver, "tests": tests, "elapsed": elapsed, "rc": rc,
            "import_ok": ok, "jobs": args.jobs, "expected": expected,
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in expected:
        if name not in units:
            units[name] = {"status": "missing", "ran": 0, "skipped": 0, "secs": 0}
    if not ok:
        units["(import check)"] = {"status": "failed", "ran": 0, "skipped": 0, "secs": 0,
                                   "output": out}
    res = Results(units, meta)
    res.save(os.path.join(cache_root(), "results", tag + ".json"))
    return res


def rerun_failures(client, venv, mode, res, names, args, prefix, side, pyver):
    """Rerun `names` one at a time, alone; a pass marks the unit flaky-but-passed."""
    vpy = os.path.join(venv, "bin", "python")
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("GEVENT", "PYTHON")) or k in ("PURE_PYTHON", "VIRTUAL_ENV"):
            env.pop(k)
    env.update(client.modes[mode])
    log = os.path.join(cache_root(), "logs", f"{client.name}-{pyver}-{side}-{mode}-rerun.log")
    with open(log, "w") as f:
        for name in names:
            cmd = prefix + client.rerun_command(vpy, name, args.timeout)
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            try:
                subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=venv,
                               timeout=args.timeout * 2 + 60)
            except subprocess.TimeoutExpired:
                f.write(f"\n(rerun of {name} timed out)\n")
    with open(log, errors="replace") as f:
        again = client.parse(f.read())
    for name in names:
        r = again.get(name)
        say(f"[{side}/{mode}] rerun alone: {name}: {r['status'] if r else 'no result'}")
        if r and r["status"] == "passed":
            res.units[name] = dict(r, rerun=True, first=res.units[name]["status"])
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("client", choices=sorted(CLIENTS))
    ap.add_argument("--mode", choices=["cython", "pure", "both"], default="both",
                    help="gevent: as shipped (compiled), PURE_PYTHON=1, or both (default)")
    ap.add_argument("--python", default="3.11", help="interpreter path or X.Y (default 3.11)")
    ap.add_argument("--baseline", action="store_true",
                    help="also run the suite against upstream greenlet 3.5.6 and count only"
                         " the differences")
    ap.add_argument("--quick", action="store_true", help="a few test files only (smoke check)")
    ap.add_argument("--tests", nargs="+", default=None, help="only these test files")
    ap.add_argument("--timeout", type=int, default=None, help="seconds per test file")
    ap.add_argument("--suite-timeout", type=int, default=3600,
                    help="seconds for a whole suite run (default 3600)")
    ap.add_argument("--jobs", "-j", type=int, default=2,
                    help="test files run in parallel (default 2)")
    ap.add_argument("--no-rerun", action="store_true",
                    help="do not rerun files that fail only with ours")
    ap.add_argument("--reinstall", action="store_true", help="recreate the venvs")
    ap.add_argument("--no-netns", action="store_true",
                    help="run without the loopback-only network namespace")
    ap.add_argument("--setup-only", action="store_true", help="make the venvs, run nothing")
    args = ap.parse_args(argv)

    client = CLIENTS[args.client]()
    args.timeout = args.timeout or client.default_timeout
    tests = args.tests or (client.quick if args.quick else [])
    modes = list(client.modes) if args.mode == "both" else [args.mode]
    t_start = time.monotonic()
    try:
        python, pyver = find_python(args.python)
        say(f"{client.name} {client.version} on CPython {pyver} ({python}); cache {cache_root()}")
        prefix = netns_prefix(not args.no_netns)
        sides = ["ours"] + (["upstream"] if args.baseline else [])
        venvs = {s: ensure_venv(client, python, pyver, s, args.reinstall) for s in sides}
    except SetupError as e:
        say(f"setup error: {e}")
        print(f"{client.name}: 0 passed, 1 failed, 0 skipped")
        return 2
    if args.setup_only:
        return 0

    total = {"passed": 0, "failed": 0, "skipped": 0}
    summary = []
    for mode in modes:
        ours = run_suite(client, venvs["ours"], mode, tests, args, prefix, "ours", pyver)
        base = None
        if args.baseline:
            base = run_suite(client, venvs["upstream"], mode, tests, args, prefix,
                             "upstream", pyver)
        else:
            path = os.path.join(cache_root(), "results",
                                f"{client.name}-{pyver}-upstream-{mode}.json")
            base = Results.load(path)
            if base is not None:
                if not set(ours.meta["expected"]) <= set(base.units):
                    say(f"[{mode}] saved baseline {path} does not cover this selection; ignored")
                    base = None
                else:
                    say(f"[{mode}] comparing with the saved baseline of {base.meta['when']}")
        rows, counts = compare(ours, base, ours.meta["expected"])
        only_ours = [r[0] for r in rows if r[1] == "failed" and not r[0].startswith("(")]
        if only_ours and not args.no_rerun:
            ours = rerun_failures(client, venvs["ours"], mode, ours, only_ours, args,
                                  prefix, "ours", pyver)
            rows, counts = compare(ours, base, ours.meta["expected"])
        print(f"\n==== {client.name} [{mode}] ours vs "
              f"{'upstream ' + UPSTREAM_GREENLET if base else 'no baseline'}")
        for name, kind, ostat, bstat, note in rows:
            if kind != "passed" or note:
                print(f"  {kind.upper():8} {name:45} ours: {ostat:20} upstream: {bstat or '-':20}"
                      f" {note}")
        cases = sum(u["ran"] for u in ours.units.values())
        skipped_cases = sum(u["skipped"] for u in ours.units.values())
        line = (f"{client.name}-{mode}: {counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['skipped']} skipped")
        extra = f"(test files; {cases} test cases ran, {skipped_cases} skipped; ours took " \
                f"{fmt_seconds(ours.meta['elapsed'])}"
        if base is not None and "elapsed" in base.meta and args.baseline:
            extra += f", upstream {fmt_seconds(base.meta['elapsed'])}"
        summary.append(line + "  " + extra + ")")
        for k in total:
            total[k] += counts[k]
    print()
    for line in summary:
        print(line)
    say(f"total wall time {fmt_seconds(time.monotonic() - t_start)}")
    print(f"{client.name}: {total['passed']} passed, {total['failed']} failed, "
          f"{total['skipped']} skipped")
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
