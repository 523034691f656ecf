"""Python subclasses of greenlet."""
import abc
import gc
import sys
import weakref

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet


def test_subclass_with_run_method():
    class Worker(RawGreenlet):
        def run(self, a, b=0):
            return ("worker", self is getcurrent(), a + b)

    w = Worker()
    assert isinstance(w, RawGreenlet)
    assert w.parent is getcurrent()
    assert w.switch(1, b=2) == ("worker", True, 3)
    assert w.dead


def test_subclass_run_method_wins_over_constructor_run():
    class R(RawGreenlet):
        def run(self, *args, **kwargs):
            return ("method", args, kwargs)

    # The constructor stores its run in the C-level slot, but the start uses
    # an ordinary attribute lookup, which finds the subclass method first.
    assert R(run=lambda: "constructor").switch(1, k=2) == ("method", (1,), {"k": 2})


def test_subclass_without_run_fails_on_first_switch():
    class NoRun(RawGreenlet):
        pass

    g = NoRun()
    with pytest.raises(AttributeError) as info:
        g.switch()
    assert info.value.args == ("run",)

    g = NoRun(lambda: "given")
    assert g.switch() == "given"

    g = NoRun()
    g.run = lambda: "assigned"
    assert g.switch() == "assigned"


def test_subclass_custom_init_and_new():
    class Init(RawGreenlet):
        def __init__(self, x, y=2):
            super().__init__()
            self.x = x
            self.y = y

        def run(self, z):
            return (self.x, self.y, z)

    assert Init(1).switch(3) == (1, 2, 3)
    assert Init(1, y=5).switch(0) == (1, 5, 0)

    class WithNew(RawGreenlet):
        def __new__(cls, *args, **kwargs):
            self = super().__new__(cls)
            self.created_by_new = True
            return self

    g = WithNew(lambda: "ran")
    assert g.created_by_new
    assert g.switch() == "ran"


def test_subclass_init_with_parent():
    main = getcurrent()
    collector = []

    def collect():
        while True:
            collector.append(main.switch())

    c = RawGreenlet(collect)
    c.switch()

    class Child(RawGreenlet):
        def __init__(self, parent):
            super().__init__(parent=parent)

        def run(self):
            return "child result"

    child = Child(c)
    assert child.parent is c
    child.switch()
    assert collector == ["child result"]
    c.throw()


def test_getattribute_override_supplies_run():
    class GA(RawGreenlet):
        def __getattribute__(self, name):
            if name == "run":
                return lambda *args: ("from __getattribute__", args)
            return RawGreenlet.__getattribute__(self, name)

    assert GA().switch(1) == ("from __getattribute__", (1,))
    # even if a run was given to the constructor
    assert GA(lambda: "ctor").switch() == ("from __getattribute__", ())


def test_getattr_fallback_supplies_run():
    class GA(RawGreenlet):
        def __getattr__(self, name):
            if name == "run":
                return lambda: "from __getattr__"
            raise AttributeError(name)

    assert GA().switch() == "from __getattr__"


def test_run_property_is_used():
    calls = []

    class P(RawGreenlet):
        @property
        def run(self):
            calls.append("property read")
            return lambda: "property run"

    g = P()
    assert g.switch() == "property run"
    assert calls == ["property read"]


def test_run_lookup_that_switches_is_handled():
    """The run lookup runs Python code that may itself switch greenlets, and
    the greenlet may even get started (elsewhere) while the lookup runs."""
    log = []

    class Sneaky(RawGreenlet):
        lookups = 0

        @property
        def run(self):
            Sneaky.lookups += 1
            n = Sneaky.lookups
            log.append(("lookup", n))
            if n == 1:
                log.append(("lookup 1 resumed with", helper.switch()))
            return lambda *args: ("ran", n, args)

    def helper_run():
        log.append(("helper got", g.switch("from helper")))  # pragma: no cover

    helper = RawGreenlet(helper_run)
    g = Sneaky()
    # Lookup 1 (in main) switches to helper, which starts g itself (lookup 2);
    # g runs and returns to its parent, main, resuming lookup 1. By then g has
    # started (and finished), so main's switch is retried as an ordinary
    # switch to a dead greenlet, which returns main's own arguments.
    assert g.switch("from main") == "from main"
    assert log == [
        ("lookup", 1),
        ("lookup", 2),
        ("lookup 1 resumed with", ("ran", 2, ("from helper",))),
    ]
    assert g.dead
    assert not helper.dead  # still waiting inside g.switch()
    helper.throw()
    assert helper.dead


def test_abstract_subclass_cannot_be_instantiated():
    class Abstract(RawGreenlet, metaclass=abc.ABCMeta):
        @abc.abstractmethod
        def run(self):
            raise NotImplementedError

    with pytest.raises(TypeError) as info:
        Abstract()
    assert "abstract" in str(info.value)
    assert "run" in str(info.value)

    class Concrete(Abstract):
        def run(self):
            return "concrete"

    assert Concrete().switch() == "concrete"
    assert isinstance(Concrete(), Abstract)


