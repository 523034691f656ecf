"""Attributes of greenlet objects and of the greenlet type."""
import copy
import gc
import pickle
import re
import sys
import weakref

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

PY_TPFLAGS_IMMUTABLETYPE = 1 << 8
PY_TPFLAGS_BASETYPE = 1 << 10
PY_TPFLAGS_HAVE_GC = 1 << 14

ADDR = r"0x[0-9a-f]+"
NULL_ADDR = r"0x(?:\(nil\)|0+)"


# ---------------------------------------------------------------------------
# The type object


def test_type_identity_and_names():
    assert greenlet.greenlet is RawGreenlet
    assert RawGreenlet.__name__ == "greenlet"
    assert RawGreenlet.__qualname__ == "greenlet"
    assert RawGreenlet.__module__ == "greenlet"
    assert type(getcurrent()) is RawGreenlet
    assert RawGreenlet.__mro__ == (RawGreenlet, object)


def test_type_layout_matches_pygreenlet_struct():
    assert RawGreenlet.__basicsize__ == 40
    assert RawGreenlet.__itemsize__ == 0
    assert RawGreenlet.__weakrefoffset__ == 16
    assert RawGreenlet.__dictoffset__ == 24


@pytest.mark.skipif(sys.maxsize < 2**32, reason="64-bit layout")
def test_instance_size_includes_gc_header():
    assert sys.getsizeof(RawGreenlet()) == 56
    assert sys.getsizeof(getcurrent()) == 56


def test_type_flags():
    flags = RawGreenlet.__flags__
    assert flags & PY_TPFLAGS_HAVE_GC
    assert flags & PY_TPFLAGS_BASETYPE
    assert flags & PY_TPFLAGS_IMMUTABLETYPE


def test_instances_are_gc_tracked():
    assert gc.is_tracked(RawGreenlet())
    assert gc.is_tracked(getcurrent())


def test_type_is_immutable():
    with pytest.raises(TypeError) as info:
        RawGreenlet.x = 1
    assert str(info.value) == \
        "cannot set 'x' attribute of immutable type 'greenlet.greenlet'"
    with pytest.raises(TypeError) as info:
        RawGreenlet.switch = None
    assert str(info.value) == \
        "cannot set 'switch' attribute of immutable type 'greenlet.greenlet'"
    with pytest.raises(TypeError) as info:
        del RawGreenlet.throw
    assert str(info.value) == \
        "cannot set 'throw' attribute of immutable type 'greenlet.greenlet'"
    assert callable(RawGreenlet.switch)
    assert not hasattr(RawGreenlet, "x")


def test_type_docstring():
    assert RawGreenlet.__doc__ == (
        "greenlet(run=None, parent=None) -> greenlet\n\n"
        "Creates a new greenlet object (without running it).\n\n"
        " - *run* -- The callable to invoke.\n"
        " - *parent* -- The parent greenlet. The default is the current greenlet."
    )


def test_type_dict_has_expected_members():
    expected = {
        "switch", "throw", "__getstate__", "__dict__", "run", "parent",
        "gr_frame", "gr_context", "dead", "_stack_saved",
        "getcurrent", "error", "GreenletExit", "settrace", "gettrace",
    }
    assert expected <= set(vars(RawGreenlet))


def test_class_attributes_on_type():
    assert RawGreenlet.getcurrent is greenlet.getcurrent
    assert RawGreenlet.error is greenlet.error
    assert RawGreenlet.GreenletExit is greenlet.GreenletExit
    assert RawGreenlet.settrace is greenlet.settrace
    assert RawGreenlet.gettrace is greenlet.gettrace
    # ... and reachable through instances, too
    g = RawGreenlet()
    assert g.getcurrent() is getcurrent()
    assert g.error is greenlet.error
    assert g.GreenletExit is greenlet.GreenletExit


