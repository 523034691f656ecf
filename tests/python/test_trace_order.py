"""When a greenlet ends, the trace function's event for the switch back comes
before or after the release of the dead greenlet's locals, as in upstream.

The rule (upstream greenlet 3.5.6): a greenlet's frames go when its run()
returns or raises, like any Python frame, *unless* something still holds them.
What holds them at the end is the traceback of the exception it ended with:
an exception that escapes run() goes to the parent as the exception of the
switch, and a ``GreenletExit`` (from ``throw()`` or from the deallocation of a
suspended greenlet) becomes the value handed to the parent, with its
``__traceback__``. That value is released by whoever receives it, after the
trace function has seen the switch back. So locals held by such a traceback
are released after the 'switch'/'throw' event; locals of a frame that simply
returned are released before it.

On 3.10 the ``GreenletExit`` value carries a traceback only if it passed
through an ``except``/``finally`` handler in the greenlet (3.11+ always attach
it), so the tests below keep a handler in the greenlet's frame.
"""
import gc
import threading
import weakref

import greenlet


class Canary:
    def __init__(self, log, name):
        self.log = log
        self.name = name

    def __del__(self):
        self.log.append("freed " + self.name)


def _names(**kw):
    # Weak: a name must not keep its greenlet alive. A greenlet being
    # deallocated has no name any more ("?").
    names = weakref.WeakKeyDictionary()
    for name, g in kw.items():
        names[g] = name
    return names


def _tracer(log, names):
    def trace(event, args):
        origin, target = args
        log.append("%s %s->%s" % (event, names.get(origin, "?"), names.get(target, "?")))
    return trace


def _run_traced(log, names, body):
    gc.disable()
    greenlet.settrace(_tracer(log, names))
    try:
        body()
    finally:
        greenlet.settrace(None)
        gc.enable()


def test_return_releases_locals_before_trace():
    log = []
    main = greenlet.getcurrent()
    names = _names(main=main)

    def run():
        canary = Canary(log, "g")  # noqa: F841 (held by the frame)
        return 1

    def body():
        g = greenlet.greenlet(run)
        names[g] = "g"
        log.append("result %r" % (g.switch(),))

    _run_traced(log, names, body)
    assert log == ["switch main->g", "freed g", "switch g->main", "result 1"]


def test_exception_releases_locals_after_trace():
    log = []
    main = greenlet.getcurrent()
    names = _names(main=main)

    def run():
        canary = Canary(log, "g")  # noqa: F841
        raise ValueError("boom")

    def body():
        g = greenlet.greenlet(run)
        names[g] = "g"
        try:
            g.switch()
        except ValueError:
            log.append("caught")
        log.append("after except")

    _run_traced(log, names, body)
    assert log == ["switch main->g", "throw g->main", "caught", "freed g", "after except"]


def _suspended_with_finally(log, names, name, parent=None):
    def run():
        canary = Canary(log, name)  # noqa: F841
        try:
            greenlet.getcurrent().parent.switch()
        finally:
            log.append("finally " + name)

    g = greenlet.greenlet(run, parent)
    names[g] = name
    g.switch()
    return g


def test_kill_on_dealloc_releases_locals_after_trace():
    log = []
    main = greenlet.getcurrent()
    names = _names(main=main)

    def body():
        g = _suspended_with_finally(log, names, "g")
        log.append("drop")
        del g
        log.append("dropped")

    _run_traced(log, names, body)
    assert log == [
        "switch main->g", "switch g->main", "drop",
        "throw main->g", "finally g", "switch g->main", "freed g", "dropped",
    ]


def test_kill_on_dealloc_without_handler_follows_the_traceback():
    # No handler in the frame: on 3.11+ the GreenletExit still carries the
    # frame in its traceback; on 3.10 it does not. Either way the order is
    # the same as upstream's; what is checked here is that the trace comes
    # once and the canary goes once, and that nothing is left suspended.
    log = []
    main = greenlet.getcurrent()
    names = _names(main=main)

    def run():
        canary = Canary(log, "g")  # noqa: F841
        greenlet.getcurrent().parent.switch()

    def body():
        g = greenlet.greenlet(run)
        names[g] = "g"
        g.switch()
        del g

    _run_traced(log, names, body)
    assert log.count("freed g") == 1
    assert log[:3] == ["switch main->g", "switch g->main", "throw main->g"]
    assert sorted(log[3:]) == ["freed g", "switch g->main"]


