"""Deallocation and garbage collection of greenlets."""
import gc
import sys
import weakref

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

KILL_MESSAGE = "Killing the greenlet because all references have vanished."


def test_greenlet_exit_thrown_when_last_reference_vanishes():
    main = getcurrent()
    log = []

    def run():
        try:
            main.switch("parked")
        except BaseException as e:
            log.append((type(e), e.args))
            raise
        finally:
            log.append("finally")

    g = RawGreenlet(run)
    assert g.switch() == "parked"
    assert log == []
    del g
    assert log == [(greenlet.GreenletExit, (KILL_MESSAGE,)), "finally"]


def test_nested_finally_blocks_and_context_managers_run_on_kill():
    main = getcurrent()
    log = []

    class CM:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            return self

        def __exit__(self, typ, value, tb):
            log.append(("exit", self.name, typ))
            return False

    def level(n):
        with CM(n):
            try:
                if n == 0:
                    main.switch()
                else:
                    level(n - 1)
            finally:
                log.append(("finally", n))

    g = RawGreenlet(level)
    g.switch(3)
    del g
    expected = []
    for n in range(4):
        expected += [("finally", n), ("exit", n, greenlet.GreenletExit)]
    assert log == expected


def test_killed_greenlet_parent_is_the_deleting_greenlet():
    main = getcurrent()
    seen = []

    def victim_run(back_to):
        try:
            back_to.switch()
        except greenlet.GreenletExit:
            seen.append(getcurrent().parent)
            return "value is discarded"

    def deleter():
        v = RawGreenlet(victim_run, parent=main)
        v.switch(getcurrent())
        del v                          # killed while `deleter` is current
        seen.append("deleter continues")
        return "deleter done"

    d = RawGreenlet(deleter)
    assert d.switch() == "deleter done"
    # While being killed, the victim's parent is the greenlet that dropped it,
    # so its return value (discarded) comes back there, not to main.
    assert seen == [d, "deleter continues"]


def test_kill_with_greenlet_handling_exit_and_returning():
    main = getcurrent()
    log = []

    def run():
        try:
            main.switch()
        except greenlet.GreenletExit:
            log.append("handled")
            return "ignored"

    g = RawGreenlet(run)
    g.switch()
    r = weakref.ref(g)
    del g
    assert log == ["handled"]
    assert r() is None


def test_exception_raised_while_being_killed_is_unraisable(monkeypatch):
    main = getcurrent()
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)

    def run():
        try:
            main.switch()
        except greenlet.GreenletExit:
            raise KeyError("during kill")

    g = RawGreenlet(run)
    g.switch()
    g_id = id(g)
    del g
    assert len(reports) == 1
    report = reports[0]
    assert type(report.exc_value) is KeyError
    assert report.exc_value.args == ("during kill",)
    assert isinstance(report.object, RawGreenlet)
    assert id(report.object) == g_id
    assert getcurrent() is main


def test_greenlet_can_resurrect_itself_while_being_killed():
    main = getcurrent()
    saved = []

    def run():
        try:
            main.switch()
        finally:
            saved.append(getcurrent())

    g = RawGreenlet(run)
    g.switch()
    r = weakref.ref(g)
    g_id = id(g)
    del g
    assert len(saved) == 1
    assert id(saved[0]) == g_id
    assert saved[0].dead
    # Resurrection keeps the object, and its weak references, alive.
    assert r() is saved[0]
    saved.clear()
    gc.collect()


def test_greenlet_that_refuses_to_die_is_reported(run_script):
    result = run_script("""
        import greenlet
        main = greenlet.getcurrent()

        def stubborn():
            while True:
                try:
                    main.switch("parked")
                except greenlet.GreenletExit:
                    pass  # ignore the kill and switch back

        g = greenlet.greenlet(stubborn)
        g.switch()
        text = repr(g)
        del g
        print("REPR:" + text)
        print("STILL RUNNING")
    """)
    assert "STILL RUNNING" in result.stdout
    text = [line for line in result.stdout.splitlines()
            if line.startswith("REPR:")][0][len("REPR:"):]
    assert "GreenletExit did not kill %s\n" % text in result.stderr, result


def test_args_pending_at_death_are_delivered_to_parent():
    """A greenlet whose last reference dies *while it switches away* is killed
    in place; the value it was sending still reaches the target."""
    main = getcurrent()
    seen = []

    def worker():
        value = main.switch()
        del box[0]             # now only "current greenlet" references us
        kicker.parent = main   # drop kicker's reference (its parent)
        try:
            main.switch(value * 2)
            seen.append("resumed")  # pragma: no cover
        except greenlet.GreenletExit as e:
            seen.append(e.args)
        finally:
            seen.append("finally")

    box = [RawGreenlet(worker)]
    box[0].switch()
    kicker = RawGreenlet(lambda: 21, parent=box[0])
    # kicker returns 21 to its parent (worker), which sends 42 to main.
    assert kicker.switch() == 42
    assert seen == [(KILL_MESSAGE,), "finally"]
    assert kicker.dead


