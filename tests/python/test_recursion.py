"""The Python recursion depth is saved and restored per greenlet."""
import contextlib
import sys

import pytest

from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

HEADROOM = 250


def _frame_depth():
    frame = sys._getframe(1)
    n = 0
    while frame is not None:
        n += 1
        frame = frame.f_back
    return n


@contextlib.contextmanager
def low_recursion_limit():
    """Limit recursion to (depth of the caller + HEADROOM) frames."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_frame_depth() + HEADROOM)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _recurse(n, then):
    if n == 0:
        return then()
    return _recurse(n - 1, then)


def test_recursion_depth_is_not_cumulative_across_greenlets():
    with low_recursion_limit():
        main = getcurrent()
        # Each greenlet goes 150 deep; three of them together (450) would be far
        # over the limit if their depths were added up.
        gs = [RawGreenlet(_recurse) for _ in range(3)]
        for g in gs:
            assert g.switch(150, lambda: main.switch("deep")) == "deep"
        for i, g in enumerate(gs):
            assert g.switch(i) == i
            assert g.dead


def test_main_can_recurse_while_a_greenlet_is_suspended_deep():
    with low_recursion_limit():
        main = getcurrent()
        g = RawGreenlet(_recurse)
        assert g.switch(HEADROOM - 60, lambda: main.switch("parked")) == "parked"
        # Main recurses nearly as deep again.
        assert _recurse(HEADROOM - 60, lambda: "main ok") == "main ok"
        with pytest.raises(RecursionError):
            _recurse(HEADROOM * 4, lambda: None)
        assert g.switch("done") == "done"


def test_resumed_greenlet_gets_its_own_depth_back():
    with low_recursion_limit():
        main = getcurrent()

        def run():
            # Suspend 180 frames deep; after resuming, try to go 150 deeper.
            def at_bottom():
                main.switch("parked deep")
                try:
                    _recurse(150, lambda: None)
                except RecursionError:
                    return "RecursionError"
                return "no error"
            return _recurse(180, at_bottom)

        g = RawGreenlet(run)
        assert g.switch() == "parked deep"
        # Resumed from a shallow main: the greenlet is still ~180 deep, so 150
        # more frames exceed the limit.
        assert g.switch() == "RecursionError"


def test_new_greenlet_inherits_depth_of_starting_greenlet():
    with low_recursion_limit():
        def start_from_depth(main_depth, greenlet_depth):
            def start():
                g = RawGreenlet(_recurse)
                try:
                    return g.switch(greenlet_depth, lambda: "ok")
                except RecursionError:
                    return "RecursionError"
            return _recurse(main_depth, start)

        assert start_from_depth(10, 200) == "ok"
        assert start_from_depth(200, 30) == "ok"
        assert start_from_depth(200, 100) == "RecursionError"


def test_recursion_error_inside_greenlet_is_recoverable():
    with low_recursion_limit():
        def run():
            try:
                _recurse(HEADROOM * 4, lambda: None)
            except RecursionError:
                pass
            # Still usable afterwards, at normal depth.
            return _recurse(50, lambda: "recovered")

        assert RawGreenlet(run).switch() == "recovered"
        with pytest.raises(RecursionError):
            RawGreenlet(_recurse).switch(HEADROOM * 4, lambda: None)
        assert _recurse(HEADROOM - 60, lambda: "main fine") == "main fine"


def test_deep_ping_pong_between_two_deep_greenlets():
    with low_recursion_limit():
        main = getcurrent()
        partner = {}

        def bouncer(name):
            def at_bottom():
                value = main.switch(("ready", name))
                while value < 40:
                    value = partner[name].switch(value + 1)
                return (name, value)
            return _recurse(170, at_bottom)

        a = RawGreenlet(bouncer)
        b = RawGreenlet(bouncer)
        partner["a"] = b
        partner["b"] = a
        # Each greenlet is parked 170 frames deep: together they exceed the limit.
        assert a.switch("a") == ("ready", "a")
        assert b.switch("b") == ("ready", "b")
        # a receives the even numbers, b the odd ones; a sees 40 and finishes.
        assert a.switch(0) == ("a", 40)
        assert a.dead and not b.dead
        b.throw()
        assert b.dead
