"""GREENLET_STACKS: greenlets on stacks of their own (greenlet-rs only).

Each case runs in a fresh interpreter, since the variable is read at import.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from greenlet import _greenlet

pytestmark = pytest.mark.skipif(
    not hasattr(_greenlet, "_dedicated_stack_size"), reason="greenlet-rs only"
)

# 3.14.0 lacks the API that locates the C-stack limits (no such interpreter here to test
# the refusal on); every other version of the matrix has dedicated stacks.
SUPPORTED = sys.version_info[:3] != (3, 14, 0)


def run(code, stacks, *args):
    env = dict(os.environ)
    env.pop("GREENLET_STACKS", None)
    if stacks is not None:
        env["GREENLET_STACKS"] = stacks
    return subprocess.run(
        [sys.executable, *args, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# A greenlet suspended under nested C calls, switched into from deep in main's stack, and a
# greenlet started from it.
DEEP_SWITCH = """
    import greenlet
    from greenlet import _greenlet
    main = greenlet.getcurrent()
    def deep(n, target):
        # C frames between Python frames, so every version uses C stack per level.
        if n == 0:
            target.switch()
            return 0
        return sorted([1, 2], key=lambda x: deep(n - 1, target) if x == 1 else 0)[0]
    def body():
        inner = greenlet.greenlet(lambda: _greenlet._stack_bounds(greenlet.getcurrent()))
        print("inner", inner.switch())
        for _ in range(3):
            deep(20, main)
    g = greenlet.greenlet(body)
    g.switch()
    deep(40, g)
    deep(40, g)
    print("size", _greenlet._dedicated_stack_size())
    print("main", _greenlet._stack_bounds(main))
    print("g", _greenlet._stack_bounds(g))
    print("held", g._stack_saved > 0)
"""


def parse(out):
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_default_is_sliced():
    r = run(DEEP_SWITCH, None)
    assert r.returncode == 0, r.stderr
    assert parse(r.stdout) == {
        "inner": "None", "size": "0", "main": "None", "g": "None", "held": "True"
    }


@pytest.mark.skipif(not SUPPORTED, reason="no dedicated stacks on 3.14.0")
@pytest.mark.parametrize(
    "value, size", [("dedicated", 1 << 20), ("dedicated:256k", 256 << 10), ("Dedicated:2m", 2 << 20)]
)
def test_dedicated_greenlets_run_on_stacks_of_their_own(value, size):
    r = run(DEEP_SWITCH, value)
    assert r.returncode == 0, r.stderr
    out = parse(r.stdout)
    assert out["size"] == str(size)
    assert out["main"] == "None"
    assert out["held"] == "True"
    g_lo, g_hi = eval(out["g"])
    inner_lo, inner_hi = eval(out["inner"])
    assert g_hi - g_lo == size
    assert inner_hi - inner_lo == size
    # A greenlet started from a dedicated one gets its own stack too.
    assert inner_hi <= g_lo or inner_lo >= g_hi


@pytest.mark.parametrize("value", ["sliced", "dedicated:1k", "dedicated:many", "everything"])
def test_other_values_warn_or_stay_sliced(value):
    r = run("from greenlet import _greenlet; print(_greenlet._dedicated_stack_size())", value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
    if value != "sliced":
        assert "RuntimeWarning" in r.stderr and "GREENLET_STACKS" in r.stderr


RECURSION = """
    import sys, greenlet
    def py_recursion(n=0):
        return py_recursion(n + 1)
    def c_recursion():
        x = []
        for _ in range(200_000):
            x = [x]
        return repr(x)
    def body(f):
        try:
            f()
        except RecursionError:
            return "RecursionError"
        return "no error"
    def modest():
        # Well within any stack: must not be mistaken for an overflow (as it would be
        # with the thread stack's limits on a stack mapped below it).
        def py(n):
            return n if n == 0 else py(n - 1) + 1
        x = []
        for _ in range(300):
            x = [x]
        return py(400) == 400 and repr(x).count("[") == 301
    assert greenlet.greenlet(modest).switch() is True
    results = [greenlet.greenlet(body).switch(f) for f in (py_recursion, c_recursion)]
    # And in a greenlet started from a dedicated greenlet.
    results.append(greenlet.greenlet(lambda: greenlet.greenlet(body).switch(py_recursion)).switch())
    print(*results)
"""


@pytest.mark.skipif(not SUPPORTED, reason="no dedicated stacks on 3.14.0")
def test_deep_recursion_on_a_dedicated_stack_raises_recursion_error():
    r = run(RECURSION, "dedicated", "-X", "faulthandler")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["RecursionError"] * 3


# A greenlet on its own stack, suspended under C frames, whose thread then exits:
# its frames must stay walkable (they were left in place at the switch away, on a
# stack that goes away only when the greenlet is freed), and freeing it must not
# walk into the unmapped stack.
THREAD_DEATH = """
    import gc, threading, greenlet
    from greenlet import _greenlet
    holder = {}
    def deep(n, target):
        if n == 0:
            target.switch()
            return 0
        return sorted([1, 2], key=lambda x: deep(n - 1, target) if x == 1 else 0)[0]
    def in_thread():
        main = greenlet.getcurrent()
        g = greenlet.greenlet(lambda: deep(30, main))
        g.switch()
        holder["g"] = g
        holder["bounds"] = _greenlet._stack_bounds(g)
    t = threading.Thread(target=in_thread)
    t.start(); t.join()
    g = holder["g"]
    names = []
    f = g.gr_frame
    while f is not None:
        names.append(f.f_code.co_name)
        f = f.f_back
    gc.collect()
    print(holder["bounds"] is not None, names.count("deep"), names.count("<lambda>"))
    del g, holder["g"], f
    gc.collect()
    print("freed")
"""


@pytest.mark.skipif(not SUPPORTED, reason="no dedicated stacks on 3.14.0")
def test_frames_of_a_dedicated_greenlet_of_a_dead_thread():
    r = run(THREAD_DEATH, "dedicated", "-X", "faulthandler")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "31", "31", "freed"]