def test_throw_releases_locals_after_trace_and_value():
    log = []
    main = greenlet.getcurrent()
    names = _names(main=main)

    def body():
        g = _suspended_with_finally(log, names, "g")
        result = g.throw()
        log.append("result %s" % type(result).__name__)
        del result
        log.append("released")

    _run_traced(log, names, body)
    assert log == [
        "switch main->g", "switch g->main",
        "throw main->g", "finally g", "switch g->main",
        "result GreenletExit", "freed g", "released",
    ]


def test_chain_of_kills_orders_each_trace_before_its_locals():
    # g1's frame holds the last reference to g2: the kill of g2 runs while
    # g1's locals are released, after the trace of g1's switch back.
    log = []
    main = greenlet.getcurrent()
    names = _names(main=main)

    def run(name, held):
        # One local, so that the order does not depend on the order in which
        # the interpreter clears a frame's locals (3.14 clears them last to
        # first): a tuple releases its items last to first, `held` first.
        keep = (Canary(log, name), held)  # noqa: F841
        del held
        try:
            greenlet.getcurrent().parent.switch()
        finally:
            log.append("finally " + name)

    def body():
        g2 = greenlet.greenlet(run)
        names[g2] = "g2"
        g2.switch("g2", None)
        g1 = greenlet.greenlet(run)
        names[g1] = "g1"
        g1.switch("g1", g2)
        del g2
        del g1
        log.append("dropped")

    _run_traced(log, names, body)
    assert log == [
        "switch main->g2", "switch g2->main",
        "switch main->g1", "switch g1->main",
        "throw main->g1", "finally g1", "switch g1->main",
        "throw main->g2", "finally g2", "switch g2->main",
        "freed g2", "freed g1", "dropped",
    ]


def test_cross_thread_kill_releases_locals_after_trace():
    # A greenlet of another thread loses its last reference here: that thread
    # kills it the next time it runs greenlet code.
    log = []
    names = _names()
    box = {}
    made = threading.Event()
    dropped = threading.Event()

    def thread_main():
        names[greenlet.getcurrent()] = "tmain"
        box["g"] = _suspended_with_finally(log, names, "g")
        greenlet.settrace(_tracer(log, names))
        made.set()
        dropped.wait(10)
        log.append("thread switches")
        greenlet.greenlet(lambda: None).switch()  # runs the pending kills first
        log.append("thread done")
        greenlet.settrace(None)

    gc.disable()
    try:
        t = threading.Thread(target=thread_main)
        t.start()
        made.wait(10)
        del box["g"]
        log.append("dropped elsewhere")
        dropped.set()
        t.join(10)
    finally:
        gc.enable()
    start = log.index("thread switches")
    kill = log[start:]
    assert kill[:4] == ["thread switches", "throw tmain->g", "finally g", "switch g->tmain"], log
    assert kill.index("freed g") == 4, log
    assert kill[-1] == "thread done", log


def test_thread_exit_releases_suspended_greenlet_without_trace():
    # A thread exits with a greenlet suspended: the greenlet is not resumed,
    # so the trace function sees no switch into or out of it.
    log = []
    names = _names()
    box = {}

    def thread_main():
        names[greenlet.getcurrent()] = "tmain"
        box["g"] = _suspended_with_finally(log, names, "g")
        greenlet.settrace(_tracer(log, names))

    gc.disable()
    try:
        t = threading.Thread(target=thread_main)
        t.start()
        t.join(10)
        g = box.pop("g")
        log.append("thread gone")
        del g
        gc.collect()
    finally:
        gc.enable()
    assert log[:2] == ["switch tmain->g", "switch g->tmain"] or log[:1] == ["thread gone"], log
    assert not [e for e in log if e.startswith(("throw", "switch g"))], log


def test_long_chain_of_kills_releases_everything():
    # Deeper than any nesting bound: every killed greenlet's locals are released
    # by the time the head's release returns, and every greenlet is gone.
    log = []
    refs = []

    def run(name, held):
        canary = Canary(log, name)  # noqa: F841
        try:
            greenlet.getcurrent().parent.switch()
        finally:
            log.append("finally")

    gc.disable()
    try:
        head = None
        for i in range(300):
            g = greenlet.greenlet(run)
            g.switch(str(i), head)
            refs.append(weakref.ref(g))
            head = g
        del g
        head = None
        assert log.count("finally") == 300
        assert len([e for e in log if e.startswith("freed")]) == 300
        assert [r for r in refs if r() is not None] == []
    finally:
        gc.enable()
