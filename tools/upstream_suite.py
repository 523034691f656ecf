#!/usr/bin/env python3
"""Run upstream greenlet's own test suite against the installed greenlet.

Usage (with the interpreter of a venv that has greenlet-rs installed):

    python tools/upstream_suite.py                  # the whole suite
    python tools/upstream_suite.py -k throw         # tests whose name matches
    python tools/upstream_suite.py test_weakref test_greenlet.TestGreenlet.test_simple

The suite is never part of this repository. It is taken from the greenlet
sdist (downloaded once with pip and cached under ~/.cache/greenlet-rs/sdist),
unpacked into the *installed* package as `greenlet/tests`, and its two helper
extensions are compiled there against the installed `greenlet.h`. So run this
only in a throwaway test venv.

Differences from a plain `python -m unittest discover greenlet.tests`:

  * tests marked "known to leak" (`leakcheck.fails_leakcheck`) run once
    without the refcount leak check, instead of being required to leak;
  * every test is counted once, and the last line is
    `upstream-suite: N passed, N failed, N skipped`;
  * the exit status is non-zero if anything failed (or nothing ran).

`--isolate` runs each test module in a subprocess of its own, so that a
crash (a segfault, an abort) fails only the test it happened in: the test
is counted as failed and the module is resumed after it in a new process.

`--allow-upstream` lets it run against the real greenlet, which is how the
runner itself is validated.
"""

import argparse
import faulthandler
import hashlib
import importlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import unittest

UPSTREAM_VERSION = "3.5.6"
SDIST_NAME = f"greenlet-{UPSTREAM_VERSION}.tar.gz"
SDIST_SHA256 = "8e67c43bdfc88d5fee6db0d3e40175b362fc95fb85f0412d233b9b203c53a575"
# Where the suite lives inside the sdist.
SDIST_TESTS = f"greenlet-{UPSTREAM_VERSION}/src/greenlet/tests/"
# The marker our package sets; upstream's has no such attribute.
OUR_IMPLEMENTATION = "greenlet-rs"
# Modules the suite imports besides greenlet: pip name -> import name.
TEST_DEPS = {"objgraph": "objgraph", "psutil": "psutil", "setuptools": "setuptools"}
# The helper extensions: (module name, source file, compiler env var, default).
HELPERS = [
    ("_test_extension", "_test_extension.c", "CC", "gcc"),
    ("_test_extension_cpp", "_test_extension_cpp.cpp", "CXX", "g++"),
]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def say(msg):
    print(f"upstream-suite: {msg}", flush=True)


def die(msg):
    print(f"upstream-suite: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def cache_dir():
    base = os.environ.get("GREENLET_RS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "greenlet-rs"
    )
    return os.path.join(base, "sdist")


# ---------------------------------------------------------------- checks


def locate_package(allow_upstream):
    """Import greenlet, make sure it is ours (or allowed), return its dir."""
    try:
        import greenlet
    except ImportError as exc:
        die(f"cannot import greenlet with {sys.executable}: {exc}")
    pkg_dir = os.path.dirname(os.path.abspath(greenlet.__file__))
    impl = getattr(greenlet, "__implementation__", None)
    say(f"greenlet {greenlet.__version__} from {pkg_dir}")
    if impl != OUR_IMPLEMENTATION:
        if not allow_upstream:
            die(
                f"{greenlet.__file__} is not greenlet-rs "
                f"(greenlet.__implementation__ is {impl!r}). Install ours into "
                "this venv first (pip install .), or pass --allow-upstream "
                "to validate this runner against upstream greenlet."
            )
        say("--allow-upstream: running against a greenlet that is not ours")
    else:
        say(f"implementation: {impl}")
    source_tree = os.path.realpath(os.path.join(REPO_ROOT, "python"))
    if os.path.commonpath([os.path.realpath(pkg_dir), source_tree]) == source_tree:
        die(
            f"greenlet is imported from the source tree ({pkg_dir}); this "
            "runner writes into the installed package. Use a venv with a "
            "regular `pip install .`."
        )
    if not os.access(pkg_dir, os.W_OK):
        die(f"{pkg_dir} is not writable")
    for header in ("greenlet.h", "greenlet_compiler_compat.hpp"):
        if not os.path.isfile(os.path.join(pkg_dir, header)):
            die(
                f"{header} is missing from {pkg_dir}; the wheel must ship it "
                "next to __init__.py (the helper extensions include it as "
                f"\"../{header}\")"
            )
    return pkg_dir


# ---------------------------------------------------------------- the sdist


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_sdist():
    where = cache_dir()
    path = os.path.join(where, SDIST_NAME)
    if not os.path.isfile(path):
        os.makedirs(where, exist_ok=True)
        say(f"downloading the greenlet {UPSTREAM_VERSION} sdist into {where}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
             "--no-binary", ":all:", "--no-deps",
             "--dest", where, f"greenlet=={UPSTREAM_VERSION}"],
            check=False,
        )
        if not os.path.isfile(path):
            die(f"pip did not produce {path}")
    actual = sha256_of(path)
    if actual != SDIST_SHA256:
        die(f"{path} has sha256 {actual}, expected {SDIST_SHA256}; delete it and retry")
    return path


