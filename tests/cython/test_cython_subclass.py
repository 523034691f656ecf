"""A Cython extension subclasses greenlet.greenlet in C, as gevent does.

The extension (cysub.pyx, next to this file) is compiled at test time against
the *installed* greenlet's greenlet.h, in a temporary directory. Cython is
installed into the running interpreter with pip if it is missing.

What this guards: the 40-byte PyGreenlet layout that C subclasses build on,
Cython's import-time size check, the C API slots gevent calls
(GetCurrent, Switch with NULL args, GetParent's NULL-without-exception),
and the base type's new/dealloc/traverse working on a larger C subtype.
"""

import ctypes
import gc
import importlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import warnings
import weakref
from pathlib import Path

import pytest

import greenlet
from greenlet import GreenletExit, getcurrent

HERE = Path(__file__).resolve().parent
MODULE = "cysub"


def _ensure_cython():
    try:
        import Cython  # noqa: F401
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
             "-q", "cython"],
            check=True,
        )
        importlib.invalidate_caches()


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        pytest.fail("command failed: %s\n%s" % (shlex.join(map(str, cmd)), proc.stdout),
                    pytrace=False)
    return proc.stdout


def _build(build_dir):
    """Cythonize and compile cysub.pyx into build_dir; return build_dir."""
    _ensure_cython()
    pkg_dir = Path(greenlet.__file__).resolve().parent
    header = pkg_dir / "greenlet.h"
    if not header.is_file():
        pytest.fail(f"the installed greenlet ({pkg_dir}) ships no greenlet.h", pytrace=False)
    # Clients include "greenlet/greenlet.h"; give the compiler exactly the
    # installed header under that name and nothing else from site-packages.
    include = build_dir / "include"
    (include / "greenlet").mkdir(parents=True)
    shutil.copy(header, include / "greenlet" / "greenlet.h")

    c_file = build_dir / f"{MODULE}.c"
    _run([sys.executable, "-m", "cython", "-3", "-o", c_file, HERE / f"{MODULE}.pyx"],
         build_dir)
    paths = sysconfig.get_paths()
    py_includes = {paths["include"], paths["platinclude"]}
    out = build_dir / (MODULE + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = shlex.split(os.environ.get("CC") or "gcc")
    _run([*cc, "-shared", "-fPIC", "-O2", "-g", "-fwrapv", "-DNDEBUG",
          *[f"-I{d}" for d in sorted(py_includes)], f"-I{include}",
          c_file, "-o", out], build_dir)
    return build_dir


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("cysub-build"))


@pytest.fixture(scope="module")
def cysub(build_dir):
    sys.path.insert(0, str(build_dir))
    try:
        with warnings.catch_warnings():
            # Cython reports a base type larger than the header's struct as a
            # RuntimeWarning ("size changed"); that must not happen.
            warnings.simplefilter("error")
            module = importlib.import_module(MODULE)
    finally:
        sys.path.remove(str(build_dir))
    yield module
    sys.modules.pop(MODULE, None)


def _count_live(cls):
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is cls)


# ------------------------------------------------------------------ import/ABI


