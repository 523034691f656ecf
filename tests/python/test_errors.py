"""Every documented exception type and message of the Python API."""
import contextvars
import copy
import pickle
import sys

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet


def _raises(exc_type, message, func, *args, **kwargs):
    with pytest.raises(exc_type) as info:
        func(*args, **kwargs)
    assert type(info.value) is exc_type
    assert str(info.value) == message
    return info.value


# ---------------------------------------------------------------------------
# Exception classes


def test_exception_classes():
    assert issubclass(greenlet.GreenletExit, BaseException)
    assert not issubclass(greenlet.GreenletExit, Exception)
    assert greenlet.GreenletExit.__mro__ == (
        greenlet.GreenletExit, BaseException, object)
    assert greenlet.error.__mro__ == (greenlet.error, Exception, BaseException, object)
    assert greenlet.GreenletExit.__module__ == "greenlet"
    assert greenlet.error.__module__ == "greenlet"
    assert greenlet.GreenletExit.__name__ == "GreenletExit"
    assert greenlet.error.__name__ == "error"
    assert greenlet._greenlet.GreenletExit is greenlet.GreenletExit
    assert greenlet._greenlet.error is greenlet.error


# ---------------------------------------------------------------------------
# greenlet(run=None, parent=None)


def test_constructor_unknown_keyword():
    if sys.version_info >= (3, 13):
        message = "green() got an unexpected keyword argument 'x'"
    else:
        message = "'x' is an invalid keyword argument for green()"
    _raises(TypeError, message, RawGreenlet, x=1)
    _raises(TypeError, message, RawGreenlet, None, x=1)


def test_constructor_too_many_arguments():
    _raises(TypeError, "green() takes at most 2 arguments (3 given)",
            RawGreenlet, 1, 2, 3)
    _raises(TypeError, "green() takes at most 2 arguments (3 given)",
            RawGreenlet, 1, 2, parent=3)
    _raises(TypeError, "green() takes at most 2 arguments (4 given)",
            RawGreenlet, 1, 2, 3, 4)


def test_constructor_duplicate_argument():
    with pytest.raises(TypeError):
        RawGreenlet(None, run=None)


def test_constructor_bad_parent():
    _raises(TypeError, "GreenletChecker: Expected any type of greenlet, not int",
            RawGreenlet, None, 5)
    _raises(TypeError, "GreenletChecker: Expected any type of greenlet, not str",
            RawGreenlet, parent="main")


def test_new_ignores_arguments():
    g = RawGreenlet.__new__(RawGreenlet, 1, 2, 3, x=4)
    assert isinstance(g, RawGreenlet)
    assert g.parent is getcurrent()
    _raises(AttributeError, "run", getattr, g, "run")


# ---------------------------------------------------------------------------
# parent setter


def test_parent_setter_type_errors():
    g = RawGreenlet()
    _raises(TypeError, "GreenletChecker: Expected any type of greenlet, not int",
            setattr, g, "parent", 1)
    _raises(TypeError, "GreenletChecker: Expected any type of greenlet, not NoneType",
            setattr, g, "parent", None)
    _raises(TypeError, "GreenletChecker: Expected any type of greenlet, not object",
            setattr, g, "parent", object())
    assert g.parent is getcurrent()


def test_parent_setter_cycles():
    g1 = RawGreenlet()
    _raises(ValueError, "cyclic parent chain", setattr, g1, "parent", g1)
    g2 = RawGreenlet(parent=g1)
    _raises(ValueError, "cyclic parent chain", setattr, g1, "parent", g2)
    g3 = RawGreenlet(parent=g2)
    _raises(ValueError, "cyclic parent chain", setattr, g1, "parent", g3)
    assert g1.parent is getcurrent()


def test_parent_delete():
    g = RawGreenlet()
    _raises(AttributeError, "can't delete attribute", delattr, g, "parent")
    assert g.parent is getcurrent()


def test_parent_of_main_greenlet_cannot_be_set():
    main = getcurrent()
    _raises(AttributeError, "cannot set the parent of a main greenlet",
            setattr, main, "parent", RawGreenlet())
    # the main-greenlet check wins over the type check
    _raises(AttributeError, "cannot set the parent of a main greenlet",
            setattr, main, "parent", 1)
    assert main.parent is None


# ---------------------------------------------------------------------------
# run getter/setter