def test_identity_semantics_for_equality_and_hash():
    a = RawGreenlet()
    b = RawGreenlet()
    assert a != b
    assert a == a
    assert hash(a) != hash(b) or a is b
    assert {a: 1, b: 2}[a] == 1
    assert RawGreenlet.__eq__ is object.__eq__
    assert RawGreenlet.__hash__ is object.__hash__


# ---------------------------------------------------------------------------
# run


def test_run_attribute_before_start():
    def f():
        return 1

    g = RawGreenlet(f)
    assert g.run is f
    g2 = RawGreenlet(run=f)
    assert g2.run is f

    def other():
        return 2

    g.run = other
    assert g.run is other
    assert g.switch() == 2


def test_run_none_is_stored():
    g = RawGreenlet(None)
    assert g.run is None
    g = RawGreenlet(run=None)
    assert g.run is None


def test_run_missing_and_deleted():
    g = RawGreenlet()
    with pytest.raises(AttributeError) as info:
        g.run
    assert info.value.args == ("run",)
    g.run = len
    assert g.run is len
    del g.run
    with pytest.raises(AttributeError):
        g.run
    with pytest.raises(AttributeError) as info:
        g.switch()
    assert info.value.args == ("run",)


def test_run_attribute_after_start():
    main = getcurrent()
    g = RawGreenlet(lambda: main.switch())
    g.switch()
    with pytest.raises(AttributeError) as info:
        g.run
    assert info.value.args == ("run",)
    g.switch()
    assert g.dead
    with pytest.raises(AttributeError):
        g.run


# ---------------------------------------------------------------------------
# parent


def test_parent_attribute():
    main = getcurrent()
    assert main.parent is None
    g = RawGreenlet()
    assert g.parent is main
    other = RawGreenlet()
    g2 = RawGreenlet(parent=other)
    assert g2.parent is other
    g2.parent = main
    assert g2.parent is main
    g3 = RawGreenlet(None, None)
    assert g3.parent is main


def test_parent_of_nested_greenlet_and_after_death():
    main = getcurrent()
    inner_parent = []

    def outer():
        inner = RawGreenlet(lambda: getcurrent().parent)
        inner_parent.append(inner.switch())
        return inner

    o = RawGreenlet(outer)
    inner = o.switch()
    assert inner_parent == [o]
    assert inner.dead
    assert inner.parent is o  # parent is kept after death
    assert o.parent is main


# ---------------------------------------------------------------------------
# gr_frame


def test_gr_frame_states():
    main = getcurrent()
    seen = {}

    def inner():
        seen["running"] = getcurrent().gr_frame
        return main.switch(sys._getframe())

    def outer():
        return inner()

    g = RawGreenlet(outer)
    assert g.gr_frame is None              # unstarted
    frame = g.switch()
    assert seen["running"] is None         # running (current)
    assert g.gr_frame is frame             # suspended: resumes here
    assert g.gr_frame.f_code.co_name == "inner"
    assert g.gr_frame.f_back.f_code.co_name == "outer"
    assert g.gr_frame.f_back.f_back is None   # stops where the greenlet began
    assert getcurrent().gr_frame is None
    g.switch()
    assert g.gr_frame is None              # dead


def test_gr_frame_of_run_function_has_no_f_back():
    main = getcurrent()

    def run():
        assert sys._getframe().f_back is None
        main.switch()

    g = RawGreenlet(run)
    g.switch()
    assert g.gr_frame.f_code.co_name == "run"
    assert g.gr_frame.f_back is None
    g.switch()


def test_gr_frame_of_suspended_main_greenlet():
    main = getcurrent()
    caller = sys._getframe()

    def peek():
        frame = main.gr_frame
        return frame, frame.f_code.co_name

    frame, name = RawGreenlet(peek).switch()
    assert name == "test_gr_frame_of_suspended_main_greenlet"
    assert frame is caller


