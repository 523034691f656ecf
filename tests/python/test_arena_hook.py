"""greenlet-rs only: the object arena allocator hook and GREENLET_RS_NO_ARENA_HOOK.

On CPython 3.11+ importing greenlet-rs wraps the process-wide object arena
allocator (``PyObject_SetArenaAllocator``) to keep CPython's 16 KiB data-stack
chunks for reuse (``crates/greenlet-py/src/datastack.rs``, docs/caveats.md).
``GREENLET_RS_NO_ARENA_HOOK=1`` in the environment at import leaves CPython's
allocator alone. Each test runs fresh interpreters, since the hook is
installed once per process: with the variable set, unset, and without
importing greenlet at all, and compares which allocator is in effect
(``PyObject_GetArenaAllocator`` through ctypes; the functions are located with
``dladdr``, as a file and an offset in it, which do not change between
processes the way addresses do).
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import greenlet

ENV = "GREENLET_RS_NO_ARENA_HOOK"

pytestmark = [
    pytest.mark.skipif(getattr(greenlet, "__implementation__", None) != "greenlet-rs",
                       reason="greenlet-rs's own hook"),
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="finds the allocator's functions with glibc's dladdr"),
]
needs_hook = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="no data stack before 3.11, so greenlet-rs installs no arena hook there")

# The child's part. It prints one JSON line; the workload asserts as it goes.
PROBE = r'''
import ctypes, ctypes.util, json, os, sys, threading

class ArenaAllocator(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("alloc", ctypes.c_void_p), ("free", ctypes.c_void_p)]

class DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

try:
    dladdr = ctypes.CDLL(None).dladdr
except AttributeError:  # glibc before 2.34 has it in libdl
    dladdr = ctypes.CDLL(ctypes.util.find_library("dl")).dladdr
dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
dladdr.restype = ctypes.c_int
get_arena = ctypes.pythonapi.PyObject_GetArenaAllocator
get_arena.argtypes = [ctypes.POINTER(ArenaAllocator)]
get_arena.restype = None

def where(addr):
    info = DlInfo()
    if not addr or not dladdr(addr, ctypes.byref(info)) or not info.dli_fname:
        return None
    name = info.dli_fname.decode()
    # The main program may be named as it was started; make it comparable.
    return [os.path.realpath(name if os.sep in name else sys.executable),
            addr - (info.dli_fbase or 0)]

def arena():
    a = ArenaAllocator()
    get_arena(ctypes.byref(a))
    return {"ctx": a.ctx, "alloc": a.alloc, "free": a.free,
            "alloc_at": where(a.alloc), "free_at": where(a.free)}

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

out = {"before": arena()}
if IMPORT:
    import greenlet
    from greenlet import greenlet as RawGreenlet
    out["after_import"] = arena()
    out["greenlet_so"] = os.path.realpath(greenlet._greenlet.__file__)
    # (3.11+ only: before 3.11 there is no data stack and so no cache.)
    cached = getattr(greenlet._greenlet, "_cached_data_stack_chunks", lambda: 0)

    def descend(depth, fn):
        return fn() if not depth else descend(depth - 1, fn)

    def park(depth):
        # Suspends `depth` frames deep: far past greenlet-rs's 1 KiB root chunk, so
        # CPython chains 16 KiB chunks from the arena allocator after it.
        g = RawGreenlet(lambda: descend(depth, lambda: greenlet.getcurrent().parent.switch(depth) * 2))
        assert g.switch() == depth
        return g

    # Switching back and forth.
    def pong(x):
        while True:
            x = greenlet.getcurrent().parent.switch(x + 1)
    g = RawGreenlet(pong)
    for i in range(0, 2000, 2):
        assert g.switch(i) == i + 1

    # Deep recursion in greenlets: many parked at once, resumed in another order.
    parked = [park(700) for _ in range(30)]
    for g in reversed(parked):
        assert g.switch(3) == 6 and g.dead
    def overflow():
        def recurse(n):
            return recurse(n + 1)
        try:
            recurse(0)
        except RecursionError:
            return "recursion error"
    for _ in range(5):
        assert RawGreenlet(overflow).switch() == "recursion error"
    out["cached_after_deep"] = cached()

    # Many greenlets created and freed: finished, dropped while suspended deep (the
    # greenlet's own chunk chain is freed then), and never started.
    def churn(n):
        for i in range(n):
            g = park(60)
            if i % 2:
                assert g.switch(1) == 2 and g.dead
            del g
            RawGreenlet(lambda: None)
    churn(3000)
    start = rss()
    for _ in range(6):
        churn(3000)
    out["rss_growth"] = rss() - start

    # The same in other threads at once.
    errors = []
    def worker():
        try:
            churn(500)
        except BaseException as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    out["cached_at_end"] = cached()
out["at_end"] = arena()
print(json.dumps(out))
'''


def _import_root():
    # The directory holding the greenlet package under test, for the children.
    return os.path.dirname(os.path.dirname(os.path.abspath(greenlet.__file__)))


def probe(hook_env=None, do_import=True):
    """Run PROBE in a fresh interpreter; hook_env is the variable's value (None: unset)."""
    env = dict(os.environ)
    env.pop(ENV, None)
    if hook_env is not None:
        env[ENV] = hook_env
    env["PYTHONPATH"] = os.pathsep.join(
        [_import_root()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONFAULTHANDLER"] = "1"
    source = "IMPORT = %r\n" % do_import + textwrap.dedent(PROBE)
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plain():
    """The allocator of an interpreter that never imported greenlet: CPython's own."""
    return probe(do_import=False)


def test_plain_interpreter_reports_cpythons_allocator(plain):
    # The probe itself works: the functions are found, in the interpreter's files.
    assert plain["before"] == plain["at_end"]
    for name in ("alloc_at", "free_at"):
        assert plain["before"][name] is not None, plain
    assert plain["before"]["alloc"] != plain["before"]["free"]


@needs_hook
@pytest.mark.parametrize("value", ["1", "yes"])
def test_hook_off_leaves_cpythons_allocator(plain, value):
    r = probe(value)
    cpython = plain["before"]
    for key in ("before", "after_import", "at_end"):
        # The same functions as an interpreter that never saw greenlet (addresses
        # differ between processes; file and offset do not), the same context.
        assert r[key]["alloc_at"] == cpython["alloc_at"], (key, r, cpython)
        assert r[key]["free_at"] == cpython["free_at"], (key, r, cpython)
        assert r[key]["ctx"] == cpython["ctx"], (key, r, cpython)
        assert r[key]["alloc_at"][0] != r["greenlet_so"]
    # In this very process nothing changed at import or after the workload.
    assert r["after_import"] == r["before"] == r["at_end"]
    # Nothing went through a cache: it was never installed.
    assert r["cached_after_deep"] == 0
    assert r["cached_at_end"] == 0
    # 21,000 deep greenlets (half dropped while suspended) did not keep their chunks.
    assert r["rss_growth"] < 32 * 1024 * 1024, r


@needs_hook
@pytest.mark.parametrize("value", [None, "", "0"])
def test_hook_on_wraps_the_allocator(plain, value):
    r = probe(value)
    cpython = plain["before"]
    assert r["before"]["alloc_at"] == cpython["alloc_at"]
    hooked = r["after_import"]
    assert hooked["alloc_at"][0] == r["greenlet_so"], r
    assert hooked["free_at"][0] == r["greenlet_so"], r
    assert hooked["alloc"] != r["before"]["alloc"]
    assert r["at_end"] == hooked
    # Thirty parked deep greenlets gave their 16 KiB chunks back through the hook.
    assert r["cached_after_deep"] > 0, r
    assert 0 < r["cached_at_end"] <= 64, r
    assert r["rss_growth"] < 32 * 1024 * 1024, r


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.10 only")
@pytest.mark.parametrize("value", [None, "1"])
def test_no_hook_before_3_11(plain, value):
    r = probe(value)
    assert r["after_import"] == r["before"] == r["at_end"]
    assert r["after_import"]["alloc_at"] == plain["before"]["alloc_at"]
    assert r["cached_at_end"] == 0
