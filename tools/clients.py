#!/usr/bin/env python3
"""Run the test suites of greenlet's real clients against greenlet-rs.

Usage:

    python3 tools/clients.py gevent --baseline          # ours and upstream, both modes
    python3 tools/clients.py gevent --quick --baseline  # a few test files only (CI smoke)
    python3 tools/clients.py gevent --mode pure         # ours only, compared to the last baseline
    python3 tools/clients.py gevent --tests test__hub test__event --baseline
    python3 tools/clients.py eventlet --baseline        # eventlet 0.41.3's tests (pytest)
    python3 tools/clients.py sqlalchemy --baseline      # SQLAlchemy 2.1.9 asyncio + aiosqlite
    python3 tools/clients.py greenback --baseline       # greenback 1.3.0's tests
    python3 tools/clients.py playwright --baseline      # Playwright's sync API, Debian chromium

Nothing of the clients is part of this repository: the client (as the binary
wheel published for the interpreter), its sdist (for the test suites that
are not in the wheel) and its test dependencies are downloaded with pip at
test time and cached, with the virtualenvs, under ~/.cache/greenlet-rs/clients
(or $GREENLET_RS_CACHE/clients).

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
files for gevent (it runs and reports each test file as one unit), in tests
(pytest node ids) for eventlet, sqlalchemy and greenback, in steps of our own
script for playwright; a unit that fails with upstream as well is counted as
skipped (an environment failure), and one that skips itself with ours only
while it passes with upstream counts as failed.
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


def find_download(ddir, name, version, exts, python=None):
    """The cached file for name==version (wheel or sdist); with `python`, a binary wheel
    built for that interpreter (cpXY) comes before other cached wheels."""
    norm = re.sub(r"[-_.]+", "_", name).lower()
    files = sorted(os.listdir(ddir))
    if python:
        tag = subprocess.run(
            [python, "-c", "import sys; print('cp%d%d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        files.sort(key=lambda f: (f"-{tag}-" not in f and "-none-" not in f, f))
    for f in files:
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
        gwheel = find_download(ddir, "greenlet", UPSTREAM_GREENLET, [".whl"], vpy)
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
    if hasattr(client, "prepare"):
        client.prepare(vpy)
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
        if ostat == "skipped":
            kind, note = "skipped", o.get("reason") or "skipped"
            if bstat == "passed":
                # A test that decides to skip itself under ours only is a difference too.
                kind, note = "failed", "skipped with ours only (upstream passed): " + note
        elif ostat == "passed":
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


class Client:
    """What the runner needs of a client; the defaults suit a pytest-less one."""

    name = version = None
    modes = {"default": {}}
    default_modes = None           # modes run without --mode (None: all of them)
    quick = []
    default_timeout = 120
    unit_label = "test files"
    env_prefixes = ("PYTHON",)     # variables of the caller's environment left out

    def fingerprint(self):
        return f"{self.name}=={self.version};v1"

    def suite_cwd(self, venv):
        return venv

    def expected_units(self, vpy, tests, env):
        return None

    def collected_units(self, report):
        return None

    def modules_used(self, text, report):
        """What the test process itself imported: {'modules': {name: file},
        'greenlet_implementation': ..., 'greenlet_version': ...}, or None if unknown."""
        return None


def check_modules_used(client, text, report, venv, side):
    """None if the suite's own process ran the venv's client and the right greenlet."""
    used = client.modules_used(text, report)
    if used is None:
        return None
    where = os.path.realpath(venv) + os.sep
    outside = {n: f for n, f in used["modules"].items()
               if not f or not os.path.realpath(f).startswith(where)}
    if "greenlet" not in used["modules"]:
        return "the suite never imported greenlet"
    impl = used.get("greenlet_implementation")
    if (side == "ours") != (impl == OUR_IMPLEMENTATION):
        return f"the suite ran greenlet {used.get('greenlet_version')} ({impl or 'upstream'})"
    if outside:
        return f"the suite imported modules from outside the venv: {outside}"
    return None


class Gevent(Client):
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
    env_prefixes = ("GEVENT", "PYTHON", "PURE_PYTHON")

    def fingerprint(self):
        return f"{self.name}=={self.version};deps={','.join(self.extra_deps)};v1"

    def install(self, vpy):
        ddir, _ = download(vpy, [f"gevent=={self.version}"])
        whl = find_download(ddir, "gevent", self.version, [".whl"], vpy)
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

    def suite_command(self, vpy, tests, jobs, timeout, report=None, mode=None):
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

    def parse(self, text, report=None):
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

    def rerun_command(self, vpy, name, timeout, report=None, mode=None):
        return self.suite_command(vpy, [name], 1, timeout)


# ---- pytest-based clients

# Written into each pytest client's venv (site-packages) at install time: one JSON
# line per collected list, collection error and test phase, flushed as it goes, so
# that a run cut short still leaves the results it had.
PYTEST_REPORT_PLUGIN = r'''
"""Written by greenlet-rs's tools/clients.py: the results of a pytest run as JSON lines."""
import json

