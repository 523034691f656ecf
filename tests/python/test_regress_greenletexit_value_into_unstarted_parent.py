"""Found by the stress harness (tests/stress): a GreenletExit that becomes a
value, delivered to a greenlet that has not started yet.

When a greenlet ends with GreenletExit (raised in it, or thrown into it before
it started), the exception instance is the result its parent receives. A
running parent gets the instance back from ``switch()``; a parent that has not
started is started with it, as ``run(exc)``, like any other result.

Upstream greenlet 3.5.6 hands the bare instance over as the argument tuple
instead: on a debug CPython ``_PyObject_Call`` fails its ``PyTuple_Check(args)``
assertion (abort); on a release CPython the instance is read as a tuple, and
an exception with an attribute set crashes (SIGSEGV). These tests therefore
fail on upstream (they run in a subprocess, so the crash cannot take pytest
down); greenlet-rs wraps the instance in a 1-tuple like every other result.
"""
import pytest

RAISED = """
import greenlet
def ends_with_greenletexit():
    e = greenlet.GreenletExit("x")
    e.note = "an attribute: the exception has a __dict__"
    raise e
parent = greenlet.greenlet(lambda *args, **kwargs: ("parent ran", args, kwargs))
result = greenlet.greenlet(ends_with_greenletexit, parent=parent).switch()
tag, args, kwargs = result
assert tag == "parent ran", result
assert len(args) == 1 and isinstance(args[0], greenlet.GreenletExit), result
assert args[0].args == ("x",) and args[0].note.startswith("an attribute"), result
assert kwargs == {}, result
print("ok")
"""

THROWN = """
import greenlet
parent = greenlet.greenlet(lambda *args, **kwargs: ("parent ran", args, kwargs))
child = greenlet.greenlet(lambda: None, parent=parent)
exc = greenlet.GreenletExit("y")
exc.note = "an attribute: the exception has a __dict__"
result = child.throw(exc)
assert result == ("parent ran", (exc,), {}), result
assert child.dead
print("ok")
"""

RUNNING_PARENT = """
import greenlet
def ends_with_greenletexit():
    raise greenlet.GreenletExit("z")
value = greenlet.greenlet(ends_with_greenletexit).switch()
assert isinstance(value, greenlet.GreenletExit) and value.args == ("z",), value
print("ok")
"""


@pytest.mark.parametrize(
    "source", [RAISED, THROWN, RUNNING_PARENT], ids=["raised", "thrown", "running-parent"])
def test_greenletexit_value_reaches_parent_as_one_argument(run_script, source):
    result = run_script(source, check_rc=False)
    assert result.returncode == 0, result
    assert result.stdout.strip() == "ok", result
