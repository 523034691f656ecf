"""Greenlets and threads: per-thread main greenlets, cross-thread errors,
cross-thread deallocation and thread-exit cleanup."""
import gc
import re
import threading

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet
from greenlet import _greenlet


class ParkedThread:
    """A thread that creates greenlets, then waits until released.

    While it waits, its main greenlet is suspended in ``Event.wait`` (the
    thread is alive); ``self.suspended`` is a greenlet suspended inside its
    run function, ``self.unstarted`` a greenlet that was never started.
    """

    def __init__(self, log=None):
        self.log = log if log is not None else []
        self.ready = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._body, name="ParkedThread")
        self.thread.start()
        assert self.ready.wait(10)

    def _body(self):
        log = self.log

        def run():
            try:
                getcurrent().parent.switch("parked")
            finally:
                log.append("suspended finally")

        self.main = getcurrent()
        self.suspended = RawGreenlet(run)
        assert self.suspended.switch() == "parked"
        self.unstarted = RawGreenlet(lambda: "ran")
        self.ready.set()
        self.release.wait(10)
        # Drop our references on the way out (normal function exit).

    def finish(self):
        self.release.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_each_thread_has_its_own_main_greenlet(run_in_thread, wait_until):
    main = getcurrent()

    def body():
        cur = getcurrent()
        return (cur, cur.parent, cur is getcurrent(), cur.dead, bool(cur),
                repr(cur))

    other_main, parent, stable, dead, alive, rep = run_in_thread(body)
    assert other_main is not main
    assert type(other_main) is RawGreenlet
    assert parent is None
    assert stable
    assert not dead and alive
    assert rep.endswith(" current active started main>")
    # Once its thread is gone, that main greenlet is dead.
    assert wait_until(lambda: other_main.dead, timeout=10)
    assert not other_main


def test_main_greenlets_of_concurrent_threads_differ():
    barrier = threading.Barrier(3)
    mains = []
    lock = threading.Lock()

    def body():
        cur = getcurrent()
        with lock:
            mains.append(cur)
        barrier.wait(10)

    threads = [threading.Thread(target=body) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({id(m) for m in mains}) == 3
    assert all(m.parent is None for m in mains)


def test_greenlets_in_threads_run_independently(run_in_thread):
    def body(n):
        main = getcurrent()

        def run(x):
            total = 0
            while x is not None:
                total += x
                x = main.switch(total)
            return total

        g = RawGreenlet(run)
        out = [g.switch(i) for i in range(1, n)]
        return out, g.switch(None)

    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(body(n)))
               for n in (50, 80, 120)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r[1] for r in results) == [sum(range(50)), sum(range(80)),
                                             sum(range(120))]


def test_cross_thread_switch_error_message():
    parked = ParkedThread()
    try:
        main = getcurrent()
        for target in (parked.suspended, parked.main, parked.unstarted):
            with pytest.raises(greenlet.error) as info:
                target.switch()
            # Current: this thread's main greenlet, Expected: the target's
            # thread's main greenlet.
            assert str(info.value) == (
                "Cannot switch to a different thread\n\tCurrent:  %r\n\tExpected: %r"
                % (main, parked.main))
        with pytest.raises(greenlet.error, match="^Cannot switch to a different thread\n"):
            parked.suspended.throw(KeyError)
        # Seen from here, the other thread's main greenlet is not "current"
        # (that is a per-thread notion), but it is running: no saved frame.
        assert repr(parked.main).endswith(" suspended active started main>")
        assert parked.main.gr_frame is None
        assert parked.suspended.gr_frame.f_code.co_name == "run"
    finally:
        parked.finish()


def test_cross_thread_switch_error_from_non_main_greenlet():
    parked = ParkedThread()
    try:
        main = getcurrent()

        def run():
            with pytest.raises(greenlet.error) as info:
                parked.suspended.switch()
            return str(info.value)

        message = RawGreenlet(run).switch()
        # 'Current' is still this thread's *main* greenlet, now suspended.
        assert "\n\tCurrent:  <greenlet.greenlet object at 0x%x " % id(main) in message
        lines = message.split("\n")
        assert lines[1].endswith(" suspended active started main>")
        assert lines[2].startswith("\tExpected: <greenlet.greenlet object at ")
    finally:
        parked.finish()


