"""Found by the stress harness (tests/stress, seed 1): throwing into an unstarted
greenlet of a Python subclass, from a greenlet that is not its parent.

The exception must start the greenlet (which dies at once, without running ``run``)
and arrive in its parent. It once came back to the thrower instead, with the target
left unstarted: looking up the class's stack policy at the start mistook the pending
exception for a failed lookup.
"""

import greenlet
import pytest


class Boom(Exception):
    pass


class Sub(greenlet.greenlet):
    def run(self, *args):
        raise AssertionError("run() must not be called")


class SubWithPolicy(greenlet.greenlet):
    __greenlet_stack__ = "sliced"

    def run(self, *args):
        raise AssertionError("run() must not be called")


def never_run(*args):
    raise AssertionError("run must not be called")


@pytest.mark.parametrize(
    "make",
    [
        lambda main: Sub(parent=main),
        lambda main: SubWithPolicy(parent=main),
        lambda main: greenlet.greenlet(never_run, parent=main),
    ],
    ids=["subclass", "subclass-with-policy", "greenlet"],
)
def test_exception_thrown_into_unstarted_greenlet_reaches_its_parent(make):
    main = greenlet.getcurrent()
    target = make(main)
    seen = []

    def thrower():
        try:
            target.throw(Boom(7))
        except Boom as e:  # the bug: it came back here
            seen.append(("thrower", e.args))
        return "thrower returned"

    t = greenlet.greenlet(thrower, parent=main)
    with pytest.raises(Boom) as info:
        t.switch()
    assert info.value.args == (7,)
    assert seen == []
    assert target.dead
    assert not t.dead  # suspended in its throw(), never resumed
