"""contextvars: every greenlet has its own context."""
import contextvars

import pytest

from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

VAR = contextvars.ContextVar("greenlet_rs_test_var", default="default")


@pytest.fixture(autouse=True)
def _isolated_main_context():
    """Run each test with a fresh context on the main greenlet."""
    main = getcurrent()
    saved = main.gr_context
    main.gr_context = contextvars.Context()
    yield
    main.gr_context = saved


def test_new_greenlet_starts_with_empty_context():
    VAR.set("main value")

    def run():
        return VAR.get(), getcurrent().gr_context

    value, ctx = RawGreenlet(run).switch()
    assert value == "default"
    assert ctx is None  # the context is only created on first ContextVar.set
    assert VAR.get() == "main value"


def test_context_created_lazily_on_first_set():
    def run():
        before = getcurrent().gr_context
        VAR.set("in greenlet")
        after = getcurrent().gr_context
        return before, after

    before, after = RawGreenlet(run).switch()
    assert before is None
    assert isinstance(after, contextvars.Context)
    assert after[VAR] == "in greenlet"


def test_contexts_are_per_greenlet_across_switches():
    main = getcurrent()
    VAR.set("main")
    log = []

    def run(name):
        VAR.set(name)
        for _ in range(3):
            log.append((name, VAR.get()))
            main.switch()
        return VAR.get()

    a = RawGreenlet(run)
    b = RawGreenlet(run)
    a.switch("a")
    b.switch("b")
    assert VAR.get() == "main"
    a.switch()
    VAR.set("main2")
    b.switch()
    a.switch()
    b.switch()
    assert a.switch() == "a"
    assert b.switch() == "b"
    assert VAR.get() == "main2"
    assert sorted(set(log)) == [("a", "a"), ("b", "b")]
    assert len(log) == 6


def test_gr_context_of_suspended_and_dead_greenlets():
    main = getcurrent()

    def run():
        VAR.set("g value")
        main.switch()
        return VAR.get()

    g = RawGreenlet(run)
    assert g.gr_context is None           # unstarted
    g.switch()
    ctx = g.gr_context                    # suspended
    assert isinstance(ctx, contextvars.Context)
    assert ctx[VAR] == "g value"
    # Replace the suspended greenlet's context; it resumes with the new one.
    new_ctx = contextvars.Context()
    new_ctx.run(VAR.set, "replaced")
    g.gr_context = new_ctx
    assert g.gr_context is new_ctx
    assert g.switch() == "replaced"
    # The context can still be read and set after death.
    assert g.dead
    assert g.gr_context is new_ctx
    g.gr_context = None
    assert g.gr_context is None
    other = contextvars.copy_context()
    g.gr_context = other
    assert g.gr_context is other


def test_gr_context_preset_on_unstarted_greenlet_is_used():
    ctx = contextvars.Context()
    ctx.run(VAR.set, "preset")
    g = RawGreenlet(lambda: (VAR.get(), getcurrent().gr_context))
    g.gr_context = ctx
    value, seen_ctx = g.switch()
    assert value == "preset"
    assert seen_ctx is ctx


def test_gr_context_of_current_greenlet():
    main = getcurrent()
    VAR.set("before")
    current_ctx = main.gr_context
    assert isinstance(current_ctx, contextvars.Context)
    assert current_ctx[VAR] == "before"

    replacement = contextvars.Context()
    main.gr_context = replacement
    try:
        assert main.gr_context is replacement
        assert VAR.get() == "default"
        VAR.set("in replacement")
        assert replacement[VAR] == "in replacement"
    finally:
        main.gr_context = current_ctx
    assert VAR.get() == "before"

    def run():
        me = getcurrent()
        c = contextvars.Context()
        me.gr_context = c
        VAR.set("set through current")
        return me.gr_context is c, c[VAR]

    assert RawGreenlet(run).switch() == (True, "set through current")


def test_setting_current_context_to_none():
    main = getcurrent()
    saved = main.gr_context
    VAR.set("x")
    main.gr_context = None
    try:
        assert VAR.get() == "default"
    finally:
        main.gr_context = saved
    assert VAR.get() == "x"


def test_context_run_inside_greenlet_across_switch():
    main = getcurrent()
    VAR.set("main")
    inner = contextvars.Context()

    def in_context():
        VAR.set("inside ctx.run")
        main.switch("switched out of ctx.run")
        return VAR.get()

    def run():
        result = inner.run(in_context)
        return result, VAR.get()

    g = RawGreenlet(run)
    assert g.switch() == "switched out of ctx.run"
    assert VAR.get() == "main"
    assert g.switch() == ("inside ctx.run", "default")
    assert inner[VAR] == "inside ctx.run"


def test_copy_context_in_greenlet_sees_own_values():
    def run():
        VAR.set("own")
        return contextvars.copy_context()

    ctx = RawGreenlet(run).switch()
    assert ctx[VAR] == "own"
    assert VAR.get() == "default"


def test_same_context_shared_by_two_greenlets_sequentially():
    shared = contextvars.Context()
    main = getcurrent()

    def setter():
        VAR.set("from setter")
        main.switch()

    a = RawGreenlet(setter)
    a.gr_context = shared
    a.switch()
    b = RawGreenlet(VAR.get)
    b.gr_context = shared
    # `shared` is not entered by a suspended greenlet, so b can use it
    assert b.switch() == "from setter"
    a.switch()