def test_parent_on_a_different_thread():
    parked = ParkedThread()
    try:
        with pytest.raises(ValueError) as info:
            parked.suspended.parent = getcurrent()
        assert str(info.value) == "parent cannot be on a different thread"
        # An unstarted greenlet may be adopted by this thread...
        parked.unstarted.parent = getcurrent()
        assert parked.unstarted.parent is getcurrent()
        # ... and then run here.
        assert parked.unstarted.switch() == "ran"
    finally:
        parked.finish()


def test_gr_context_of_greenlet_running_in_other_thread():
    import contextvars
    parked = ParkedThread()
    try:
        with pytest.raises(ValueError) as info:
            parked.main.gr_context
        assert str(info.value) == \
            "cannot get context of a greenlet that is running in a different thread"
        with pytest.raises(ValueError) as info:
            parked.main.gr_context = contextvars.Context()
        assert str(info.value) == \
            "cannot set context of a greenlet that is running in a different thread"
        # A *suspended* greenlet of the other thread can be read.
        assert parked.suspended.gr_context is None
    finally:
        parked.finish()


def _wait_dead(main, wait_until):
    assert wait_until(lambda: main.dead, timeout=10), main


def test_main_greenlet_of_exited_thread_is_dead(wait_until):
    parked = ParkedThread()
    assert not parked.main.dead
    assert parked.main
    assert " suspended active started main>" in repr(parked.main)
    parked.finish()
    _wait_dead(parked.main, wait_until)
    assert not parked.main
    assert re.match(
        r"^<greenlet\.greenlet object at 0x[0-9a-f]+ \(otid=0x(?:\(nil\)|0+)\) "
        r"\(thread exited\) dead>$", repr(parked.main)), repr(parked.main)
    assert "(thread exited)" in repr(parked.main)
    assert parked.main.parent is None


def test_switch_to_greenlet_of_exited_thread(wait_until):
    log = []
    parked = ParkedThread(log)
    keep = parked.suspended
    parked.finish()
    _wait_dead(parked.main, wait_until)
    # The suspended greenlet is still referenced by the ParkedThread object,
    # so it survived its thread; it is now dead too.
    assert wait_until(lambda: keep.dead, timeout=10)
    assert "(thread exited) dead>" in repr(keep)
    assert keep.gr_frame is None
    for target in (keep, parked.main):
        with pytest.raises(greenlet.error) as info:
            target.switch()
        assert str(info.value) == \
            "cannot switch to a different thread (which happens to have exited)"
    with pytest.raises(greenlet.error) as info:
        keep.throw()
    assert str(info.value) == \
        "cannot switch to a different thread (which happens to have exited)"
    # Nothing ran inside the greenlet: it was not killed with GreenletExit.
    assert log == []
    # An unstarted greenlet whose parent is the dead thread's main greenlet
    # cannot be started here either ...
    with pytest.raises(greenlet.error) as info:
        parked.unstarted.switch()
    assert str(info.value) == \
        "cannot switch to a different thread (which happens to have exited)"
    assert repr(parked.unstarted).endswith(" pending>")
    # ... unless it is adopted by a live greenlet first.
    parked.unstarted.parent = getcurrent()
    assert parked.unstarted.switch() == "ran"
    # Dropping the last references murders it in place: still no code runs.
    keep = None
    parked.suspended = None
    gc.collect()
    assert log == []


