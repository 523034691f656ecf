"""Shared fixtures for the greenlet-rs pytest suite.

Every test in this directory is written against the observable behaviour of
upstream ``greenlet`` 3.5.6 and must pass unchanged on it; the exceptions
are the tests that skip themselves unless ``greenlet.__implementation__`` is
``"greenlet-rs"`` (``test_module.py``, ``test_selfcheck.py``, ``test_datastack_cache.py``).
"""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import greenlet


def _greenlet_import_root():
    # The directory that holds the ``greenlet`` package under test, so that
    # subprocesses import exactly the same implementation as this process.
    return os.path.dirname(os.path.dirname(os.path.abspath(greenlet.__file__)))


@pytest.fixture(autouse=True)
def _greenlet_hygiene():
    """Each test starts and ends on the thread's main greenlet, untraced."""
    greenlet.settrace(None)
    assert greenlet.getcurrent().parent is None
    yield
    leaked_trace = greenlet.settrace(None)
    current = greenlet.getcurrent()
    assert current.parent is None, (
        "test finished while running in a non-main greenlet: %r" % (current,))
    assert leaked_trace is None, "test left a greenlet trace function installed"


class ScriptResult:
    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    def __repr__(self):
        return "<ScriptResult rc=%r\n--- stdout ---\n%s\n--- stderr ---\n%s>" % (
            self.returncode, self.stdout, self.stderr)


@pytest.fixture
def run_script():
    """Run a Python source string in a fresh interpreter (``sys.executable``).

    Returns a :class:`ScriptResult`; the child imports the same ``greenlet``
    package as the test process.
    """
    def run(source, timeout=30, check_rc=True):
        env = dict(os.environ)
        root = _greenlet_import_root()
        env["PYTHONPATH"] = os.pathsep.join(
            [root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.pop("PYTHONWARNINGS", None)
        env["PYTHONFAULTHANDLER"] = "1"
        completed = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(source)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        result = ScriptResult(completed)
        if check_rc:
            assert result.returncode == 0, result
        return result
    return run


def _wait_until(predicate, timeout=5.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        # Sleeping in small steps lets the main thread run pending calls
        # (greenlet queues dead-thread cleanup with Py_AddPendingCall).
        time.sleep(interval)


@pytest.fixture
def wait_until():
    return _wait_until


@pytest.fixture
def run_in_thread():
    """Run ``func`` in a new thread, wait for it, re-raise its exception.

    Returns whatever ``func`` returned.
    """
    def run(func, *args, timeout=30):
        box = {}

        def target():
            try:
                box["result"] = func(*args)
            except BaseException as e:  # pragma: no cover - reported below
                box["error"] = e

        t = threading.Thread(target=target)
        t.start()
        t.join(timeout)
        assert not t.is_alive(), "thread did not finish"
        if "error" in box:
            raise box["error"]
        return box.get("result")
    return run