def test_gr_frame_survives_stack_reuse():
    main = getcurrent()

    def outer():
        inner()

    def inner():
        main.switch()

    hub = RawGreenlet(outer)
    hub.switch()
    # use the same stack region with an unrelated greenlet
    RawGreenlet(lambda: [i for i in range(100)]).switch()
    assert hub.gr_frame.f_code.co_name == "inner"
    assert hub.gr_frame.f_back.f_code.co_name == "outer"
    assert hub.gr_frame.f_back.f_back is None
    hub.switch()
    assert hub.dead


@pytest.mark.parametrize("c_levels", [1, 8])
def test_gr_frame_walk_through_c_boundaries_on_every_switch(c_levels):
    # Python frames, then C frames (sorted's key call), then Python frames again,
    # suspended and resumed many times, with another greenlet overwriting the stack
    # in between: every walk sees the same names, on every switch (3.12+ relinks
    # the frames around the C-stack entry frames before each switch).
    main = getcurrent()

    def python_part(depth, then):
        if depth:
            return python_part(depth - 1, then)
        return then()

    def park():
        for i in range(30):
            main.switch(i)
        return "done"

    def through_c(levels=c_levels):
        # `levels` nested re-entries of the eval loop from C (sorted's key call).
        if not levels:
            return park()
        return sorted([0], key=lambda _: python_part(5, lambda: through_c(levels - 1)))[0]

    def body():
        return python_part(10, through_c)

    g = RawGreenlet(body)
    expected = None
    for i in range(30):
        assert g.switch() == i
        RawGreenlet(lambda: python_part(40, lambda: None)).switch()
        names = []
        f = g.gr_frame
        while f is not None:
            names.append(f.f_code.co_name)
            f = f.f_back
        if expected is None:
            expected = names
            assert names[0] == "park"
            assert names.count("python_part") == 11 + 6 * c_levels
            assert names.count("through_c") == c_levels + 1
            assert names[-1] == "body"
        assert names == expected
    assert g.switch() == 0  # sorted([0], key=...)[0], once park has returned
    assert g.dead


# ---------------------------------------------------------------------------
# dead / bool / _stack_saved


def test_main_greenlet_is_alive():
    main = getcurrent()
    assert bool(main)
    assert not main.dead


def test_dead_is_read_only():
    g = RawGreenlet()
    for name in ("dead", "gr_frame", "_stack_saved"):
        with pytest.raises(AttributeError) as info:
            setattr(g, name, 1)
        assert str(info.value) == \
            "attribute '%s' of 'greenlet.greenlet' objects is not writable" % name


def test_stack_saved():
    main = getcurrent()
    assert main._stack_saved == 0

    def run():
        me = getcurrent()
        main.switch(me._stack_saved)

    g = RawGreenlet(run)
    assert g._stack_saved == 0            # unstarted
    running_saved = g.switch()
    assert running_saved == 0             # running greenlet has nothing saved
    assert g._stack_saved > 0             # suspended and switched away from
    assert isinstance(g._stack_saved, int)
    g.switch()
    assert g._stack_saved == 0            # dead


# ---------------------------------------------------------------------------
# __dict__


def test_instance_dict():
    g = RawGreenlet()
    assert g.__dict__ == {}
    assert vars(g) is g.__dict__
    g.x = 1
    assert g.__dict__ == {"x": 1}
    old = g.__dict__
    g.__dict__ = {"y": 2}
    assert g.y == 2
    assert not hasattr(g, "x")
    assert old == {"x": 1}

    class D(dict):
        pass

    g.__dict__ = D(z=3)
    assert type(g.__dict__) is D
    assert g.z == 3


def test_instance_dict_on_main_greenlet():
    main = getcurrent()
    main.some_marker = 42
    try:
        assert getcurrent().some_marker == 42
        assert main.__dict__["some_marker"] == 42
    finally:
        del main.some_marker
    assert not hasattr(main, "some_marker")


# ---------------------------------------------------------------------------
# weak references