def test_run_after_start_cannot_be_set():
    main = getcurrent()
    g = RawGreenlet(lambda: main.switch())
    g.switch()
    _raises(AttributeError, "run cannot be set after the start of the greenlet",
            setattr, g, "run", len)
    g.switch()
    _raises(AttributeError, "run cannot be set after the start of the greenlet",
            setattr, g, "run", len)
    _raises(AttributeError, "run", getattr, g, "run")


def test_main_greenlet_has_no_run():
    main = getcurrent()
    msg = "Main greenlets do not have a run attribute."
    _raises(AttributeError, msg, getattr, main, "run")
    _raises(AttributeError, msg, setattr, main, "run", len)
    _raises(AttributeError, msg, delattr, main, "run")
    assert not hasattr(main, "run")


def test_unstarted_greenlet_without_run():
    g = RawGreenlet()
    _raises(AttributeError, "run", g.switch)
    # The failed lookup happens before the start: still pending, usable.
    assert not g.dead and not g
    assert repr(g).endswith(" pending>")
    g.run = lambda: "later"
    assert g.switch() == "later"
    # A run that is not callable fails *inside* the new greenlet, killing it.
    g = RawGreenlet(None)
    _raises(TypeError, "'NoneType' object is not callable", g.switch)
    assert g.dead
    g = RawGreenlet(1)
    _raises(TypeError, "'int' object is not callable", g.switch)
    assert g.dead


# ---------------------------------------------------------------------------
# throw() argument errors


def _suspended():
    main = getcurrent()
    g = RawGreenlet(lambda: main.switch())
    g.switch()
    return g


def test_throw_argument_type_errors():
    g = _suspended()
    _raises(TypeError, "exceptions must be classes, or instances, not int",
            g.throw, 1)
    _raises(TypeError, "exceptions must be classes, or instances, not type",
            g.throw, int)
    _raises(TypeError, "exceptions must be classes, or instances, not object",
            g.throw, object())
    _raises(TypeError, "exceptions must be classes, or instances, not str",
            g.throw, "ValueError")
    _raises(TypeError, "exceptions must be classes, or instances, not NoneType",
            g.throw, None)
    _raises(TypeError, "throw() third argument must be a traceback object",
            g.throw, ValueError, None, 1)
    _raises(TypeError, "throw() third argument must be a traceback object",
            g.throw, ValueError, 1, 2)
    _raises(TypeError, "instance exception may not have a separate value",
            g.throw, ValueError("x"), 1)
    _raises(TypeError, "throw() takes at most 3 arguments (4 given)",
            g.throw, 1, 2, 3, 4)
    # (CPython formats this one; the wording depends on the call path.)
    with pytest.raises(TypeError) as info:
        g.throw(typ=ValueError)
    if sys.version_info >= (3, 11):
        assert str(info.value) == "greenlet.throw() takes no keyword arguments"
    else:
        assert str(info.value) == "throw() takes no keyword arguments"
    with pytest.raises(TypeError, match=r"throw\(\) takes no keyword arguments$"):
        g.throw(**{"typ": ValueError})
    # None of these reached the greenlet.
    assert g and not g.dead
    assert isinstance(g.throw(), greenlet.GreenletExit)


# ---------------------------------------------------------------------------
# gr_context, __dict__


def test_gr_context_errors():
    g = RawGreenlet()
    msg = "greenlet context must be a contextvars.Context or None"
    _raises(TypeError, msg, setattr, g, "gr_context", 1)
    _raises(TypeError, msg, setattr, g, "gr_context", {})

    class NotAContext:
        pass

    _raises(TypeError, msg, setattr, g, "gr_context", NotAContext())
    _raises(AttributeError, "can't delete context attribute", delattr, g, "gr_context")
    _raises(AttributeError, "can't delete context attribute",
            delattr, getcurrent(), "gr_context")
    ctx = contextvars.Context()
    g.gr_context = ctx
    assert g.gr_context is ctx


def test_dict_errors():
    g = RawGreenlet()
    _raises(TypeError, "__dict__ may not be deleted", delattr, g, "__dict__")
    _raises(TypeError, "__dict__ must be a dictionary", setattr, g, "__dict__", 1)
    _raises(TypeError, "__dict__ must be a dictionary", setattr, g, "__dict__", [])
    _raises(TypeError, "__dict__ must be a dictionary", setattr, g, "__dict__", None)
    assert g.__dict__ == {}


def test_missing_attribute():
    g = RawGreenlet()
    with pytest.raises(AttributeError):
        g.no_such_attribute