def test_subclass_with_slots():
    class Slotted(RawGreenlet):
        __slots__ = ("value",)

        def run(self):
            return self.value * 2

    g = Slotted()
    g.value = 21
    # greenlet instances always have a __dict__ (dictoffset is inherited)
    g.other = 1
    assert g.__dict__ == {"other": 1}
    assert Slotted.__basicsize__ == RawGreenlet.__basicsize__ + 8
    assert Slotted.__dictoffset__ == RawGreenlet.__dictoffset__
    assert Slotted.__weakrefoffset__ == RawGreenlet.__weakrefoffset__
    assert weakref.ref(g)() is g
    assert g.switch() == 42


def test_subclass_cannot_add_dict_or_weakref_slots():
    with pytest.raises(TypeError) as info:
        type("D", (RawGreenlet,), {"__slots__": ("__dict__",)})
    assert str(info.value) == "__dict__ slot disallowed: we already got one"
    with pytest.raises(TypeError) as info:
        type("W", (RawGreenlet,), {"__slots__": ("__weakref__",)})
    assert str(info.value).startswith("__weakref__ slot disallowed: ")


def test_subclass_layout_and_flags():
    class Sub(RawGreenlet):
        pass

    assert Sub.__basicsize__ == RawGreenlet.__basicsize__
    assert Sub.__dictoffset__ == 24
    assert Sub.__weakrefoffset__ == 16
    assert Sub.__flags__ & (1 << 9)        # HEAPTYPE
    assert Sub.__flags__ & (1 << 14)       # HAVE_GC
    Sub.class_attr = 1                     # subclasses are mutable
    assert Sub().class_attr == 1


def test_subclass_of_main_greenlet_type():
    main_type = type(getcurrent())
    assert main_type is RawGreenlet

    class FromMainType(main_type):
        def run(self):
            return "from main type subclass"

    assert FromMainType().switch() == "from main type subclass"


def test_subclass_repr_and_state():
    class Named(RawGreenlet):
        def run(self):
            getcurrent().parent.switch()

    g = Named()
    assert repr(g).startswith("<Named object at 0x")
    assert repr(g).endswith(" pending>")
    g.switch()
    assert repr(g).endswith(" suspended active started>")
    g.switch()
    assert repr(g).endswith(" dead>")


def test_subclass_instance_killed_on_dealloc():
    log = []
    main = getcurrent()

    class Killable(RawGreenlet):
        pass

    def body():
        # Note: no reference to the greenlet object from its own suspended
        # frame. (A ``run`` *method* would keep ``self`` alive through the
        # frame and the bound method: such a suspended greenlet is part of a
        # reference cycle and is never collected.)
        try:
            main.switch()
        except greenlet.GreenletExit as e:
            log.append(e.args)
            raise

    g = Killable(body)
    g.switch()
    del g
    assert log == [("Killing the greenlet because all references have vanished.",)]


def test_subclass_with_run_method_can_be_killed_explicitly():
    log = []

    class Worker(RawGreenlet):
        def run(self):
            try:
                self.parent.switch("parked")
            except greenlet.GreenletExit:
                log.append("exit")
                return "finished"

    w = Worker()
    assert w.switch() == "parked"
    assert w.throw() == "finished"
    assert log == ["exit"] and w.dead


def test_subclass_instances_with_cycles_are_collected():
    class Cyclic(RawGreenlet):
        def run(self):
            return self

    def make():
        g = Cyclic()
        g.me = g
        g.switch()
        return weakref.ref(g), weakref.ref(Cyclic())

    refs = make()
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_subclass_with_del_method():
    log = []

    class WithDel(RawGreenlet):
        def run(self):
            return "ran"

        def __del__(self):
            log.append(("del", self.dead))

    g = WithDel()
    g.switch()
    del g
    gc.collect()
    assert log == [("del", True)]


def test_subclass_refcount_of_type_is_stable():
    class Counted(RawGreenlet):
        pass

    main = getcurrent()
    before = sys.getrefcount(Counted)
    for i in range(50):
        g = Counted(lambda: main.switch())
        g.switch()
        if i % 2:
            g.switch()     # finishes normally
        del g              # (otherwise) killed and deallocated
    gc.collect()
    assert sys.getrefcount(Counted) == before


def test_multiple_inheritance_with_mixin():
    class Mixin:
        def helper(self):
            return "mixin"

    class Mixed(Mixin, RawGreenlet):
        def run(self):
            return self.helper()

    assert Mixed().switch() == "mixin"
    assert issubclass(Mixed, RawGreenlet)
