"""The stack policy API: get/set_stack_policy, stack= / gr_stack, __greenlet_stack__, and
GREENLET_STACKS=auto (greenlet-rs only).

Cases that depend on the environment variable, or on the process-wide policy, run in a fresh
interpreter.
"""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

import greenlet
from greenlet import _greenlet

pytestmark = pytest.mark.skipif(
    not hasattr(_greenlet, "set_stack_policy"), reason="greenlet-rs only"
)

# 3.14.0 lacks the API through which the C-stack limits are located; every other version
# of the matrix has dedicated stacks. (No 3.14.0 here to test the refusal on.)
SUPPORTED = sys.version_info[:3] != (3, 14, 0)
needs_dedicated = pytest.mark.skipif(not SUPPORTED, reason="no dedicated stacks on 3.14.0")
MIB = 1 << 20


def run(code, stacks=None):
    env = dict(os.environ)
    env.pop("GREENLET_STACKS", None)
    if stacks is not None:
        env["GREENLET_STACKS"] = stacks
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(autouse=True)
def default_policies():
    """Each test starts from the default policies (sliced, no thread policy), whatever
    GREENLET_STACKS this process was started with (make test runs the suite again under
    GREENLET_STACKS=dedicated), and leaves them as it found them."""
    process = greenlet.get_stack_policy()
    thread = greenlet.get_stack_policy(thread=True)
    greenlet.set_stack_policy("sliced")
    greenlet.set_stack_policy(None, thread=True)
    yield
    greenlet.set_stack_policy(process)
    greenlet.set_stack_policy(thread, thread=True)


def on_own_stack():
    return greenlet.getcurrent().gr_stack_dedicated


# --- the module functions ------------------------------------------------------------------

def test_exported():
    assert greenlet.get_stack_policy is _greenlet.get_stack_policy
    assert greenlet.set_stack_policy is _greenlet.set_stack_policy


def test_default_process_policy_is_sliced_and_no_thread_policy():
    r = run("""
        import greenlet
        print(greenlet.get_stack_policy(), greenlet.get_stack_policy(thread=True))
    """)
    assert r.stdout.split() == ["sliced", "None"]


@needs_dedicated
def test_set_process_policy_returns_previous_and_round_trips():
    r = run("""
        import greenlet
        print(greenlet.set_stack_policy("dedicated", 256 * 1024))
        print(greenlet.get_stack_policy())
        print(greenlet.set_stack_policy("auto:2m"))
        prev = greenlet.set_stack_policy("sliced")
        print(prev)
        print(greenlet.set_stack_policy(prev))
        print(greenlet.get_stack_policy())
    """)
    assert r.stdout.split() == [
        "sliced", "dedicated:262144", "dedicated:262144", "auto:2097152", "sliced",
        "auto:2097152",
    ]


@needs_dedicated
@pytest.mark.parametrize("stacks, expected", [
    ("auto", "auto:1048576"), ("auto:512k", "auto:524288"), ("dedicated:2m", "dedicated:2097152"),
])
def test_env_var_seeds_the_process_policy(stacks, expected):
    r = run("import greenlet; print(greenlet.get_stack_policy())", stacks)
    assert r.stdout.strip() == expected
    assert "Warning" not in r.stderr


@pytest.mark.parametrize("args, kwargs, exc", [
    ((), {}, TypeError),
    ((1,), {}, TypeError),
    ((b"dedicated",), {}, TypeError),
    (("bogus",), {}, ValueError),
    (("sliced", 1 << 20), {}, ValueError),
    (("dedicated:1m", 1 << 20), {}, ValueError),
    (("dedicated", 4096), {}, ValueError),
    (("dedicated", 1 << 40), {}, ValueError),
    (("dedicated", -1), {}, ValueError),
    (("dedicated", "1m"), {}, TypeError),
    (("dedicated:lots",), {}, ValueError),
    ((None,), {}, TypeError),
    (("sliced",), {"bogus": 1}, TypeError),
])
def test_bad_arguments_raise(args, kwargs, exc):
    before = (greenlet.get_stack_policy(), greenlet.get_stack_policy(thread=True))
    with pytest.raises(exc):
        greenlet.set_stack_policy(*args, **kwargs)
    assert (greenlet.get_stack_policy(), greenlet.get_stack_policy(thread=True)) == before