def test_unstarted_greenlets_in_cycles_are_collected():
    gc.collect()

    def make_cycle_via_dict():
        g = RawGreenlet()
        g.me = g
        return weakref.ref(g)

    def make_cycle_via_run():
        g = RawGreenlet(lambda: g)
        return weakref.ref(g)

    def make_cycle_via_parent():
        a = RawGreenlet()
        b = RawGreenlet(parent=a)
        a.child = b
        return weakref.ref(a), weakref.ref(b)

    refs = [make_cycle_via_dict(), make_cycle_via_run(), *make_cycle_via_parent()]
    assert all(r() is not None for r in refs)
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


def test_dead_greenlets_in_cycles_are_collected():
    def make():
        g = RawGreenlet(lambda: getcurrent())
        assert g.switch() is g
        g.me = g
        return weakref.ref(g)

    refs = [make() for _ in range(10)]
    gc.collect()
    assert all(r() is None for r in refs)


def test_unstarted_greenlet_references_are_visible_to_gc():
    def run():
        pass

    g = RawGreenlet(run)
    g.attr = "x"
    referents = gc.get_referents(g)
    assert any(x is run for x in referents)
    assert any(x is getcurrent() for x in referents)
    assert any(x is g.__dict__ for x in referents)


def test_suspended_greenlet_references_are_visible_to_gc():
    # What a traversal of a suspended greenlet visits: its parent and main
    # greenlet, its run callable (held while it runs), its saved context.
    # Before 3.15 a suspended greenlet is not a GC object (tp_is_gc), so
    # gc.get_referents() skips it, as with upstream; gc.get_referrers() walks
    # every tracked container's tp_traverse and shows what it visits.
    import contextvars

    def run():
        getcurrent().parent.switch()

    ctx = contextvars.Context()
    g = RawGreenlet(run)
    g.switch()
    g.gr_context = ctx
    for held in (run, ctx, getcurrent()):
        assert any(r is g for r in gc.get_referrers(held)), held
    g.switch()
    assert g.dead


def test_gc_collect_inside_greenlet():
    main = getcurrent()

    class Cyclic:
        def __init__(self):
            self.me = self

    def run():
        refs = []
        for _ in range(20):
            c = Cyclic()
            refs.append(weakref.ref(c))
            del c
        main.switch()
        collected = gc.collect()
        return collected, [r() for r in refs]

    g = RawGreenlet(run)
    g.switch()
    collected, remaining = g.switch()
    assert collected >= 20
    assert remaining == [None] * 20


def test_many_killed_greenlets():
    main = getcurrent()
    count = [0]

    def run():
        try:
            main.switch()
        finally:
            count[0] += 1

    gs = [RawGreenlet(run) for _ in range(500)]
    for g in gs:
        g.switch()
    del g
    gs.clear()
    assert count[0] == 500


def test_deleting_suspended_greenlet_from_another_suspended_greenlet_chain():
    main = getcurrent()
    log = []

    def inner():
        try:
            main.switch("inner parked")
        finally:
            log.append("inner finally")

    def outer():
        # parent=main and no reference back to `outer`: no reference cycle
        # between the two suspended greenlets (such a cycle is never
        # collected).
        i = RawGreenlet(inner, parent=main)
        i.switch()
        try:
            main.switch("outer parked")
        finally:
            log.append("outer finally")
            # `i` is dropped when this frame goes away

    o = RawGreenlet(outer)
    assert o.switch() == "inner parked"
    assert o.switch() == "outer parked"
    del o
    assert log == ["outer finally", "inner finally"]


def test_kill_while_a_frame_called_from_c_is_cleared():
    # The frame holding the last reference returns into C (map() called it), so
    # while its locals are released the interpreter's current frame is the eval
    # loop's C-stack entry frame (3.12+), and the kill's switch starts from there.
    log = []

    def holder(i):
        def run():
            try:
                getcurrent().parent.switch("parked")
            finally:
                log.append(i)
        g = RawGreenlet(run)
        assert g.switch() == "parked"
        return i  # g is killed while this frame is cleared

    for _ in range(20):
        del log[:]
        assert list(map(holder, range(5))) == list(range(5))
        assert sorted(range(5), key=holder) == list(range(5))
        assert log == list(range(5)) * 2
