"""greenlet.settrace / greenlet.gettrace."""
import sys
import threading

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event, args):
        self.events.append((event, args))

    def named(self, names):
        """Events with greenlets replaced by names (looked up by identity)."""
        def name(g):
            for k, v in names.items():
                if v is g:
                    return k
            return g
        return [(e, (name(o), name(t))) for e, (o, t) in self.events]


def test_settrace_returns_previous_and_gettrace_reports_current():
    assert greenlet.gettrace() is None
    first = Recorder()
    second = Recorder()
    assert greenlet.settrace(first) is None
    assert greenlet.gettrace() is first
    assert greenlet.settrace(second) is first
    assert greenlet.gettrace() is second
    assert greenlet.settrace(None) is second
    assert greenlet.gettrace() is None
    assert greenlet.settrace(None) is None


def test_switch_and_throw_events():
    main = getcurrent()
    rec = Recorder()
    g1 = RawGreenlet(lambda: "r1")
    g2 = RawGreenlet(lambda: 1 / 0)
    greenlet.settrace(rec)
    try:
        assert g1.switch() == "r1"
        with pytest.raises(ZeroDivisionError):
            g2.switch()
    finally:
        greenlet.settrace(None)
    assert rec.named({"main": main, "g1": g1, "g2": g2}) == [
        ("switch", ("main", "g1")),
        ("switch", ("g1", "main")),
        ("switch", ("main", "g2")),
        ("throw", ("g2", "main")),
    ]
    # The args are a plain 2-tuple of the actual greenlet objects.
    event, args = rec.events[0]
    assert type(args) is tuple and args[0] is main and args[1] is g1


def test_events_for_throw_into_suspended_and_unstarted():
    main = getcurrent()
    rec = Recorder()
    g3 = RawGreenlet(lambda: main.switch("parked"))
    assert g3.switch() == "parked"
    g4 = RawGreenlet(lambda: None)
    greenlet.settrace(rec)
    try:
        with pytest.raises(KeyError):
            g3.throw(KeyError)
        result = g4.throw()
    finally:
        greenlet.settrace(None)
    assert isinstance(result, greenlet.GreenletExit)
    assert rec.named({"main": main, "g3": g3, "g4": g4}) == [
        ("throw", ("main", "g3")),
        ("throw", ("g3", "main")),
        ("throw", ("main", "g4")),
        # GreenletExit turns into a normal value for the parent
        ("switch", ("g4", "main")),
    ]


def test_switch_to_self_is_traced():
    main = getcurrent()
    rec = Recorder()
    greenlet.settrace(rec)
    try:
        assert main.switch(5) == 5
        with pytest.raises(KeyError):
            main.throw(KeyError)
    finally:
        greenlet.settrace(None)
    assert rec.named({"main": main}) == [
        ("switch", ("main", "main")),
        ("throw", ("main", "main")),
    ]


def test_first_switch_event_happens_before_run():
    main = getcurrent()
    order = []

    def tracer(event, args):
        order.append(("trace", event))

    def run():
        order.append("run body")
        return "x"

    g = RawGreenlet(run)
    greenlet.settrace(tracer)
    try:
        g.switch()
    finally:
        greenlet.settrace(None)
    assert order == [("trace", "switch"), "run body", ("trace", "switch")]
    assert main is getcurrent()


def test_trace_callback_sees_target_as_current():
    main = getcurrent()
    seen = []

    def tracer(event, args):
        origin, target = args
        seen.append(getcurrent() is target)

    g = RawGreenlet(lambda: main.switch())
    greenlet.settrace(tracer)
    try:
        g.switch()
        g.switch()
    finally:
        greenlet.settrace(None)
    assert seen == [True, True, True, True]


def test_callback_raising_on_first_start_resets_trace_and_kills_greenlet():
    calls = []

    def bad(event, args):
        calls.append(event)
        raise SystemError("tracer boom")

    ran = []
    g = RawGreenlet(lambda: ran.append(1))
    greenlet.settrace(bad)
    with pytest.raises(SystemError, match="tracer boom"):
        g.switch()
    assert greenlet.gettrace() is None
    assert calls == ["switch"]
    assert ran == []
    assert g.dead


def test_callback_raising_on_resume_raises_in_target():
    main = getcurrent()

    def run():
        try:
            main.switch("parked")
        except SystemError as e:
            return ("target saw", str(e))
        return "no error"  # pragma: no cover

    g = RawGreenlet(run)
    assert g.switch() == "parked"

    def bad(event, args):
        raise SystemError("tracer boom 2")

    greenlet.settrace(bad)
    # The exception replaces the switch in the target; the target handles it
    # and returns normally (the trace function is gone by then).
    assert g.switch() == ("target saw", "tracer boom 2")
    assert greenlet.gettrace() is None
    assert g.dead


def test_trace_function_is_per_thread():
    rec = Recorder()
    greenlet.settrace(rec)
    try:
        seen = {}

        def thread_body():
            seen["before"] = greenlet.gettrace()
            own = Recorder()
            greenlet.settrace(own)
            RawGreenlet(lambda: None).switch()
            seen["after"] = greenlet.settrace(None)
            seen["own_events"] = len(own.events)

        t = threading.Thread(target=thread_body)
        t.start()
        t.join()
        assert seen["before"] is None
        assert isinstance(seen["after"], Recorder) and seen["own_events"] == 2
        assert greenlet.gettrace() is rec
        assert rec.events == []
    finally:
        greenlet.settrace(None)


def test_trace_callback_runs_with_sys_tracing_suspended():
    calls = []

    def systrace(frame, event, arg):
        calls.append((event, frame.f_code.co_name))
        return None

    def greenlet_tracer(event, args):
        def nested_helper():
            return 1
        nested_helper()

    def body():
        return "body"

    g = RawGreenlet(body)
    old = sys.gettrace()
    sys.settrace(systrace)
    greenlet.settrace(greenlet_tracer)
    try:
        g.switch()
    finally:
        greenlet.settrace(None)
        sys.settrace(old)
    names = [name for event, name in calls if event == "call"]
    assert "body" in names
    assert "greenlet_tracer" not in names
    assert "nested_helper" not in names


def test_replacing_trace_inside_callback():
    main = getcurrent()
    second = Recorder()

    def first(event, args):
        greenlet.settrace(second)

    g = RawGreenlet(lambda: main.switch())
    greenlet.settrace(first)
    try:
        g.switch()   # first fires (main->g) and installs second
        g.switch()
    finally:
        greenlet.settrace(None)
    # second sees everything after the first event
    assert second.named({"main": main, "g": g}) == [
        ("switch", ("g", "main")),
        ("switch", ("main", "g")),
        ("switch", ("g", "main")),
    ]
    assert g.dead


def test_trace_not_called_without_switch():
    rec = Recorder()
    greenlet.settrace(rec)
    try:
        g = RawGreenlet(lambda: None)
        getcurrent()
        repr(g)
    finally:
        greenlet.settrace(None)
    assert rec.events == []


def test_trace_callback_pending_exception_preserved():
    """A tracer that handles its own exception does not disturb the
    exception being propagated by the switch."""
    main = getcurrent()

    def tracer(event, args):
        try:
            raise KeyError("inside tracer")
        except KeyError:
            pass

    g = RawGreenlet(lambda: 1 / 0)
    greenlet.settrace(tracer)
    try:
        with pytest.raises(ZeroDivisionError):
            g.switch()
    finally:
        greenlet.settrace(None)
    assert main is getcurrent()