def test_import_in_fresh_interpreter_has_no_warning(build_dir):
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c",
         f"import {MODULE}, greenlet; "
         f"assert {MODULE}.Sub.__base__ is greenlet.greenlet; print('ok')"],
        env={**os.environ, "PYTHONPATH": str(build_dir)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip() == "ok", proc.stdout


def test_layout(cysub):
    assert cysub.PYGREENLET_SIZE == greenlet.greenlet.__basicsize__
    if sys.maxsize > 2**32 and not sysconfig.get_config_var("Py_GIL_DISABLED"):
        assert cysub.PYGREENLET_SIZE == 40
    assert greenlet.greenlet.__itemsize__ == 0
    assert cysub.Sub.__basicsize__ > 40
    assert cysub.Sub.__basicsize__ > cysub.PYGREENLET_SIZE
    offsets = cysub.Sub.field_offsets()
    assert min(offsets.values()) >= cysub.PYGREENLET_SIZE, offsets
    assert max(offsets.values()) < cysub.Sub.__basicsize__, offsets
    # dict and weakref slots are inherited from the base, inside its struct.
    assert cysub.Sub.__dictoffset__ == greenlet.greenlet.__dictoffset__
    assert cysub.Sub.__weakrefoffset__ == greenlet.greenlet.__weakrefoffset__
    assert 0 < greenlet.greenlet.__dictoffset__ < cysub.PYGREENLET_SIZE
    assert 0 < greenlet.greenlet.__weakrefoffset__ < cysub.PYGREENLET_SIZE


# ------------------------------------------------------------------ C API


def test_getcurrent_and_parent_of_main(cysub):
    main = getcurrent()
    assert cysub.capi_getcurrent() is main
    # No parent: NULL without an exception.
    assert cysub.capi_parent(main) == (None, False)


def test_getcurrent_and_parent_inside_sub(cysub):
    main = getcurrent()
    seen = {}

    def body():
        me = cysub.capi_getcurrent()
        seen["current_is_self"] = me is s
        seen["is_current"] = s.is_current()
        seen["parent"] = cysub.capi_parent(me)
        seen["method_parent"] = s.capi_parent()
        del me
        return "finished"

    s = cysub.Sub(body)
    assert s.capi_parent() is main
    assert s.switch() == "finished"
    assert seen == {"current_is_self": True, "is_current": True,
                    "parent": (main, False), "method_parent": main}

    other = greenlet.greenlet(lambda: None)
    child = cysub.Sub(lambda: None, parent=other)
    assert cysub.capi_parent(child) == (other, False)


def test_switch_argument_packing(cysub):
    def echo(*args, **kwargs):
        return args, kwargs

    # NULL args means (), NULL kwargs means no keywords.
    assert cysub.capi_switch(greenlet.greenlet(echo)) == ((), {})
    assert cysub.capi_switch(greenlet.greenlet(echo), (1, 2)) == ((1, 2), {})
    assert cysub.capi_switch(greenlet.greenlet(echo), None, {"x": 1}) == ((), {"x": 1})
    assert cysub.Sub(echo).capi_switch(3, y=4) == ((3,), {"y": 4})
    with pytest.raises(TypeError):
        cysub.capi_switch("not a greenlet")


# ------------------------------------------------------------------ subclass


def test_run_override_and_fields_survive_switches(cysub):
    payload = object()
    s = cysub.RunSub(payload=payload, counter=100, ratio=1.5)
    assert s.fields() == (payload, 100, 1.5)
    # Deep frames in another greenlet force our stack slices to be copied
    # out and back in between our switches.
    def deep(n):
        if n == 0:
            return cysub.switch_up("deep")
        return deep(n - 1)

    walker = greenlet.greenlet(lambda: [deep(200) for _ in range(10)])
    for i in range(1, 6):
        expected = (100 + i, 1.5 + 0.5 * i)
        # The first switch starts run(rounds=5); later ones resume it.
        assert (s.switch(5) if i == 1 else s.switch()) == expected
        assert walker.switch() == "deep"
        assert s.fields() == (payload, *expected)
    assert s.switch() == ("done", 105, 4.0)
    assert s.dead
    assert s.fields() == (payload, 105, 4.0)
    s.payload = "replaced"
    assert s.fields() == ("replaced", 105, 4.0)


def test_many_instances(cysub):
    before_sub = _count_live(cysub.Sub)
    before_run = _count_live(cysub.RunSub)
    sample = []
    killed_before = len(cysub.RunSub.killed)

    def body(n):
        got = cysub.switch_up(n)
        return got * 2

    for i in range(20_000):
        if i % 2:
            g = cysub.Sub(body, payload=i, counter=i, ratio=i / 2)
            assert g.switch(i) == i
            assert g.switch(21) == 42
        else:
            g = cysub.RunSub(payload=[i], counter=i, ratio=0.25)
            assert g.switch(1) == (i + 1, 0.75)
            assert g.switch() == ("done", i + 1, 0.75)
        assert g.dead
        if i % 1000 == 0:
            sample.append(weakref.ref(g))
        del g
        if i % 1000 == 999:
            gc.collect()
    gc.collect()
    assert all(r() is None for r in sample)
    assert len(cysub.RunSub.killed) == killed_before
    assert _count_live(cysub.Sub) == before_sub
    assert _count_live(cysub.RunSub) == before_run


def test_dict_and_weakref(cysub):
    for make in (lambda: cysub.Sub(lambda: None), cysub.RunSub):
        g = make()
        g.extra = "x"
        assert g.__dict__ == {"extra": "x"}
        assert g.extra == "x"
        ref = weakref.ref(g)
        assert ref() is g
        cls = type(g)
        del g
        gc.collect()
        assert ref() is None, cls


def test_dealloc_kills_suspended_sub(cysub):
    log = []

    def body():
        try:
            cysub.switch_up("parked")
        except GreenletExit as exc:
            log.append(type(exc).__name__)
            raise
        log.append("not killed")

    for _ in range(100):
        g = cysub.Sub(body, payload=object(), counter=7, ratio=2.5)
        assert g.switch() == "parked"
        assert not g.dead
        ref = weakref.ref(g)
        del g          # nothing else refers to it: dealloc kills it
        assert ref() is None
    assert log == ["GreenletExit"] * 100


def test_throw_into_run_override(cysub):
    killed_before = len(cysub.RunSub.killed)
    s = cysub.RunSub(counter=1, ratio=0.5)
    assert s.switch(3) == (2, 1.0)
    result = s.throw()        # GreenletExit by default
    assert isinstance(result, GreenletExit)
    assert s.dead
    assert cysub.RunSub.killed[killed_before:] == [(2, 1.0, "GreenletExit")]


def test_heap_subclass_type_refcount_balanced(cysub):
    # Freeing an instance must drop exactly one reference to its heap type.
    # For a Python class over a static C subclass (PySub -> Sub -> greenlet),
    # CPython's subtype_dealloc drops it itself, because the next base's
    # dealloc (Cython's) is a static type's; greenlet's dealloc must not drop
    # it a second time. An extra drop frees the class while still in use.
    class PySub(cysub.Sub):
        pass

    class PyGreenlet(greenlet.greenlet):
        pass

    def finished(cls):
        g = cls(lambda: None)
        g.switch()
        return g

    deltas = {}
    for cls in (PySub, PyGreenlet):
        for make in (finished, lambda cls: cls(lambda: None)):
            # One instance at a time: a type with a few references too few
            # would already be freed inside this loop.
            before = sys.getrefcount(cls)
            g = make(cls)
            del g
            delta = sys.getrefcount(cls) - before
            # Give lost references back so that a failure here stays a
            # failed assertion instead of a crash later on.
            for _ in range(-delta):
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(cls))
            deltas[cls.__name__, "finished" if make is finished else "unstarted"] = delta
    assert deltas == dict.fromkeys(deltas, 0)