@needs_dedicated
def test_thread_policy_overrides_process_policy_and_none_falls_back():
    out = {}

    def worker():
        assert greenlet.set_stack_policy("dedicated", thread=True) is None
        out["thread"] = greenlet.get_stack_policy(thread=True)
        out["in thread"] = greenlet.greenlet(on_own_stack).switch()
        assert greenlet.set_stack_policy(None, thread=True) == "dedicated:1048576"
        out["after reset"] = greenlet.greenlet(on_own_stack).switch()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert out == {"thread": "dedicated:1048576", "in thread": True, "after reset": False}
    # The main thread never had a policy of its own.
    assert greenlet.get_stack_policy(thread=True) is None
    assert greenlet.greenlet(on_own_stack).switch() is False


@needs_dedicated
def test_thread_sliced_overrides_a_dedicated_process_policy():
    r = run("""
        import greenlet
        here = lambda: greenlet.getcurrent().gr_stack_dedicated
        print(greenlet.greenlet(here).switch())
        greenlet.set_stack_policy("sliced", thread=True)
        print(greenlet.greenlet(here).switch())
    """, "dedicated")
    assert r.stdout.split() == ["True", "False"]


@pytest.mark.skipif(SUPPORTED, reason="only where dedicated stacks are unavailable (3.14.0)")
def test_unsupported_interpreter_warns_and_keeps_sliced():
    with pytest.warns(RuntimeWarning, match="not available"):
        assert greenlet.set_stack_policy("dedicated", thread=True) is None
    assert greenlet.get_stack_policy(thread=True) is None
    g = greenlet.greenlet(on_own_stack, stack="dedicated")
    assert g.switch() is False


# --- the per-greenlet choice ---------------------------------------------------------------

def test_gr_stack_defaults_to_none_and_reads_back_canonically():
    g = greenlet.greenlet(lambda: None)
    assert g.gr_stack is None
    assert g.gr_stack_dedicated is None
    g.gr_stack = "Dedicated:256k"
    assert g.gr_stack == "dedicated:262144"
    g.gr_stack = 128 * 1024
    assert g.gr_stack == "dedicated:131072"
    g.gr_stack = "auto"
    assert g.gr_stack == "auto:1048576"
    g.gr_stack = None
    assert g.gr_stack is None
    g.gr_stack = "sliced"
    del g.gr_stack
    assert g.gr_stack is None


@pytest.mark.parametrize("value, exc", [
    ("bogus", ValueError), (1.5, TypeError), (100, ValueError), (True, ValueError),
    (b"sliced", TypeError), ("sliced:1m", ValueError),
])
def test_bad_stack_values_raise(value, exc):
    with pytest.raises(exc):
        greenlet.greenlet(lambda: None, stack=value)
    g = greenlet.greenlet(lambda: None)
    with pytest.raises(exc):
        g.gr_stack = value
    assert g.gr_stack is None


def test_stack_keyword_leaves_the_constructor_otherwise_unchanged():
    parent = greenlet.getcurrent()
    g = greenlet.greenlet(lambda: 1, parent, stack="sliced")
    assert g.parent is parent and g.gr_stack == "sliced"
    g = greenlet.greenlet(run=lambda: 2, parent=None, stack=None)
    assert g.gr_stack is None and g.switch() == 2
    with pytest.raises(TypeError, match=r"green\(\) takes at most 2 arguments \(3 given\)"):
        greenlet.greenlet(None, None, "sliced")
    with pytest.raises(TypeError):
        greenlet.greenlet(None, stack="sliced", bogus=1)

    class Sub(greenlet.greenlet):
        def __init__(self, run, hub):
            greenlet.greenlet.__init__(self, None, hub)
            self.my_run = run

        def run(self):
            return self.my_run()

    s = Sub(lambda: 3, greenlet.getcurrent())
    assert s.gr_stack is None and s.switch() == 3