_out = None


def pytest_addoption(parser):
    parser.addoption("--greenlet-rs-report", default=None, help="JSON-lines results file")


def pytest_configure(config):
    global _out
    path = config.getoption("--greenlet-rs-report")
    if path and _out is None:
        _out = open(path, "a", buffering=1)


def _write(**rec):
    if _out is not None:
        _out.write(json.dumps(rec) + "\n")
        _out.flush()


def pytest_collectreport(report):
    if report.failed:
        _write(event="collecterror", nodeid=report.nodeid or "(collection)",
               longrepr=str(report.longreprtext)[-3000:])
    elif report.skipped:          # a whole module skipped (pytest.skip(allow_module_level))
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        _write(event="collectskip", nodeid=report.nodeid, reason=str(reason)[:300])


def pytest_collection_finish(session):
    _write(event="collected", nodeids=[item.nodeid for item in session.items])


def pytest_runtest_logreport(report):
    rec = {"event": "report", "nodeid": report.nodeid, "when": report.when,
           "outcome": report.outcome, "secs": report.duration}
    if hasattr(report, "wasxfail"):
        rec["xfail"] = True
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        rec["reason"] = str(report.longrepr[2])[:300]
    elif report.failed:
        rec["longrepr"] = str(report.longreprtext)[-3000:]
    _write(**rec)


def pytest_sessionfinish(session, exitstatus):
    import sys
    g = sys.modules.get("greenlet")
    mods = {n: getattr(sys.modules[n], "__file__", None)
            for n in ("greenlet", "gevent", "eventlet", "sqlalchemy", "greenback")
            if n in sys.modules}
    _write(event="finished", exitstatus=int(exitstatus), modules=mods,
           greenlet_implementation=getattr(g, "__implementation__", None),
           greenlet_version=getattr(g, "__version__", None))