def install_tests(sdist, pkg_dir):
    """Unpack the sdist's tests package into <pkg_dir>/tests, replacing it."""
    dest = os.path.join(pkg_dir, "tests")
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    count = 0
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.name.startswith(SDIST_TESTS) or not member.isfile():
                continue
            rel = member.name[len(SDIST_TESTS):]
            if not rel or rel.startswith("/") or ".." in rel.split("/"):
                continue
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    if not os.path.isfile(os.path.join(dest, "__init__.py")):
        die(f"{sdist} has no {SDIST_TESTS}__init__.py")
    say(f"unpacked {count} files of the upstream suite into {dest}")
    return dest


def ensure_test_deps():
    missing = [pip for pip, mod in TEST_DEPS.items()
               if importlib.util.find_spec(mod) is None]
    if not missing:
        return
    say(f"installing test dependencies: {' '.join(missing)}")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
         "-q", *missing],
        check=True,
    )
    importlib.invalidate_caches()


# ---------------------------------------------------------------- helpers


def build_helpers(tests_dir):
    """Compile the C and C++ helper extensions next to the tests."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    paths = sysconfig.get_paths()
    includes = []
    for key in ("include", "platinclude"):
        if paths.get(key) and paths[key] not in includes:
            includes.append(paths[key])
    flags = ["-shared", "-fPIC", "-O2", "-g", "-fwrapv", "-DNDEBUG", "-Wall"]
    flags += [f"-I{d}" for d in includes]
    # Not linked against libpython, like any extension module on Linux: the
    # interpreter that loads it provides the Python symbols.
    for module, source, env_var, default in HELPERS:
        compiler = shlex.split(os.environ.get(env_var) or default)
        src = os.path.join(tests_dir, source)
        out = os.path.join(tests_dir, module + suffix)
        for stale in os.listdir(tests_dir):
            if stale.startswith(module + ".") and stale.endswith((".so", ".pyd")):
                os.remove(os.path.join(tests_dir, stale))
        cmd = [*compiler, *flags, src, "-o", out]
        say("compiling " + " ".join(shlex.quote(c) for c in cmd))
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            die(f"compiling {source} failed (exit {proc.returncode})")


# ---------------------------------------------------------------- running


def patch_leakcheck():
    """Make the suite's 'known to leak' marker mean 'run once, no leak check'.

    `fails_leakcheck` normally runs a test repeatedly and then *requires*
    that it leaked; whether a given test leaks is an accident of upstream's
    implementation. We only want the test's own assertions. This has to
    happen before any test module is imported, since they bind the name at
    import time.
    """
    try:
        leakcheck = importlib.import_module("greenlet.tests.leakcheck")
    except Exception:  # the test modules will fail to import the same way
        import traceback
        traceback.print_exc()
        say("could not import greenlet.tests.leakcheck; leakcheck left unpatched")
        return

    def run_once_without_leakcheck(func):
        func.fails_leakcheck = True
        func.ignore_leakcheck = True
        return func

    leakcheck.fails_leakcheck = run_once_without_leakcheck


class CountingResult(unittest.TextTestResult):
    """A verbose result that also remembers one outcome per test."""

    # Later, worse outcomes win: an error in tearDown after a pass is a failure.
    _RANK = {"passed": 0, "skipped": 1, "failed": 2}

    #: A file object; if set, "start <id>" and "<outcome> <id>" lines are
    #: written and flushed as tests go, so a parent process can tell what
    #: ran before a crash.
    journal = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def _journal(self, word, test_id):
        if self.journal is not None:
            self.journal.write(f"{word} {test_id}\n")
            self.journal.flush()

    def startTest(self, test):
        self._journal("start", test.id())
        super().startTest(test)

    def _record(self, test, outcome):
        key = test.id()
        old = self.outcomes.get(key)
        if old is None or self._RANK[outcome] >= self._RANK[old]:
            self.outcomes[key] = outcome
        self._journal(outcome, key)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "passed")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed")

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "failed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failed")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            skipped = issubclass(err[0], unittest.SkipTest)
            self._record(test, "skipped" if skipped else "failed")

    def counts(self):
        values = list(self.outcomes.values())
        return tuple(values.count(k) for k in ("passed", "failed", "skipped"))


def qualify(name):
    """Accept `test_x`, `test_x.Class.test_y` or a full dotted name."""
    if name.startswith("greenlet."):
        return name
    return "greenlet.tests." + name


def _without(suite, excluded):
    """A copy of suite minus the tests whose id is in excluded."""
    kept = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            kept.addTest(_without(item, excluded))
        elif item.id() not in excluded:
            kept.addTest(item)
    return kept


def load_tests(tests_dir, names, patterns, excluded=()):
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    if names:
        suite = loader.loadTestsFromNames([qualify(n) for n in names])
    else:
        site_dir = os.path.dirname(os.path.dirname(tests_dir))
        suite = loader.discover(start_dir=tests_dir, pattern="test*.py",
                                top_level_dir=site_dir)
    return _without(suite, set(excluded)) if excluded else suite


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Run upstream greenlet's test suite against the installed greenlet.")
    parser.add_argument("tests", nargs="*",
                        help="test modules/classes/methods, e.g. test_throw or "
                             "test_greenlet.TestGreenlet.test_simple")
    parser.add_argument("-k", dest="patterns", action="append", default=[],
                        help="only run tests whose id matches (substring or "
                             "fnmatch pattern); may be repeated")
    parser.add_argument("--allow-upstream", action="store_true",
                        help="run even if the installed greenlet is not greenlet-rs")
    parser.add_argument("--failfast", action="store_true",
                        help="stop at the first failure")
    parser.add_argument("--isolate", action="store_true",
                        help="run each test module (or each named test) in "
                             "its own subprocess")
    parser.add_argument("--unit-timeout", type=float, default=900,
                        help="with --isolate: seconds before a child is killed "
                             "(its running test then counts as failed)")
    parser.add_argument("--no-prepare", action="store_true",
                        help="reuse the tests and helper extensions an earlier "
                             "run put into the installed package")
    # Used by --isolate for its children.
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    parser.add_argument("--exclude", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_in_process(args, tests_dir):
    """Run the selected tests here; return (passed, failed, skipped)."""
    patch_leakcheck()
    excluded = ()
    if args.exclude:
        with open(args.exclude, encoding="utf-8") as f:
            excluded = [line.strip() for line in f if line.strip()]
    suite = load_tests(tests_dir, args.tests, args.patterns, excluded)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=CountingResult,
                                     failfast=args.failfast)
    journal = open(args.journal, "a", encoding="utf-8") if args.journal else None
    CountingResult.journal = journal
    try:
        result = runner.run(suite)
    finally:
        CountingResult.journal = None
        if journal is not None:
            journal.close()
    return result.counts()


def isolated_units(args, tests_dir):
    """What --isolate runs one subprocess for: named tests, or modules."""
    if args.tests:
        return [qualify(name) for name in args.tests]
    return sorted(
        "greenlet.tests." + name[:-3]
        for name in os.listdir(tests_dir)
        if name.startswith("test") and name.endswith(".py")
    )


def _run_child(args, unit, excluded):
    """Run one unit in a child; return (returncode, started ids, outcomes)."""
    with tempfile.TemporaryDirectory(prefix="upstream-suite-") as tmp:
        journal = os.path.join(tmp, "journal")
        exclude = os.path.join(tmp, "exclude")
        with open(exclude, "w", encoding="utf-8") as f:
            f.writelines(test_id + "\n" for test_id in excluded)
        cmd = [sys.executable, os.path.abspath(__file__), "--no-prepare",
               "--journal", journal, "--exclude", exclude, unit]
        if args.allow_upstream:
            cmd.append("--allow-upstream")
        for pattern in args.patterns:
            cmd += ["-k", pattern]
        try:
            returncode = subprocess.run(cmd, check=False,
                                        timeout=args.unit_timeout).returncode
        except subprocess.TimeoutExpired:
            say(f"--isolate: {unit} took longer than {args.unit_timeout}s; killed")
            returncode = "timeout"
        started, outcomes = [], []
        if os.path.exists(journal):
            with open(journal, encoding="utf-8") as f:
                for line in f:
                    word, _, test_id = line.rstrip("\n").partition(" ")
                    if word == "start":
                        started.append(test_id)
                    else:
                        outcomes.append((word, test_id))
    return returncode, started, outcomes


def run_isolated(args, tests_dir):
    """Run each unit in a child process; return (passed, failed, skipped).

    When a child dies (signal, abort, or exit without a result), the test
    it was running is counted as failed and the unit is started again,
    skipping every test that already has an outcome.
    """
    outcomes = {}
    rank = CountingResult._RANK

    def record(word, test_id):
        old = outcomes.get(test_id)
        if old is None or rank[word] >= rank[old]:
            outcomes[test_id] = word

    for unit in isolated_units(args, tests_dir):
        excluded = set()
        while True:
            say(f"--isolate: {unit}" + (f" (resuming, {len(excluded)} done)" if excluded else ""))
            returncode, started, results = _run_child(args, unit, excluded)
            for word, test_id in results:
                if word in rank:
                    record(word, test_id)
                    excluded.add(test_id)
            if returncode in (0, 1):
                break
            culprit = next((t for t in reversed(started) if t not in excluded), None)
            if culprit is None:
                # It died outside any test (importing, in setUpClass, at exit).
                record("failed", f"{unit} (process exit {returncode})")
                say(f"--isolate: {unit} exited with {returncode} outside a test")
                break
            record("failed", culprit)
            excluded.add(culprit)
            say(f"--isolate: {unit} exited with {returncode} in {culprit}; "
                "counted it as failed, resuming after it")
    values = list(outcomes.values())
    return tuple(values.count(k) for k in ("passed", "failed", "skipped"))


def main(argv=None):
    args = parse_args(argv)
    # Child processes (the fail_*.py scripts, shutdown scenarios) inherit it;
    # this process turns it on directly.
    os.environ["PYTHONFAULTHANDLER"] = "1"
    faulthandler.enable()

    pkg_dir = locate_package(args.allow_upstream)
    tests_dir = os.path.join(pkg_dir, "tests")
    if not args.no_prepare:
        ensure_test_deps()
        sdist = ensure_sdist()
        install_tests(sdist, pkg_dir)
        build_helpers(tests_dir)
        importlib.invalidate_caches()
    elif not os.path.isfile(os.path.join(tests_dir, "__init__.py")):
        die(f"--no-prepare, but {tests_dir} holds no unpacked suite")

    # Run from an empty directory: test_version looks for a setup.py in the
    # working directory first.
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="upstream-suite-cwd-") as cwd:
        os.chdir(cwd)
        try:
            if args.isolate:
                passed, failed, skipped = run_isolated(args, tests_dir)
            else:
                passed, failed, skipped = run_in_process(args, tests_dir)
        finally:
            os.chdir(here)
    # Only the top-level process prints the line tools/test.sh looks for.
    label = f"upstream-suite[{' '.join(args.tests)}]" if args.journal else "upstream-suite"
    print(f"{label}: {passed} passed, {failed} failed, {skipped} skipped",
          flush=True)
    if failed or passed + skipped == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
