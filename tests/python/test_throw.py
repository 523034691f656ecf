"""greenlet.throw(): delivery, normalisation, unstarted/dead targets."""
import sys
import traceback

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet


def _suspended_catcher():
    """A greenlet suspended in a try block; it reports what it caught."""
    main = getcurrent()

    def run():
        try:
            main.switch("parked")
        except BaseException as e:  # noqa: B902 - we want everything
            return ("caught", type(e), e.args, e.__traceback__ is not None)
        return "no exception"

    g = RawGreenlet(run)
    assert g.switch() == "parked"
    return g


def test_throw_without_arguments_raises_greenlet_exit():
    g = _suspended_catcher()
    assert g.throw() == ("caught", greenlet.GreenletExit, (), True)
    assert g.dead


def test_uncaught_greenlet_exit_becomes_return_value_for_parent():
    main = getcurrent()
    log = []

    def run():
        try:
            main.switch()
        finally:
            log.append("finally")

    g = RawGreenlet(run)
    g.switch()
    result = g.throw()
    assert type(result) is greenlet.GreenletExit
    assert log == ["finally"]
    assert g.dead

    g = RawGreenlet(run)
    g.switch()
    result = g.throw(greenlet.GreenletExit("with", "args"))
    assert type(result) is greenlet.GreenletExit
    assert result.args == ("with", "args")


def test_greenlet_exit_subclass_is_also_a_return_value():
    class MyExit(greenlet.GreenletExit):
        pass

    main = getcurrent()
    g = RawGreenlet(lambda: main.switch())
    g.switch()
    result = g.throw(MyExit)
    assert type(result) is MyExit


def test_uncaught_exception_propagates_to_parent():
    main = getcurrent()
    g = RawGreenlet(lambda: main.switch())
    g.switch()
    with pytest.raises(ValueError) as info:
        g.throw(ValueError("boom"))
    assert info.value.args == ("boom",)
    assert g.dead


def test_uncaught_exception_goes_to_parent_not_to_thrower():
    main = getcurrent()
    victim = RawGreenlet(lambda: main.switch("victim parked"))
    assert victim.switch() == "victim parked"

    def thrower():
        victim.throw(KeyError("k"))
        return "thrower resumed"  # pragma: no cover

    t = RawGreenlet(thrower)
    # victim's parent is main, so the KeyError surfaces here, from the
    # switch into `t`, while `t` stays suspended inside throw().
    with pytest.raises(KeyError):
        t.switch()
    assert victim.dead
    assert t and not t.dead
    t.throw()
    assert t.dead


@pytest.mark.parametrize("throw_args, expected_type, expected_args", [
    ((ValueError,), ValueError, ()),
    ((ValueError, "a"), ValueError, ("a",)),
    ((ValueError, ("a", "b")), ValueError, ("a", "b")),
    ((ValueError, None), ValueError, ()),
    ((ValueError, None, None), ValueError, ()),
    ((ValueError("inst"),), ValueError, ("inst",)),
    ((ValueError("inst"), None), ValueError, ("inst",)),
    ((ValueError("inst"), None, None), ValueError, ("inst",)),
    ((ValueError, ValueError("same type instance")), ValueError, ("same type instance",)),
    ((LookupError, KeyError("subclass instance")), KeyError, ("subclass instance",)),
])
def test_throw_argument_normalisation(throw_args, expected_type, expected_args):
    g = _suspended_catcher()
    kind, typ, args, has_tb = g.throw(*throw_args)
    assert kind == "caught"
    assert typ is expected_type
    assert args == expected_args
    assert has_tb


def test_throw_class_with_unrelated_instance_value_wraps_it():
    g = _suspended_catcher()
    inner = ValueError("inner")
    kind, typ, args, _ = g.throw(KeyError, inner)
    assert typ is KeyError
    assert args == (inner,)