'''
PYTEST_REPORT_MODULE = "greenlet_rs_pytest_report"


def sdist_tree(vpy, name, version, drop=()):
    """The client's sdist, unpacked under the cache (once); `drop`: paths removed from it
    (the package itself, so that the tests import the installed wheel)."""
    src = os.path.join(cache_root(), "src", f"{name}-{version}")
    marker = os.path.join(src, ".greenlet-rs-unpacked")
    if os.path.exists(marker):
        return src
    ddir, _ = download(vpy, [f"{name}=={version}"], binary=False)
    sdist = find_download(ddir, name, version, [".tar.gz", ".zip"])
    import tarfile
    tmp = src + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    say(f"unpacking {os.path.basename(sdist)}")
    with tarfile.open(sdist) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(tmp, filter="data")
        else:
            tf.extractall(tmp)
    (top,) = os.listdir(tmp)
    shutil.rmtree(src, ignore_errors=True)
    os.replace(os.path.join(tmp, top), src)
    shutil.rmtree(tmp)
    for d in drop:
        shutil.rmtree(os.path.join(src, d), ignore_errors=True)
    with open(marker, "w") as f:
        f.write(os.path.basename(sdist) + "\n")
    return src


def site_packages(vpy):
    return subprocess.run(
        [vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


class PytestClient(Client):
    """A client whose tests run under pytest; a unit is one test (its node id)."""

    pip_name = None                 # the distribution's name on the registry
    extras = []                     # extras whose requirements are installed (greenlet left out)
    test_deps = []                  # test requirements besides pytest and pytest-timeout
    drop_from_sdist = []            # removed from the unpacked sdist (the package itself)
    python_flags = []
    test_paths = []                 # default selection (relative to suite_cwd)
    pytest_args = []
    mode_args = {}
    timeout_method = "signal"
    unit_label = "tests"

    def fingerprint(self):
        return (f"{self.name}=={self.version};extras={','.join(self.extras)};"
                f"deps={','.join(self.test_deps)};v1")

    def install(self, vpy):
        ddir, _ = download(vpy, [f"{self.pip_name}=={self.version}"])
        whl = find_download(ddir, self.pip_name, self.version, [".whl"], vpy)
        me = re.sub(r"[-_.]+", "-", self.pip_name).lower()
        deps = [r for r in wheel_requirements(vpy, whl, self.extras)
                if re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", r)[0]).lower() != me]
        deps += ["pytest", "pytest-timeout"] + self.test_deps
        say(f"{self.name} requirements and test requirements (greenlet left out): "
            f"{' '.join(deps)}")
        run([vpy, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", whl])
        run([vpy, "-m", "pip", "install", "-q"] + deps)
        self.prepare(vpy)

    def prepare(self, vpy):
        """Put the report plugin in the venv and unpack the sdist (done on every run:
        both are cheap, and the cache may have been cleaned)."""
        with open(os.path.join(site_packages(vpy), PYTEST_REPORT_MODULE + ".py"), "w") as f:
            f.write(PYTEST_REPORT_PLUGIN)
        sdist_tree(vpy, self.pip_name, self.version, self.drop_from_sdist)

    def src(self):
        return os.path.join(cache_root(), "src", f"{self.pip_name}-{self.version}")

    def suite_cwd(self, venv):
        return self.src()

    def suite_command(self, vpy, tests, jobs, timeout, report=None, mode=None):
        cmd = [vpy] + self.python_flags + [
            "-m", "pytest", "-p", PYTEST_REPORT_MODULE, "-p", "no:cacheprovider",
            "--timeout", str(timeout), "--timeout-method", self.timeout_method, "-rfEs",
        ]
        if report:
            cmd += ["--greenlet-rs-report", report]
        cmd += self.pytest_args + self.mode_args.get(mode, [])
        return cmd + (list(tests) or self.test_paths)

    def rerun_command(self, vpy, name, timeout, report=None, mode=None):
        return self.suite_command(vpy, [name], 1, timeout, report, mode)

    @staticmethod
    def read_report(report):
        recs = []
        try:
            with open(report, errors="replace") as f:
                for line in f:
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        pass
        except (OSError, TypeError):
            pass
        return recs

    def collected_units(self, report):
        out = None
        for rec in self.read_report(report):
            if rec["event"] == "collected":
                out = (out or []) + rec["nodeids"]
            elif rec["event"] == "collecterror":
                out = (out or []) + [f"{rec['nodeid']} (collection)"]
            elif rec["event"] == "collectskip":
                out = (out or []) + [rec["nodeid"]]
        return out

    def modules_used(self, text, report):
        for rec in self.read_report(report):
            if rec["event"] == "finished" and "modules" in rec:
                return rec
        return None

    def parse(self, text, report=None):
        units = {}
        for rec in self.read_report(report):
            if rec["event"] == "collecterror":
                units[f"{rec['nodeid']} (collection)"] = {
                    "status": "collection error", "ran": 0, "skipped": 0, "secs": 0,
                    "output": rec.get("longrepr", "")}
                continue
            if rec["event"] == "collectskip":
                units[rec["nodeid"]] = {"status": "skipped", "ran": 1, "skipped": 1, "secs": 0,
                                        "reason": rec.get("reason", "")}
                continue
            if rec["event"] != "report":
                continue
            u = units.setdefault(rec["nodeid"], {"status": None, "ran": 1, "skipped": 0,
                                                 "secs": 0.0})
            u["secs"] += rec.get("secs") or 0.0
            when, outcome = rec["when"], rec["outcome"]
            if outcome == "failed":
                if when == "call":
                    u["status"] = "failed"
                elif u["status"] in (None, "passed", "skipped"):
                    u["status"] = f"error ({when})"
                u["output"] = rec.get("longrepr", "")
            elif outcome == "skipped" and u["status"] is None:
                u["status"], u["skipped"] = "skipped", 1
                u["reason"] = "xfail" if rec.get("xfail") else rec.get("reason", "")
            elif outcome == "passed" and when == "call" and u["status"] is None:
                u["status"] = "passed"
        for u in units.values():
            if u["status"] is None:      # setup passed, no call: cut short
                u["status"] = "missing"
        return units


class Eventlet(PytestClient):
    name = pip_name = "eventlet"
    version = "0.41.3"
    # tox.ini's deps that need no database server (pyzmq: tests/zmq_test.py, aiohttp:
    # asyncio_test.py, both on loopback).
    test_deps = ["dnspython", "pyzmq", "pyopenssl", "aiohttp"]
    drop_from_sdist = ["eventlet"]      # the tests import the installed wheel
    test_paths = ["tests"]
    # eventlet's own hubs; epolls is the default on Linux.
    modes = {"epolls": {"EVENTLET_HUB": "epolls"}, "poll": {"EVENTLET_HUB": "poll"},
             "selects": {"EVENTLET_HUB": "selects"}, "asyncio": {"EVENTLET_HUB": "asyncio"}}
    default_modes = ["epolls"]
    env_prefixes = ("PYTHON", "EVENTLET")
    quick = ["tests/hub_test.py", "tests/greenthread_test.py", "tests/event_test.py",
             "tests/queue_test.py", "tests/semaphore_test.py", "tests/greenpool_test.py",
             "tests/greenio_test.py"]
    # eventlet's LimitedTestCase uses SIGALRM itself, so pytest-timeout must not.
    timeout_method = "thread"
    default_timeout = 120

    def import_check(self, vpy, env):
        code = ("import warnings; warnings.simplefilter('error')\n"
                "warnings.filterwarnings('ignore', message=r'\\s*Eventlet is deprecated')\n"
                "import eventlet, eventlet.hubs, greenlet\n"
                "print(eventlet.__version__, eventlet.__file__, eventlet.hubs.get_hub())\n"
                "g = eventlet.spawn(lambda x: x * 2, 21); assert g.wait() == 42\n")
        proc = subprocess.run([vpy, "-c", code], capture_output=True, text=True, env=env)
        out = (proc.stdout + proc.stderr).strip()
        ok = proc.returncode == 0 and "site-packages" in proc.stdout
        return ok, out


class SQLAlchemy(PytestClient):
    name = "sqlalchemy"
    pip_name = "SQLAlchemy"
    version = "2.1.9"
    extras = ["asyncio", "aiosqlite"]
    test_paths = ["test/ext/asyncio", "test/base/test_concurrency.py"]
    # -s: test/conftest.py puts the sdist's lib/ first on sys.path unless the user site
    # is off; with it off the tests import the installed (compiled) wheel, and only
    # SQLAlchemy's pytest plugin is loaded from the sdist's lib/sqlalchemy/testing.
    python_flags = ["-s"]
    pytest_args = ["--maxfail=1000"]
    modes = {"aiosqlite": {}, "sqlite": {}}
    mode_args = {"aiosqlite": ["--db", "aiosqlite"], "sqlite": ["--db", "sqlite"]}
    default_modes = ["aiosqlite"]
    env_prefixes = ("PYTHON", "SQLALCHEMY")
    quick = ["test/base/test_concurrency.py", "test/ext/asyncio/test_scoping.py"]
    default_timeout = 120

    def import_check(self, vpy, env):
        code = (
            "import sqlalchemy, greenlet\n"
            "from sqlalchemy.util import concurrency\n"
            "from sqlalchemy.util._has_cython import HAS_CYEXTENSION\n"
            "from sqlalchemy.ext.asyncio import create_async_engine\n"
            "import asyncio\n"
            "async def main():\n"
            "    e = create_async_engine('sqlite+aiosqlite://')\n"
            "    async with e.connect() as c:\n"
            "        r = await c.exec_driver_sql('select 42')\n"
            "        v = r.scalar()\n"
            "    await e.dispose()\n"
            "    return v\n"
            "print(sqlalchemy.__version__, sqlalchemy.__file__, 'cython:', HAS_CYEXTENSION,"
            " 'select:', asyncio.run(main()))\n"
        )
        proc = subprocess.run([vpy, "-s", "-c", code], capture_output=True, text=True, env=env)
        out = (proc.stdout + proc.stderr).strip()
        ok = (proc.returncode == 0 and "site-packages" in proc.stdout
              and "cython: True" in proc.stdout and "select: 42" in proc.stdout)
        return ok, out


class Greenback(PytestClient):
    name = pip_name = "greenback"
    version = "1.3.0"
    # test-requirements.txt of the sdist, less the linters and coverage.
    test_deps = ["pytest-trio", "anyio>=4.0", "trio>=0.23.0"]
    test_paths = ["greenback/_tests"]
    quick = ["greenback/_tests/test_util.py"]
    default_timeout = 60

    def prepare(self, vpy):
        # The tests are a subpackage (they import `.._impl`): the sdist's copy replaces
        # the wheel's in the venv, and they run from site-packages with the sdist's
        # setup.cfg ([tool:pytest] xfail_strict, faulthandler_timeout).
        super().prepare(vpy)
        dest = os.path.join(site_packages(vpy), "greenback", "_tests")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(os.path.join(self.src(), "greenback", "_tests"), dest)

    def suite_cwd(self, venv):
        return site_packages(os.path.join(venv, "bin", "python"))

    def suite_command(self, vpy, tests, jobs, timeout, report=None, mode=None):
        cmd = super().suite_command(vpy, tests, jobs, timeout, report, mode)
        i = cmd.index("pytest") + 1
        return cmd[:i] + ["-c", os.path.join(self.src(), "setup.cfg"), "--rootdir", "."] \
            + cmd[i:]

    def import_check(self, vpy, env):
        code = (
            "import greenback, greenlet, trio, anyio\n"
            "async def main():\n"
            "    await greenback.ensure_portal()\n"
            "    return greenback.await_(_v())\n"
            "async def _v():\n"
            "    return 42\n"
            "print(greenback.__file__, 'result:', trio.run(main))\n"
        )
        proc = subprocess.run([vpy, "-c", code], capture_output=True, text=True, env=env)
        out = (proc.stdout + proc.stderr).strip()
        return proc.returncode == 0 and "result: 42" in proc.stdout, out


# ---- Playwright's sync API (our own script against Debian's chromium)

PLAYWRIGHT_SCRIPT = r'''
"""Written by greenlet-rs's tools/clients.py: Playwright's sync API (which runs on
greenlet) driving a headless Debian chromium against a loopback page. One line per
step: `step <name>: ok|FAILED <error>`."""
import faulthandler, gc, http.server, sys, threading, time, traceback

