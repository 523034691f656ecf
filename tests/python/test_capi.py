"""The C API function table behind ``greenlet._C_API``, called through ctypes.

The order of the 12 entries is ABI (see greenlet.h); these tests call each
function pointer with the documented C signature.
"""
import ctypes

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

P = ctypes.py_object
VOIDP = ctypes.c_void_p
INT = ctypes.c_int


@pytest.fixture(scope="module")
def capi():
    api = ctypes.pythonapi
    api.PyCapsule_GetPointer.restype = VOIDP
    api.PyCapsule_GetPointer.argtypes = [P, ctypes.c_char_p]
    pointer = api.PyCapsule_GetPointer(greenlet._C_API, b"greenlet._C_API")
    table = ctypes.cast(pointer, ctypes.POINTER(VOIDP))
    # PYFUNCTYPE: called with the GIL held, Python errors are propagated.
    F = ctypes.PYFUNCTYPE

    class API:
        Type = table[0]
        Error = table[1]
        Exit = table[2]
        New = F(P, P, VOIDP)(table[3])
        NewWithParent = F(P, P, P)(table[3])
        GetCurrent = F(P)(table[4])
        Throw = F(P, P, P, P, P)(table[5])
        ThrowNoTb = F(P, P, P, P, VOIDP)(table[5])
        Switch = F(P, P, P, P)(table[6])
        SwitchNoArgs = F(P, P, VOIDP, VOIDP)(table[6])
        SetParent = F(INT, P, P)(table[7])
        MAIN = F(INT, P)(table[8])
        STARTED = F(INT, P)(table[9])
        ACTIVE = F(INT, P)(table[10])
        GetParent = F(VOIDP, P)(table[11])
        GetParentObj = F(P, P)(table[11])

    return API


def test_table_objects(capi):
    assert capi.Type == id(RawGreenlet)
    assert capi.Error == id(greenlet.error)
    assert capi.Exit == id(greenlet.GreenletExit)


def test_get_current(capi):
    assert capi.GetCurrent() is getcurrent()

    def run():
        return capi.GetCurrent() is getcurrent()

    assert RawGreenlet(run).switch() is True


def test_new_and_switch(capi):
    def run(*args, **kwargs):
        return ("ran", args, kwargs)

    g = capi.New(run, None)
    assert type(g) is RawGreenlet
    assert g.parent is getcurrent()
    assert capi.SwitchNoArgs(g, None, None) == ("ran", (), {})

    g = capi.New(run, None)
    assert capi.Switch(g, (1, 2), {"k": 3}) == ("ran", (1, 2), {"k": 3})

    parent = RawGreenlet()
    g = capi.NewWithParent(run, parent)
    assert g.parent is parent


def test_switch_packing_through_c_api(capi):
    main = getcurrent()

    def run():
        return main.switch("parked")

    g = capi.New(run, None)
    assert capi.SwitchNoArgs(g, None, None) == "parked"
    assert capi.Switch(g, (5,), None) == 5


def test_state_predicates(capi):
    main = getcurrent()
    assert (capi.MAIN(main), capi.STARTED(main), capi.ACTIVE(main)) == (1, 1, 1)
    g = RawGreenlet(lambda: main.switch())
    assert (capi.MAIN(g), capi.STARTED(g), capi.ACTIVE(g)) == (0, 0, 0)
    g.switch()
    assert (capi.MAIN(g), capi.STARTED(g), capi.ACTIVE(g)) == (0, 1, 1)
    g.switch()
    assert (capi.MAIN(g), capi.STARTED(g), capi.ACTIVE(g)) == (0, 1, 0)
    for func in (capi.MAIN, capi.STARTED, capi.ACTIVE):
        with pytest.raises(TypeError):
            func(1)


def test_get_parent(capi):
    main = getcurrent()
    # NULL without an exception for a main greenlet
    assert capi.GetParent(main) is None
    g = RawGreenlet()
    assert capi.GetParentObj(g) is main
    with pytest.raises(TypeError):
        capi.GetParent(1)


def test_set_parent(capi):
    a = RawGreenlet()
    b = RawGreenlet()
    assert capi.SetParent(a, b) == 0
    assert a.parent is b
    with pytest.raises(ValueError, match="^cyclic parent chain$"):
        capi.SetParent(b, a)
    with pytest.raises(TypeError,
                       match="^GreenletChecker: Expected any type of greenlet, not int$"):
        capi.SetParent(a, 1)


def test_throw(capi):
    main = getcurrent()

    def run():
        try:
            main.switch()
        except KeyError as e:
            return ("caught", e.args)

    g = RawGreenlet(run)
    g.switch()
    assert capi.ThrowNoTb(g, KeyError, "v", None) == ("caught", ("v",))

    g = RawGreenlet(run)
    g.switch()
    assert capi.Throw(g, KeyError, KeyError("w"), None) == ("caught", ("w",))

    g = RawGreenlet(run)
    g.switch()
    with pytest.raises(TypeError, match="^exceptions must be classes, or instances, not int$"):
        capi.ThrowNoTb(g, 1, None, None)
    with pytest.raises(TypeError):
        capi.ThrowNoTb(1, KeyError, None, None)
    assert isinstance(g.throw(), greenlet.GreenletExit)
