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

SUPPORTED = sys.version_info < (3, 14)


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


# Switching into a greenlet from deep in main's stack: a sliced target started near the top
# makes main's slice below it be saved; a dedicated one saves nothing.
DEEP_SWITCH = """
    import greenlet
    from greenlet import _greenlet
    main = greenlet.getcurrent()
    seen = []
    def body():
        for _ in range(3):
            seen.append(main._stack_saved)
            main.switch()
    g = greenlet.greenlet(body)
    g.switch()
    def deep(n):
        # C frames between Python frames, so every version uses C stack per level.
        if n == 0:
            g.switch()
            return 0
        return sorted([1, 2], key=lambda x: deep(n - 1) if x == 1 else 0)[0]
    deep(40)
    deep(40)
    print(_greenlet._dedicated_stack_size(), min(seen[1:]), g._stack_saved > 0)
"""


def test_default_is_sliced():
    r = run(DEEP_SWITCH, None)
    assert r.returncode == 0, r.stderr
    size, main_saved, _ = r.stdout.split()
    assert size == "0"
    assert int(main_saved) > 10_000


@pytest.mark.skipif(not SUPPORTED, reason="dedicated stacks need 3.10-3.13 for now")
@pytest.mark.parametrize(
    "value, size", [("dedicated", 1 << 20), ("dedicated:256k", 256 << 10), ("Dedicated:2m", 2 << 20)]
)
def test_dedicated_copies_nothing_of_the_switching_greenlet(value, size):
    r = run(DEEP_SWITCH, value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(size), "0", "True"]


@pytest.mark.parametrize("value", ["sliced", "dedicated:1k", "dedicated:many", "everything"])
def test_other_values_warn_or_stay_sliced(value):
    r = run("from greenlet import _greenlet; print(_greenlet._dedicated_stack_size())", value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
    if value != "sliced":
        assert "RuntimeWarning" in r.stderr and "GREENLET_STACKS" in r.stderr


@pytest.mark.skipif(SUPPORTED, reason="3.14+ only")
def test_dedicated_is_refused_with_a_warning_on_3_14():
    r = run("from greenlet import _greenlet; print(_greenlet._dedicated_stack_size())", "dedicated")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
    assert "not supported on Python 3.14+" in r.stderr


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
    results = [greenlet.greenlet(body).switch(f) for f in (py_recursion, c_recursion)]
    # And in a greenlet started from a dedicated greenlet.
    results.append(greenlet.greenlet(lambda: greenlet.greenlet(body).switch(py_recursion)).switch())
    print(*results)
"""


@pytest.mark.skipif(not SUPPORTED, reason="dedicated stacks need 3.10-3.13 for now")
def test_deep_recursion_on_a_dedicated_stack_raises_recursion_error():
    r = run(RECURSION, "dedicated", "-X", "faulthandler")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["RecursionError"] * 3
