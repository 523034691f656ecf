"""The ``greenlet`` package and the ``greenlet._greenlet`` extension module."""
import ctypes
import importlib
import importlib.metadata
import threading
import types

import pytest

import greenlet
from greenlet import _greenlet


def test_all():
    assert sorted(greenlet.__all__) == sorted([
        "__version__", "_C_API", "GreenletExit", "error", "getcurrent",
        "greenlet", "gettrace", "settrace",
    ])
    for name in greenlet.__all__:
        assert hasattr(greenlet, name), name


def test_package_public_names():
    # Everything upstream's greenlet/__init__.py imports from ._greenlet.
    for name in (
        "__version__", "_C_API", "GreenletExit", "error", "getcurrent",
        "greenlet", "gettrace", "settrace",
        "GREENLET_USE_CONTEXT_VARS", "GREENLET_USE_GC", "GREENLET_USE_TRACING",
        "CLOCKS_PER_SEC", "enable_optional_cleanup",
        "get_clocks_used_doing_optional_cleanup",
    ):
        assert hasattr(greenlet, name), name
    # The test-only helpers stay in the extension module.
    for name in ("UnswitchableGreenlet", "get_pending_cleanup_count",
                 "get_total_main_greenlets", "set_thread_local",
                 "GREENLET_USE_STANDARD_THREADING"):
        assert hasattr(_greenlet, name), name


def test_star_import():
    namespace = {}
    exec("from greenlet import *", namespace)
    for name in greenlet.__all__:
        assert namespace[name] is getattr(greenlet, name)


def test_version_string():
    version = greenlet.__version__
    assert isinstance(version, str)
    parts = version.split(".")
    assert len(parts) >= 3
    assert all(p.isdigit() for p in parts[:3])


def test_package_reexports_extension_objects():
    for name in ("greenlet", "getcurrent", "settrace", "gettrace", "error",
                 "GreenletExit", "_C_API"):
        assert getattr(greenlet, name) is getattr(_greenlet, name), name
    assert greenlet._greenlet is _greenlet
    assert _greenlet.__name__ == "greenlet._greenlet"
    assert isinstance(_greenlet, types.ModuleType)


def test_builtin_functions():
    for func in (greenlet.getcurrent, greenlet.settrace, greenlet.gettrace):
        assert isinstance(func, types.BuiltinFunctionType)
    assert greenlet.getcurrent.__doc__.startswith("getcurrent() -> greenlet")
    assert greenlet.settrace.__doc__.startswith("settrace(callback) -> object")
    assert greenlet.gettrace.__doc__.startswith("gettrace() -> object")


def test_legacy_constants():
    for name in ("GREENLET_USE_GC", "GREENLET_USE_TRACING", "GREENLET_USE_CONTEXT_VARS"):
        assert getattr(greenlet, name) == 1, name
        assert getattr(_greenlet, name) == 1, name
    assert _greenlet.GREENLET_USE_STANDARD_THREADING
    assert _greenlet.GREENLET_USE_STANDARD_THREADING == 1


def test_clocks_per_sec():
    assert isinstance(_greenlet.CLOCKS_PER_SEC, int)
    assert _greenlet.CLOCKS_PER_SEC > 1
    assert greenlet.CLOCKS_PER_SEC == _greenlet.CLOCKS_PER_SEC


# ---------------------------------------------------------------------------
# _C_API capsule


def _capsule_functions():
    api = ctypes.pythonapi
    api.PyCapsule_IsValid.restype = ctypes.c_int
    api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_Import.restype = ctypes.c_void_p
    api.PyCapsule_Import.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return api


def test_c_api_is_a_named_capsule():
    cap = greenlet._C_API
    assert type(cap).__name__ == "PyCapsule"
    assert '"greenlet._C_API"' in repr(cap)
    api = _capsule_functions()
    assert api.PyCapsule_IsValid(cap, b"greenlet._C_API") == 1
    assert api.PyCapsule_IsValid(cap, b"greenlet.C_API") == 0
    assert api.PyCapsule_GetName(cap) == b"greenlet._C_API"


def test_c_api_capsule_import_and_table_head():
    api = _capsule_functions()
    pointer = api.PyCapsule_GetPointer(greenlet._C_API, b"greenlet._C_API")
    assert pointer
    # What PyGreenlet_Import() does:
    assert api.PyCapsule_Import(b"greenlet._C_API", 0) == pointer
    table = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_void_p))
    assert table[0] == id(greenlet.greenlet)
    assert table[1] == id(greenlet.error)
    assert table[2] == id(greenlet.GreenletExit)
    assert all(table[i] for i in range(12))