def test_gr_stack_cannot_change_after_start():
    g = greenlet.greenlet(lambda: greenlet.getcurrent().parent.switch())
    g.switch()
    with pytest.raises(ValueError, match="after the greenlet has started"):
        g.gr_stack = "dedicated"
    with pytest.raises(ValueError):
        del g.gr_stack
    g.switch()
    assert g.dead
    with pytest.raises(ValueError):
        g.gr_stack = "sliced"


@needs_dedicated
def test_instance_choice_is_used_and_reported():
    g = greenlet.greenlet(lambda: (on_own_stack(), _greenlet._stack_bounds(greenlet.getcurrent())),
                          stack="dedicated:256k")
    dedicated, (lo, hi) = g.switch()
    assert dedicated is True and hi - lo == 256 * 1024
    assert g.gr_stack_dedicated is None  # dead
    assert greenlet.greenlet(on_own_stack, stack="sliced").switch() is False
    assert greenlet.greenlet(on_own_stack).switch() is False


@needs_dedicated
def test_gr_stack_dedicated_while_suspended():
    main = greenlet.getcurrent()
    g = greenlet.greenlet(lambda: main.switch(), stack="dedicated")
    s = greenlet.greenlet(lambda: main.switch(), stack="sliced")
    g.switch()
    s.switch()
    assert g.gr_stack_dedicated is True
    assert s.gr_stack_dedicated is False
    g.switch()
    s.switch()
    assert g.dead and s.dead


@needs_dedicated
def test_fallback_when_no_stack_can_be_had_runs_sliced():
    # A stack far larger than the address space left under RLIMIT_AS: mmap fails.
    r = run("""
        import resource, greenlet
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        vm = [l for l in open("/proc/self/status") if l.startswith("VmSize:")][0]
        used = int(vm.split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), hard))
        import mmap
        try:
            mmap.mmap(-1, 512 << 20).close()
            print("RLIMIT_AS-not-enforced")   # e.g. under qemu-user, which maps for the guest
            raise SystemExit
        except OSError:
            pass
        g = greenlet.greenlet(lambda: greenlet.getcurrent().gr_stack_dedicated, stack="dedicated:1000m")
        print(g.gr_stack, g.switch())
        print(greenlet.greenlet(lambda: greenlet.getcurrent().gr_stack_dedicated, stack="dedicated").switch())
    """)
    if r.stdout.split() == ["RLIMIT_AS-not-enforced"]:
        pytest.skip("RLIMIT_AS is not enforced here (qemu-user): no way to make mmap fail")
    assert r.stdout.split() == ["dedicated:1048576000", "False", "True"]


@needs_dedicated
def test_class_attribute_and_priority():
    class Ded(greenlet.greenlet):
        __greenlet_stack__ = "dedicated"

    class Sub(Ded):
        pass

    class Off(Ded):
        __greenlet_stack__ = None

    assert Ded(on_own_stack).switch() is True
    assert Sub(on_own_stack).switch() is True  # inherited
    assert Off(on_own_stack).switch() is False  # None: no choice, the (sliced) policy applies
    # The instance wins over the class.
    assert Ded(on_own_stack, stack="sliced").switch() is False
    # The class wins over the thread.
    prev = greenlet.set_stack_policy("dedicated", thread=True)
    try:
        class Sl(greenlet.greenlet):
            __greenlet_stack__ = "sliced"
        assert Sl(on_own_stack).switch() is False
        assert greenlet.greenlet(on_own_stack).switch() is True
    finally:
        greenlet.set_stack_policy(prev, thread=True)


