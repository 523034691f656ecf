"""greenlet-rs's import-time check of its CPython struct mirrors (3.13+).

From 3.13 CPython publishes the offsets of the fields debuggers need in
``_PyRuntime.debug_offsets``; greenlet-rs compares them with the layouts it was
compiled with and refuses to import on any difference. A test hook, the
environment variable ``GREENLET_RS_TEST_CORRUPT_DEBUG_OFFSET``, alters one entry
of greenlet-rs's private copy of that table to prove the check fires.
Specific to greenlet-rs.
"""
import sys

import pytest

import greenlet

pytestmark = [
    pytest.mark.skipif(
        getattr(greenlet, "__implementation__", None) != "greenlet-rs",
        reason="greenlet-rs's own import check"),
    pytest.mark.skipif(
        sys.version_info < (3, 13), reason="_Py_DebugOffsets exists from 3.13"),
]

IMPORT = """
import os, sys
try:
    import greenlet._greenlet
except ImportError as e:
    print("ImportError:", e)
else:
    print("imported")
"""


@pytest.mark.parametrize("entry", [
    "thread_state.current_frame",
    "thread_state.datastack_chunk",
    "thread_state.size",
    "interpreter_frame.previous",
    "interpreter_frame.owner",
    "cookie",
    "version",
])
def test_corrupted_debug_offset_refuses_import(run_script, monkeypatch, entry):
    monkeypatch.setenv("GREENLET_RS_TEST_CORRUPT_DEBUG_OFFSET", entry)
    out = run_script(IMPORT).stdout
    assert out.startswith("ImportError: greenlet-rs was built with the CPython"), out
    assert "_PyRuntime.debug_offsets" in out, out
    if "." in entry:
        assert entry in out, out


def test_intact_debug_offsets_import(run_script, monkeypatch):
    monkeypatch.delenv("GREENLET_RS_TEST_CORRUPT_DEBUG_OFFSET", raising=False)
    assert run_script(IMPORT).stdout.strip() == "imported"