# ---------------------------------------------------------------------------
# Test-only helpers in greenlet._greenlet


def test_unswitchable_greenlet_type():
    U = _greenlet.UnswitchableGreenlet
    assert issubclass(U, greenlet.greenlet)
    assert U.__module__ == "greenlet._greenlet"
    assert U.__name__ == "UnswitchableGreenlet"
    u = U(lambda: "normal")
    assert u.force_switch_error is False
    assert u.force_slp_switch_error is False
    assert u.switch() == "normal"


def test_get_pending_cleanup_count_and_total_main_greenlets():
    assert isinstance(_greenlet.get_pending_cleanup_count(), int)
    assert _greenlet.get_pending_cleanup_count() >= 0
    total = _greenlet.get_total_main_greenlets()
    assert isinstance(total, int)
    assert total >= 1
    seen = []

    def body():
        greenlet.getcurrent()
        seen.append(_greenlet.get_total_main_greenlets())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen[0] >= total + 1


def test_optional_cleanup_controls():
    original = _greenlet.get_clocks_used_doing_optional_cleanup()
    try:
        assert _greenlet.enable_optional_cleanup(False) is None
        assert _greenlet.get_clocks_used_doing_optional_cleanup() is None
        # re-enabling after a disable resets the counter to 0
        assert _greenlet.enable_optional_cleanup(True) is None
        assert _greenlet.get_clocks_used_doing_optional_cleanup() == 0
        # truthiness is used
        _greenlet.enable_optional_cleanup(0)
        assert _greenlet.get_clocks_used_doing_optional_cleanup() is None
        _greenlet.enable_optional_cleanup([1])
        assert _greenlet.get_clocks_used_doing_optional_cleanup() == 0
        # enabling when already enabled keeps the value
        _greenlet.enable_optional_cleanup(True)
        assert _greenlet.get_clocks_used_doing_optional_cleanup() == 0
    finally:
        _greenlet.enable_optional_cleanup(original is not None)
    assert greenlet.enable_optional_cleanup is _greenlet.enable_optional_cleanup
    assert (greenlet.get_clocks_used_doing_optional_cleanup
            is _greenlet.get_clocks_used_doing_optional_cleanup)


def test_set_thread_local_writes_thread_state_dict():
    api = ctypes.pythonapi
    api.PyThreadState_GetDict.restype = ctypes.c_void_p
    api.PyThreadState_GetDict.argtypes = []
    key = "greenlet-rs-test-key"
    value = object()
    assert _greenlet.set_thread_local(key, value) is None
    tstate_dict = ctypes.cast(api.PyThreadState_GetDict(), ctypes.py_object).value
    try:
        assert tstate_dict[key] is value
    finally:
        del tstate_dict[key]


def test_module_dict_is_writable():
    _greenlet.greenlet_rs_test_attr = 1
    try:
        assert _greenlet.greenlet_rs_test_attr == 1
    finally:
        del _greenlet.greenlet_rs_test_attr


# ---------------------------------------------------------------------------
# Implementation-specific (greenlet-rs only)


@pytest.mark.skipif(
    getattr(greenlet, "__implementation__", None) != "greenlet-rs",
    reason="greenlet-rs specific")
def test_greenlet_rs_identity_and_version():
    assert greenlet.__implementation__ == "greenlet-rs"
    assert importlib.metadata.version("greenlet") == greenlet.__version__
    version = tuple(int(p) for p in greenlet.__version__.split(".")[:3])
    assert (3, 5, 6) <= version < (4,)


def test_header_installed_as_a_header():
    # Like upstream's wheel, greenlet.h ships inside the package (for helper extensions that
    # include "../greenlet.h") and is installed as a header of the environment.
    import os
    import sys
    import sysconfig

    import greenlet

    pkg_header = os.path.join(os.path.dirname(greenlet.__file__), "greenlet.h")
    assert os.path.isfile(pkg_header)
    site_header = os.path.join(
        sys.prefix, "include", "site", "python%d.%d" % sys.version_info[:2], "greenlet", "greenlet.h"
    )
    if not os.path.isfile(site_header):
        # Only wheels installed into this prefix get the header there.
        assert not sysconfig.get_path("purelib").startswith(sys.prefix)
        return
    with open(pkg_header) as a, open(site_header) as b:
        assert a.read() == b.read()