def test_bad_class_attribute_fails_the_start_and_leaves_it_unstarted():
    class Bad(greenlet.greenlet):
        __greenlet_stack__ = "bogus"

    g = Bad(lambda: 42)
    with pytest.raises(ValueError, match="__greenlet_stack__"):
        g.switch()
    assert not g and not g.dead
    g.gr_stack = "sliced"  # the instance's choice bypasses the class's
    assert g.switch() == 42

    class Bad2(greenlet.greenlet):
        __greenlet_stack__ = 2.5

    with pytest.raises(TypeError):
        Bad2(lambda: None).switch()


# --- auto ----------------------------------------------------------------------------------

AUTO = """
    import greenlet
    from greenlet import _greenlet
    main = greenlet.getcurrent()

    def deep(n):
        # ~100 levels of C frames (sorted -> key) between Python frames.
        if n == 0:
            main.switch()
            return 0
        return sorted([1, 2], key=lambda x: deep(n - 1) if x == 1 else 0)[0]

    class Deep(greenlet.greenlet):
        def run(self):
            for _ in range(10):
                deep(100)

    class Shallow(greenlet.greenlet):
        def run(self):
            for _ in range(10):
                main.switch()

    def drive(cls, n):
        got = []
        for _ in range(n):
            g = cls()
            g.switch()
            got.append(g.gr_stack_dedicated)
            while not g.dead:
                g.switch()
        return "".join("D" if x else "s" for x in got)

    for cls in (Deep, Shallow):
        print(cls.__name__, drive(cls, 30), _greenlet._stack_auto_stats(cls))
"""


def parse_auto(out):
    res = {}
    for line in out.splitlines():
        name, pattern, stats = line.split(" ", 2)
        res[name] = (pattern, eval(stats))
    return res


@needs_dedicated
def test_auto_gives_deep_kinds_dedicated_stacks_and_leaves_shallow_ones_sliced():
    out = parse_auto(run(AUTO, "auto").stdout)
    deep, deep_stats = out["Deep"]
    shallow, shallow_stats = out["Shallow"]
    # The first deep greenlets run sliced while auto learns (64 switches away, 10 each);
    # then every later one starts on a stack of its own.
    assert deep.startswith("s") and deep.endswith("D" * 20), deep
    assert "Ds" not in deep, deep
    assert deep_stats[0] is True and deep_stats[1] >= 16 * 1024
    assert shallow == "s" * 30
    assert shallow_stats[0] is False and shallow_stats[1] < 16 * 1024
    assert shallow_stats[2] >= 64


def test_auto_is_inactive_by_default():
    out = parse_auto(run(AUTO).stdout)
    assert out["Deep"] == ("s" * 30, None)
    assert out["Shallow"] == ("s" * 30, None)


@needs_dedicated
def test_auto_per_thread_and_per_instance():
    r = run("""
        import greenlet
        from greenlet import _greenlet
        class K(greenlet.greenlet):
            pass
        g = K(lambda: None, stack="auto")
        g.switch()
        print(_greenlet._stack_auto_stats(K) is not None)
        class L(greenlet.greenlet):
            pass
        L(lambda: None).switch()
        print(_greenlet._stack_auto_stats(L) is None)
        greenlet.set_stack_policy("auto", thread=True)
        L(lambda: None).switch()
        print(_greenlet._stack_auto_stats(L) is not None)
    """)
    assert r.stdout.split() == ["True", "True", "True"]


@needs_dedicated
def test_auto_keeps_no_reference_to_the_types_it_tracks():
    r = run("""
        import gc, sys, weakref, greenlet
        from greenlet import _greenlet
        class K(greenlet.greenlet):
            pass
        before = sys.getrefcount(K)
        K(lambda: None).switch()
        print(_greenlet._stack_auto_stats(K) is not None, sys.getrefcount(K) == before)
        ref = weakref.ref(K)
        del K
        gc.collect()
        print(ref() is None)
    """, "auto")
    assert r.stdout.split() == ["True", "True", "True"]