def test_python_subclass_of_sub(cysub):
    class PySub(cysub.Sub):
        def __init__(self, log):
            super().__init__(payload=log, counter=10, ratio=1.25)
            self.note = "py"

        def run(self, *args):
            self.payload.append(("start", args))
            while True:
                self.bump()
                got = self.switch_to_parent(self.counter)
                if got == "stop":
                    return ("stopped", self.fields()[1:], self.note)

    class PyRunSub(cysub.RunSub):
        def run(self, rounds=0):
            return ("py", super().run(rounds))

    assert PySub.__mro__[1:] == (cysub.Sub, greenlet.greenlet, object)
    log = []
    p = PySub(log)
    assert p.switch("a") == 11
    assert p.switch() == 12
    assert p.note == "py" and "note" in p.__dict__
    assert log == [("start", ("a",))]
    assert p.switch("stop") == ("stopped", (12, 2.25), "py")
    assert p.dead
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert ref() is None

    r = PyRunSub(counter=0, ratio=0.0)
    assert r.switch(2) == (1, 0.5)
    assert r.switch() == (2, 1.0)
    assert r.switch() == ("py", ("done", 2, 1.0))

    # Exceptions thrown into a suspended Python-level subclass.
    p2 = PySub([])
    p2.switch()
    with pytest.raises(RuntimeError, match="boom"):
        p2.throw(RuntimeError("boom"))
    assert p2.dead
    p3 = PySub([])
    p3.switch()
    assert isinstance(p3.throw(), GreenletExit)
    assert p3.dead