def test_weakref_to_greenlets():
    g = RawGreenlet(lambda: None)
    r = weakref.ref(g)
    assert r() is g
    g.switch()
    assert r() is g
    del g
    gc.collect()
    assert r() is None

    main = getcurrent()
    assert weakref.ref(main)() is main


def test_weakref_callback_when_suspended_greenlet_dies():
    main = getcurrent()
    called = []
    g = RawGreenlet(lambda: main.switch())
    g.switch()
    r = weakref.ref(g, called.append)
    del g
    assert called == [r]
    assert r() is None


def test_weak_value_dictionary():
    d = weakref.WeakValueDictionary()
    g = RawGreenlet()
    d["g"] = g
    assert d["g"] is g
    del g
    gc.collect()
    assert "g" not in d


# ---------------------------------------------------------------------------
# repr


def test_repr_of_main_greenlet():
    main = getcurrent()
    assert re.match(
        r"^<greenlet\.greenlet object at %s \(otid=%s\) current active started main>$"
        % (ADDR, ADDR), repr(main)), repr(main)
    assert ("at 0x%x " % id(main)) in repr(main)

    def peek():
        return repr(main), repr(getcurrent())

    main_repr, self_repr = RawGreenlet(peek).switch()
    assert main_repr.endswith(" suspended active started main>")
    assert re.match(
        r"^<greenlet\.greenlet object at %s \(otid=%s\) current active started>$"
        % (ADDR, ADDR), self_repr), self_repr


def test_repr_lifecycle():
    main = getcurrent()
    g = RawGreenlet(lambda: main.switch())
    r = repr(g)
    assert re.match(
        r"^<greenlet\.greenlet object at %s \(otid=%s\) pending>$" % (ADDR, NULL_ADDR),
        r), r
    g.switch()
    r = repr(g)
    assert re.match(
        r"^<greenlet\.greenlet object at %s \(otid=%s\) suspended active started>$"
        % (ADDR, ADDR), r), r
    # the otid of a started greenlet is the one of its thread's main greenlet
    otid = re.search(r"otid=(0x[0-9a-f]+)", r).group(1)
    assert "(otid=%s)" % otid in repr(main)
    g.switch()
    r = repr(g)
    assert re.match(
        r"^<greenlet\.greenlet object at %s \(otid=%s\) dead>$" % (ADDR, ADDR), r), r
    for word in ("suspended", "started", "active", "pending", "current"):
        assert word not in r


def test_repr_of_subclass_uses_type_name():
    class MyGreenlet(RawGreenlet):
        pass

    g = MyGreenlet()
    assert repr(g).startswith("<MyGreenlet object at 0x")
    assert repr(g).endswith(" pending>")


# ---------------------------------------------------------------------------
# Pickling and copying are refused


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_refused(protocol):
    for g in (RawGreenlet(), getcurrent()):
        with pytest.raises(TypeError) as info:
            pickle.dumps(g, protocol)
        assert str(info.value) == "cannot serialize 'greenlet.greenlet' object"


@pytest.mark.parametrize("protocol", [0, 1])
def test_pickle_refused_old_protocols(protocol):
    with pytest.raises(TypeError):
        pickle.dumps(RawGreenlet(), protocol)


def test_copy_refused():
    g = RawGreenlet()
    for func in (copy.copy, copy.deepcopy):
        with pytest.raises(TypeError) as info:
            func(g)
        assert str(info.value) == "cannot serialize 'greenlet.greenlet' object"
    with pytest.raises(TypeError) as info:
        g.__getstate__()
    assert str(info.value) == "cannot serialize 'greenlet.greenlet' object"


def test_pickle_refused_for_subclass_names_subclass():
    class Sub(RawGreenlet):
        pass

    with pytest.raises(TypeError) as info:
        pickle.dumps(Sub(), 2)
    assert str(info.value) == "cannot serialize 'Sub' object"
    with pytest.raises(TypeError) as info:
        copy.deepcopy(Sub())
    assert str(info.value) == "cannot serialize 'Sub' object"