import greenlet
from playwright.sync_api import sync_playwright

CHROMIUM = sys.argv[1]
faulthandler.dump_traceback_later(int(sys.argv[2]), exit=True)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

PAGE = b"""<!doctype html><html><head><title>greenlet-rs</title></head><body>
<button id="btn" onclick="this.textContent = 'clicked ' + (++window.n)">press</button>
<input id="inp"><div id="out"></div>
<script>window.n = 0;</script></body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"/": PAGE, "/pop": b"<!doctype html><title>pop</title>"}.get(self.path)
        self.send_response(404 if body is None else 200)
        body = body or b"not here"
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
URL = "http://127.0.0.1:%d/" % server.server_address[1]
state = {}
failed = []


def step(name, needs=()):
    def deco(fn):
        missing = [n for n in needs if n in failed]
        if missing:
            failed.append(name)
            print("step %s: FAILED not run (%s failed)" % (name, ", ".join(missing)), flush=True)
            return fn
        t0 = time.monotonic()
        try:
            fn()
        except BaseException as e:
            failed.append(name)
            traceback.print_exc()
            print("step %s: FAILED %s: %s" % (name, type(e).__name__, str(e).splitlines()[0]
                                            if str(e) else ""), flush=True)
        else:
            print("step %s: ok (%.2fs)" % (name, time.monotonic() - t0), flush=True)
        return fn
    return deco


@step("start")
def _():
    state["pw"] = sync_playwright().start()
    assert greenlet.getcurrent().parent is None   # we are the main greenlet still


@step("launch", needs=["start"])
def _():
    state["browser"] = state["pw"].chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=ARGS)
    state["page"] = page = state["browser"].new_page()
    page.set_default_timeout(15000)


@step("goto_loopback", needs=["launch"])
def _():
    page = state["page"]
    resp = page.goto(URL)
    assert resp.status == 200, resp.status
    assert page.title() == "greenlet-rs", page.title()


@step("evaluate", needs=["goto_loopback"])
def _():
    page = state["page"]
    assert page.evaluate("() => 6 * 7") == 42
    assert page.evaluate("([a, b]) => a + b", [20, 22]) == 42
    assert page.evaluate("() => new Promise(r => setTimeout(() => r('later'), 50))") == "later"
    assert page.evaluate("() => ({a: [1, 2, {b: null}]})") == {"a": [1, 2, {"b": None}]}


@step("click", needs=["goto_loopback"])
def _():
    page = state["page"]
    for i in range(1, 4):
        page.click("#btn")
        assert page.text_content("#btn") == "clicked %d" % i, page.text_content("#btn")
    page.locator("#btn").click()
    assert page.evaluate("() => window.n") == 4


@step("fill_and_keyboard", needs=["goto_loopback"])
def _():
    page = state["page"]
    page.fill("#inp", "greenlet")
    page.press("#inp", "End")
    page.keyboard.type("-rs")
    assert page.input_value("#inp") == "greenlet-rs", page.input_value("#inp")


@step("console_event", needs=["goto_loopback"])
def _():
    page = state["page"]
    seen = []
    page.on("console", lambda msg: seen.append(msg.text))
    with page.expect_console_message() as info:
        page.evaluate("() => console.log('hello from js')")
    assert info.value.text == "hello from js"
    assert "hello from js" in seen, seen


@step("expose_function", needs=["goto_loopback"])
def _():
    page = state["page"]
    calls = []

    def py_add(a, b):
        calls.append(greenlet.getcurrent())
        return a + b

    page.expose_function("pyAdd", py_add)
    assert page.evaluate("async () => await window.pyAdd(40, 2)") == 42
    assert page.evaluate("async () => (await pyAdd(1, 1)) + (await pyAdd(2, 2))") == 6
    assert len(calls) == 3 and all(g is not greenlet.getcurrent() for g in calls), calls


@step("route", needs=["goto_loopback"])
def _():
    page = state["page"]
    page.route("**/api/*", lambda route: route.fulfill(status=200, body="routed " +
                                                       route.request.url.rsplit("/", 1)[1]))
    got = page.evaluate("async () => (await (await fetch('/api/x1')).text())")
    assert got == "routed x1", got
    page.unroute("**/api/*")


@step("dialog", needs=["goto_loopback"])
def _():
    page = state["page"]
    page.once("dialog", lambda d: d.accept("typed"))
    assert page.evaluate("() => prompt('name?')") == "typed"


@step("popup", needs=["goto_loopback"])
def _():
    page = state["page"]
    with page.expect_popup() as info:
        page.evaluate("() => { window.open('/pop'); }")
    pop = info.value
    pop.wait_for_load_state()
    assert pop.title() == "pop", pop.title()
    pop.close()


@step("data_url", needs=["launch"])
def _():
    page = state["browser"].new_page()
    page.goto("data:text/html,<h1 id=h>hi from a data url</h1>")
    assert page.locator("#h").inner_text() == "hi from a data url"
    png = page.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:8]
    page.close()


@step("two_contexts", needs=["launch"])
def _():
    b = state["browser"]
    c1, c2 = b.new_context(), b.new_context()
    p1, p2 = c1.new_page(), c2.new_page()
    p1.goto(URL)
    p2.goto(URL)
    p1.click("#btn")
    p1.click("#btn")
    p2.click("#btn")
    assert (p1.evaluate("() => n"), p2.evaluate("() => n")) == (2, 1)
    c1.close()
    c2.close()


@step("wait_for_function", needs=["goto_loopback"])
def _():
    page = state["page"]
    page.evaluate("() => setTimeout(() => { window.done = 'yes'; }, 100)")
    page.wait_for_function("() => window.done === 'yes'")
    page.wait_for_timeout(20)


@step("error_propagation", needs=["goto_loopback"])
def _():
    page = state["page"]
    try:
        page.evaluate("() => { throw new Error('boom from js'); }")
    except Exception as e:
        assert "boom from js" in str(e), e
    else:
        raise AssertionError("no error")
    try:
        page.click("#nope", timeout=200)
    except Exception as e:
        assert "Timeout" in type(e).__name__ or "Timeout" in str(e), e
    else:
        raise AssertionError("no timeout")


@step("other_thread", needs=["launch"])
def _():
    # A second sync_playwright in another thread: its own event loop and greenlets.
    res = {}

    def work():
        try:
            with sync_playwright() as pw:
                b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                p = b.new_page()
                p.goto(URL)
                p.click("#btn")
                res["n"] = p.evaluate("() => n")
                res["main"] = greenlet.getcurrent().parent is None
                b.close()
        except BaseException as e:
            res["error"] = repr(e)
            traceback.print_exc()

    t = threading.Thread(target=work)
    t.start()
    t.join(120)
    assert not t.is_alive(), "thread hung"
    assert res == {"n": 1, "main": True}, res
    # and the main thread's connection still works afterwards
    assert state["page"].evaluate("() => 1 + 1") == 2


@step("close", needs=["start"])
def _():
    if "browser" in state:
        state["browser"].close()
    state.pop("pw").stop()
    state.clear()
    gc.collect()
    assert greenlet.getcurrent().parent is None


server.shutdown()
faulthandler.cancel_dump_traceback_later()
import json, playwright
print("modules: " + json.dumps({
    "modules": {"greenlet": greenlet.__file__, "playwright": playwright.__file__},
    "greenlet_implementation": getattr(greenlet, "__implementation__", None),
    "greenlet_version": greenlet.__version__}), flush=True)
print("steps: %d failed" % len(failed), flush=True)
sys.exit(1 if failed else 0)
'''


class Playwright(Client):
    name = pip_name = "playwright"
    version = "1.65.2"
    unit_label = "steps"
    default_timeout = 300
    steps = ["start", "launch", "goto_loopback", "evaluate", "click", "fill_and_keyboard",
             "console_event", "expose_function", "route", "dialog", "popup", "data_url",
             "two_contexts", "wait_for_function", "error_propagation", "other_thread",
             "close"]
    quick = []

    def chromium(self):
        return shutil.which("chromium") or shutil.which("chromium-browser")

    def install(self, vpy):
        if not self.chromium():
            # Debian's chromium: Playwright's own browser download cannot be had here.
            run(["apt-get", "update", "-q"])
            run(["apt-get", "install", "-y", "-q", "chromium"],
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if not self.chromium():
            raise SetupError("no chromium on PATH (apt-get install chromium)")
        ddir, _ = download(vpy, [f"{self.pip_name}=={self.version}"])
        whl = find_download(ddir, self.pip_name, self.version, [".whl"], vpy)
        deps = wheel_requirements(vpy, whl, [])
        say(f"playwright requirements (greenlet left out): {' '.join(deps) or '(none)'}")
        run([vpy, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", whl])
        if deps:
            run([vpy, "-m", "pip", "install", "-q"] + deps)

    def script(self):
        path = os.path.join(cache_root(), "playwright_steps.py")
        with open(path, "w") as f:
            f.write(PLAYWRIGHT_SCRIPT)
        return path

    def import_check(self, vpy, env):
        code = ("import playwright, greenlet; from playwright.sync_api import sync_playwright\n"
                "from importlib.metadata import version\n"
                "print('playwright', version('playwright'), playwright.__file__)\n")
        proc = subprocess.run([vpy, "-c", code], capture_output=True, text=True, env=env)
        out = (proc.stdout + proc.stderr).strip()
        chromium = self.chromium()
        if chromium:
            v = subprocess.run([chromium, "--version"], capture_output=True, text=True)
            out += "\n" + v.stdout.strip()
        return proc.returncode == 0 and bool(chromium), out

    def suite_command(self, vpy, tests, jobs, timeout, report=None, mode=None):
        return [vpy, "-u", self.script(), self.chromium() or "chromium", str(timeout)]

    def rerun_command(self, vpy, name, timeout, report=None, mode=None):
        return self.suite_command(vpy, [name], 1, timeout)

    def expected_units(self, vpy, tests, env):
        return list(self.steps)

    def modules_used(self, text, report):
        for line in text.splitlines():
            if line.startswith("modules: "):
                return json.loads(line[len("modules: "):])
        return None

    def parse(self, text, report=None):
        units = {}
        for line in text.splitlines():
            m = re.match(r"^step (\S+): (ok|FAILED)(?: \(([\d.]+)s\))?(.*)$", line)
            if m:
                units[m.group(1)] = {
                    "status": "passed" if m.group(2) == "ok" else "failed",
                    "ran": 1, "skipped": 0, "secs": float(m.group(3) or 0),
                    **({"output": m.group(4).strip()} if m.group(2) != "ok" else {})}
        return units


CLIENTS = {"gevent": Gevent, "eventlet": Eventlet, "sqlalchemy": SQLAlchemy,
           "greenback": Greenback, "playwright": Playwright}


# ------------------------------------------------------------------ running


def suite_env(client, venv, mode):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(client.env_prefixes) or k == "VIRTUAL_ENV":
            env.pop(k)
    env.update(client.modes[mode])
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    return env


def run_suite(client, venv, mode, tests, args, prefix, side, pyver):
    """Run `client`'s suite in `venv` in `mode`; return Results (also saved)."""
    vpy = os.path.join(venv, "bin", "python")
    env = suite_env(client, venv, mode)
    tag = f"{client.name}-{pyver}-{side}-{mode}"
    logdir = os.path.join(cache_root(), "logs")
    os.makedirs(logdir, exist_ok=True)
    log = os.path.join(logdir, tag + ".log")
    report = os.path.join(logdir, tag + ".jsonl")
    if os.path.exists(report):
        os.remove(report)

    ok, out = client.import_check(vpy, env)
    say(f"[{side}/{mode}] import check: {'ok' if ok else 'FAILED'}: {out.splitlines()[-1] if out else ''}")
    if not ok:
        print(out)

    expected = client.expected_units(vpy, tests, env)
    cmd = prefix + client.suite_command(vpy, tests, args.jobs, args.timeout, report=report,
                                        mode=mode)
    say(f"[{side}/{mode}] running "
        f"{len(expected) if expected is not None else 'the'} {client.unit_label}, log: {log}")
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                  timeout=args.suite_timeout, cwd=client.suite_cwd(venv))
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "suite timeout"
    elapsed = time.monotonic() - t0
    with open(log, errors="replace") as f:
        text = f.read()
    units = client.parse(text, report)
    if expected is None:
        expected = client.collected_units(report) or []
    say(f"[{side}/{mode}] finished in {fmt_seconds(elapsed)} (exit {rc}); "
        f"{sum(u['status'] == 'passed' for u in units.values())} of {len(units)} "
        f"{client.unit_label} passed")
    meta = {"client": client.name, "version": client.version, "mode": mode, "side": side,
            "python": pyver, "tests": tests, "elapsed": elapsed, "rc": rc,
            "import_ok": ok, "jobs": args.jobs, "expected": expected,
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in expected:
        if name not in units:
            units[name] = {"status": "missing", "ran": 0, "skipped": 0, "secs": 0}
    problem = check_modules_used(client, text, report, venv, side)
    if problem:
        say(f"[{side}/{mode}] {problem}")
        ok, out = False, (out + "\n" + problem).strip()
        meta["import_ok"] = False
    if not ok:
        units["(import check)"] = {"status": "failed", "ran": 0, "skipped": 0, "secs": 0,
                                   "output": out}
    res = Results(units, meta)
    res.save(os.path.join(cache_root(), "results", tag + ".json"))
    return res


def rerun_failures(client, venv, mode, res, names, args, prefix, side, pyver):
    """Rerun `names` one at a time, alone; a pass marks the unit flaky-but-passed."""
    vpy = os.path.join(venv, "bin", "python")
    env = suite_env(client, venv, mode)
    tag = f"{client.name}-{pyver}-{side}-{mode}-rerun"
    log = os.path.join(cache_root(), "logs", tag + ".log")
    report = os.path.join(cache_root(), "logs", tag + ".jsonl")
    with open(log, "w") as f:
        for name in names:
            if os.path.exists(report):
                os.remove(report)
            cmd = prefix + client.rerun_command(vpy, name, args.timeout, report=report,
                                                mode=mode)
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            start = f.tell()
            try:
                subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                               cwd=client.suite_cwd(venv), timeout=args.timeout * 2 + 60)
            except subprocess.TimeoutExpired:
                f.write(f"\n(rerun of {name} timed out)\n")
            f.flush()
            with open(log, errors="replace") as g:
                g.seek(start)
                r = client.parse(g.read(), report).get(name)
            say(f"[{side}/{mode}] rerun alone: {name}: {r['status'] if r else 'no result'}")
            if r and r["status"] == "passed":
                res.units[name] = dict(r, rerun=True, first=res.units[name]["status"])
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("client", choices=sorted(CLIENTS))
    ap.add_argument("--mode", default=None,
                    help="gevent: cython (as shipped), pure (PURE_PYTHON=1) or both"
                         " (default); eventlet: the hub, epolls (default), poll, selects,"
                         " asyncio; sqlalchemy: aiosqlite (default) or sqlite (--db);"
                         " 'all': every mode of the client")
    ap.add_argument("--python", default="3.11", help="interpreter path or X.Y (default 3.11)")
    ap.add_argument("--baseline", action="store_true",
                    help="also run the suite against upstream greenlet 3.5.6 and count only"
                         " the differences")
    ap.add_argument("--quick", action="store_true", help="a few test files only (smoke check)")
    ap.add_argument("--tests", nargs="+", default=None,
                    help="only these test files (gevent: names; pytest clients: paths or"
                         " node ids relative to the sdist)")
    ap.add_argument("--timeout", type=int, default=None,
                    help="seconds per test file (gevent), per test (pytest clients,"
                         " pytest-timeout), for the whole script (playwright)")
    ap.add_argument("--suite-timeout", type=int, default=3600,
                    help="seconds for a whole suite run (default 3600)")
    ap.add_argument("--jobs", "-j", type=int, default=2,
                    help="gevent: test files run in parallel (default 2); the pytest"
                         " clients run one test at a time")
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
    if args.mode in ("both", "all") or (args.mode is None and client.default_modes is None):
        modes = list(client.modes)
    elif args.mode is None:
        modes = list(client.default_modes)
    else:
        modes = args.mode.split(",")
    bad = [m for m in modes if m not in client.modes]
    if bad:
        ap.error(f"{client.name} has no mode {', '.join(bad)} (modes: {', '.join(client.modes)})")
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
        both_skipped = 0
        for name, kind, ostat, bstat, note in rows:
            if ostat == "skipped" and bstat in ("skipped", None) and kind == "skipped":
                both_skipped += 1      # skipped by the test itself: not listed one by one
                continue
            if kind != "passed" or note:
                print(f"  {kind.upper():8} {name:45} ours: {ostat:20} upstream: {bstat or '-':20}"
                      f" {note}")
                o = ours.units.get(name) or {}
                if kind == "failed" and o.get("output"):
                    lines = [x for x in o["output"].strip().splitlines() if x.strip()]
                    for x in lines[-3:]:
                        print(f"           | {x[:150]}")
        if both_skipped:
            print(f"  ({both_skipped} {client.unit_label} skipped themselves"
                  f"{' with upstream too' if base else ''}; not listed)")
        line = (f"{client.name}-{mode}: {counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['skipped']} skipped")
        if client.unit_label == "test files":
            cases = sum(u["ran"] for u in ours.units.values())
            skipped_cases = sum(u["skipped"] for u in ours.units.values())
            extra = f"(test files; {cases} test cases ran, {skipped_cases} skipped; "
        else:
            extra = f"({client.unit_label}; "
        extra += f"ours took {fmt_seconds(ours.meta['elapsed'])}"
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