def test_throw_preserves_given_traceback():
    main = getcurrent()

    def make_tb():
        try:
            raise KeyError("origin")
        except KeyError as e:
            return e.__traceback__

    tb = make_tb()

    def run():
        try:
            main.switch()
        except KeyError as e:
            return [entry.name for entry in traceback.extract_tb(e.__traceback__)]

    g = RawGreenlet(run)
    g.switch()
    names = g.throw(KeyError, KeyError("z"), tb)
    # The delivered traceback starts where the exception surfaced in the
    # greenlet and continues with the traceback we passed in.
    assert names == ["run", "make_tb"]


def test_throw_same_instance_identity_is_delivered():
    main = getcurrent()
    exc = RuntimeError("identity")

    def run():
        try:
            main.switch()
        except RuntimeError as e:
            return e

    g = RawGreenlet(run)
    g.switch()
    assert g.throw(exc) is exc


def test_greenlet_can_handle_throw_and_continue():
    main = getcurrent()

    def run():
        handled = []
        for _ in range(3):
            try:
                main.switch("waiting")
            except IndexError as e:
                handled.append(e.args[0])
        return handled

    g = RawGreenlet(run)
    assert g.switch() == "waiting"
    assert g.throw(IndexError, 1) == "waiting"
    assert g.throw(IndexError(2)) == "waiting"
    assert g.throw(IndexError, 3) == [1, 2, 3]


def test_throw_into_unstarted_greenlet_never_calls_run():
    calls = []

    def run():
        calls.append("run")  # pragma: no cover

    g = RawGreenlet(run)
    result = g.throw()
    assert type(result) is greenlet.GreenletExit
    assert calls == []
    assert g.dead

    g = RawGreenlet(run)
    with pytest.raises(ZeroDivisionError):
        g.throw(ZeroDivisionError)
    assert calls == []
    assert g.dead


def test_throw_into_dead_greenlet():
    g = RawGreenlet(lambda: "done")
    assert g.switch() == "done"
    assert g.dead
    result = g.throw()
    assert type(result) is greenlet.GreenletExit
    with pytest.raises(ValueError, match="dead target"):
        g.throw(ValueError("dead target"))
    assert g.dead


def test_throw_into_dead_greenlet_goes_to_its_parent():
    dead = RawGreenlet(lambda: None)
    dead.switch()

    def other():
        dead.throw(KeyError("to main"))

    o = RawGreenlet(other)
    with pytest.raises(KeyError, match="to main"):
        o.switch()
    # `o` is still suspended inside dead.throw()
    assert not o.dead
    o.throw()


def test_throw_to_current_greenlet_raises_immediately():
    main = getcurrent()
    with pytest.raises(KeyError):
        main.throw(KeyError)

    def run():
        me = getcurrent()
        try:
            me.throw(IndexError("self"))
        except IndexError as e:
            return ("self-throw caught", e.args)

    assert RawGreenlet(run).switch() == ("self-throw caught", ("self",))


def test_throw_runs_finally_blocks_in_order():
    main = getcurrent()
    log = []

    def inner():
        try:
            main.switch()
        finally:
            log.append("inner finally")

    def outer():
        try:
            inner()
        finally:
            log.append("outer finally")

    g = RawGreenlet(outer)
    g.switch()
    with pytest.raises(OSError):
        g.throw(OSError)
    assert log == ["inner finally", "outer finally"]


def test_throw_from_other_greenlet_with_exception_converted():
    main = getcurrent()

    def victim_run():
        try:
            main.switch()
        except KeyError:
            raise ValueError("converted")

    victim = RawGreenlet(victim_run)
    victim.switch()
    with pytest.raises(ValueError) as info:
        victim.throw(KeyError)
    assert isinstance(info.value.__context__, KeyError)


def test_exc_info_during_throw_handling_in_target():
    main = getcurrent()

    def run():
        try:
            main.switch()
        except KeyError:
            return sys.exc_info()[0]

    g = RawGreenlet(run)
    g.switch()
    assert g.throw(KeyError) is KeyError
    assert sys.exc_info() == (None, None, None)