# ---------------------------------------------------------------------------
# Serialisation


def test_serialisation_errors():
    g = RawGreenlet()
    msg = "cannot serialize 'greenlet.greenlet' object"
    _raises(TypeError, msg, g.__getstate__)
    _raises(TypeError, msg, pickle.dumps, g, pickle.HIGHEST_PROTOCOL)
    _raises(TypeError, msg, copy.copy, g)
    _raises(TypeError, msg, copy.deepcopy, getcurrent())


# ---------------------------------------------------------------------------
# Module-level functions


def test_module_function_argument_errors():
    _raises(TypeError, "function takes exactly 1 argument (0 given)", greenlet.settrace)
    _raises(TypeError, "function takes exactly 1 argument (2 given)",
            greenlet.settrace, None, None)
    _raises(TypeError, "greenlet._greenlet.gettrace() takes no arguments (1 given)",
            greenlet.gettrace, 1)
    _raises(TypeError, "greenlet._greenlet.getcurrent() takes no arguments (1 given)",
            greenlet.getcurrent, 1)
    _raises(TypeError, "greenlet._greenlet.getcurrent() takes no arguments (2 given)",
            greenlet.getcurrent, 1, 2)
    _raises(TypeError, "greenlet._greenlet.getcurrent() takes no keyword arguments",
            greenlet.getcurrent, x=1)
    assert greenlet.gettrace() is None


# ---------------------------------------------------------------------------
# Switch errors that need no threads (thread errors live in test_threads.py)


def test_switch_error_is_greenlet_error_subclass_of_exception():
    # greenlet.error is an Exception, so generic handlers catch it.
    try:
        raise greenlet.error("x")
    except Exception as e:
        assert isinstance(e, greenlet.error)


def test_forced_first_switch_failure():
    g = greenlet._greenlet.UnswitchableGreenlet(lambda: "ran")
    g.force_switch_error = True
    _raises(SystemError, "Failed to switch stacks into a greenlet for the first time.",
            g.switch)
    # The failed attempt did not start it.
    assert not g.dead and not g
    g.force_switch_error = False
    assert g.switch() == "ran"
    assert g.dead


def test_forced_switch_into_running_failure():
    main = getcurrent()
    runs = []

    def run():
        runs.append(1)
        main.switch()
        runs.append(2)
        return "finished"

    g = greenlet._greenlet.UnswitchableGreenlet(run)
    g.switch()
    g.force_switch_error = True
    assert g.force_switch_error is True
    _raises(SystemError, "Failed to switch stacks into a running greenlet.", g.switch)
    assert runs == [1]
    g.force_switch_error = False
    assert g.switch() == "finished"
    assert runs == [1, 2]


def test_unswitchable_greenlet_flags_cannot_be_deleted():
    g = greenlet._greenlet.UnswitchableGreenlet()
    assert g.force_switch_error is False
    assert g.force_slp_switch_error is False
    _raises(AttributeError, "Cannot delete force_switch_error",
            delattr, g, "force_switch_error")
    _raises(AttributeError, "Cannot delete force_slp_switch_error",
            delattr, g, "force_slp_switch_error")
    g.force_slp_switch_error = 1
    assert g.force_slp_switch_error is True
    g.force_slp_switch_error = 0
    assert g.force_slp_switch_error is False


def test_constructor_fast_and_generic_paths_agree():
    # greenlet(...) on the exact type is a vectorcall of our own; type.__call__ and
    # subclasses take tp_new + tp_init. Both must give the same greenlet.
    def run():
        return "ran"

    parent = RawGreenlet()
    made = [
        RawGreenlet(run, parent),
        type.__call__(RawGreenlet, run, parent),
        RawGreenlet(run=run, parent=parent),
        RawGreenlet(run, parent=parent),
    ]
    for g in made:
        assert type(g) is RawGreenlet
        assert g.run is run
        assert g.parent is parent
        assert not g
    assert RawGreenlet(None).parent is getcurrent()
    _raises(AttributeError, "run", getattr, RawGreenlet(), "run")

    calls = []

    class Sub(RawGreenlet):
        def __init__(self, *args, **kwargs):
            calls.append((args, kwargs))
            super().__init__(*args, **kwargs)

    s = Sub(run, parent)
    assert calls == [((run, parent), {})]
    assert s.run is run and s.parent is parent
    assert RawGreenlet(run).switch() == "ran"