def test_greenlet_dropped_in_other_thread_is_killed_in_its_own_thread():
    log = []
    box = []
    created = threading.Event()
    dropped = threading.Event()
    done = threading.Event()

    def body():
        def run():
            try:
                getcurrent().parent.switch()
            except greenlet.GreenletExit as e:
                log.append(("GreenletExit", threading.current_thread().name, e.args))
                raise
            finally:
                log.append("finally")

        g = RawGreenlet(run)
        g.switch()
        box.append(g)
        del g
        created.set()
        assert dropped.wait(10)
        log.append("before getcurrent")
        getcurrent()           # drains the cross-thread kill queue
        log.append("after getcurrent")
        done.set()

    t = threading.Thread(target=body, name="owner")
    t.start()
    assert created.wait(10)
    box.clear()                # last reference goes away in *this* thread
    log.append("dropped")
    dropped.set()
    assert done.wait(10)
    t.join(10)
    assert log == [
        "dropped",
        "before getcurrent",
        ("GreenletExit", "owner",
         ("Killing the greenlet because all references have vanished.",)),
        "finally",
        "after getcurrent",
    ]


def test_suspended_greenlets_killed_when_thread_function_returns(run_in_thread):
    log = []

    def body():
        def run(tag):
            try:
                getcurrent().parent.switch()
            except greenlet.GreenletExit:
                log.append((tag, "exit", threading.current_thread() is not main_thread))
            finally:
                log.append((tag, "finally"))

        a = RawGreenlet(run)
        a.switch("a")
        b = RawGreenlet(run)
        b.switch("b")
        # returning drops a and b in their own (still alive) thread

    main_thread = threading.current_thread()
    run_in_thread(body)
    assert sorted(log) == sorted([("a", "exit", True), ("a", "finally"),
                                  ("b", "exit", True), ("b", "finally")])


def test_main_greenlet_count_and_cleanup_queue(wait_until):
    import weakref
    # Let earlier tests' dead-thread main greenlets go away first, and keep
    # the collector from freeing any during the measurement.
    gc.collect()
    assert wait_until(lambda: _greenlet.get_pending_cleanup_count() == 0)
    assert _greenlet.get_total_main_greenlets() >= 1
    seen = []
    refs = []

    def body():
        seen.append(_greenlet.get_total_main_greenlets())
        refs.append(weakref.ref(getcurrent()))
        seen.append(_greenlet.get_total_main_greenlets())

    gc.disable()
    try:
        t = threading.Thread(target=body)
        t.start()
        t.join(10)
    finally:
        gc.enable()
    # getcurrent() in the thread created its main greenlet
    assert seen[1] == seen[0] + 1
    # After the thread exits, its main greenlet is cleaned up and freed.
    assert wait_until(lambda: refs[0]() is None
                      and _greenlet.get_pending_cleanup_count() == 0, timeout=10), (
        refs[0](), _greenlet.get_pending_cleanup_count())


def test_many_short_lived_threads_do_not_leak_main_greenlets(wait_until):
    before = _greenlet.get_total_main_greenlets()

    def body():
        main = getcurrent()
        g = RawGreenlet(lambda: main.switch(1))
        assert g.switch() == 1

    for _ in range(5):
        threads = [threading.Thread(target=body) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    gc.collect()
    assert wait_until(lambda: _greenlet.get_total_main_greenlets() <= before
                      and _greenlet.get_pending_cleanup_count() == 0, timeout=10), (
        _greenlet.get_total_main_greenlets(), before)


def test_thread_with_trace_function_exits_cleanly(wait_until):
    events = []

    def body():
        greenlet.settrace(lambda e, a: events.append(e))
        RawGreenlet(lambda: None).switch()
        # leave the trace function installed; thread cleanup clears it

    t = threading.Thread(target=body)
    t.start()
    t.join(10)
    assert events == ["switch", "switch"]
    assert greenlet.gettrace() is None


def test_concurrent_switching_in_many_threads_with_gil_handoffs():
    import time
    errors = []
    results = {}

    def body(tid):
        try:
            main = getcurrent()

            def run(x):
                while True:
                    if x % 50 == 0:
                        time.sleep(0)   # let other threads run mid-dance
                    assert getcurrent() is g
                    x = main.switch(x + tid)

            g = RawGreenlet(run)
            value = g.switch(0)
            for _ in range(2000):
                assert getcurrent() is main
                value = g.switch(value)
            results[tid] = value
            g.throw()
            assert g.dead
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=body, args=(tid,)) for tid in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert results == {tid: tid * 2001 for tid in range(1, 5)}
