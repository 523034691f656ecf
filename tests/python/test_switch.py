"""Switching semantics: argument packing, return values, parents, dead targets,
deep Python and C stacks, many suspended greenlets, generators."""
import gc
import random
import traceback
import weakref

import pytest

import greenlet
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet


# ---------------------------------------------------------------------------
# Argument packing


def _echo_once():
    """A greenlet that hands back whatever the *second* switch delivers."""
    main = getcurrent()

    def run():
        return main.switch("started")

    g = RawGreenlet(run)
    assert g.switch() == "started"
    return g


@pytest.mark.parametrize("args, kwargs, expected", [
    ((), {}, ()),
    ((1,), {}, 1),
    ((None,), {}, None),
    (((),), {}, ()),
    (((1,),), {}, (1,)),
    ((1, 2), {}, (1, 2)),
    ((), {"a": 1}, {"a": 1}),
    ((1,), {"a": 1}, ((1,), {"a": 1})),
    ((1, 2), {"a": 1, "b": 2}, ((1, 2), {"a": 1, "b": 2})),
])
def test_switch_packing_into_suspended(args, kwargs, expected):
    g = _echo_once()
    # The greenlet returns the packed value, which its parent receives.
    assert g.switch(*args, **kwargs) == expected
    assert g.dead


def test_switch_with_empty_kwargs_dict_is_positional_packing():
    g = _echo_once()
    result = g.switch(*(5,), **{})
    assert result == 5
    g = _echo_once()
    result = g.switch(**{})
    assert result == ()


def test_first_switch_calls_run_with_args_and_kwargs():
    seen = []

    def run(*args, **kwargs):
        seen.append((args, kwargs))
        return "done"

    assert RawGreenlet(run).switch() == "done"
    assert RawGreenlet(run).switch(1, 2) == "done"
    assert RawGreenlet(run).switch(1, x=2) == "done"
    assert RawGreenlet(run).switch(x=2) == "done"
    assert seen == [((), {}), ((1, 2), {}), ((1,), {"x": 2}), ((), {"x": 2})]


def test_first_switch_with_wrong_arguments_raises_in_caller():
    def run(a):
        return a

    g = RawGreenlet(run)
    with pytest.raises(TypeError):
        g.switch(1, 2)
    assert g.dead
    assert not g


@pytest.mark.parametrize("value", [None, 0, "s", (1,), (), (1, 2), [1], {"k": 1}])
def test_return_value_of_run_reaches_parent_unchanged(value):
    g = RawGreenlet(lambda: value)
    assert g.switch() is value
    assert g.dead


def test_switch_to_self_returns_packed_args_immediately():
    main = getcurrent()
    assert main.switch() == ()
    assert main.switch(1) == 1
    assert main.switch(1, 2) == (1, 2)
    assert main.switch(a=1) == {"a": 1}
    assert main.switch(1, a=1) == ((1,), {"a": 1})

    def run():
        me = getcurrent()
        return me.switch("to self") + "!"

    assert RawGreenlet(run).switch() == "to self!"


def test_ping_pong_between_two_greenlets():
    log = []

    def ping(n):
        for i in range(n):
            log.append(("ping", i))
            pong.switch(i)
        return "ping done"

    def pong(i):
        while True:
            log.append(("pong", i))
            i = ping_g.switch()

    ping_g = RawGreenlet(ping)
    pong = RawGreenlet(pong)
    assert ping_g.switch(3) == "ping done"
    assert log == [("ping", 0), ("pong", 0), ("ping", 1), ("pong", 1),
                   ("ping", 2), ("pong", 2)]
    assert ping_g.dead
    assert not pong.dead  # still suspended inside its loop
    # Kill it explicitly; GreenletExit comes back as a value.
    result = pong.throw()
    assert isinstance(result, greenlet.GreenletExit)
    assert pong.dead


def test_value_round_trip_many_times():
    main = getcurrent()

    def run(x):
        while True:
            x = main.switch(x * 2)

    g = RawGreenlet(run)
    values = [g.switch(1)] + [g.switch(i) for i in range(2, 200)]
    assert values == [i * 2 for i in range(1, 200)]
    g.throw()
    assert g.dead


# ---------------------------------------------------------------------------
# Parents


def test_default_parent_is_greenlet_current_at_construction():
    main = getcurrent()

    def outer():
        inner = RawGreenlet(lambda: "inner result")
        assert inner.parent is getcurrent()
        return ("outer got", inner.switch())

    g = RawGreenlet(outer)
    assert g.parent is main
    assert g.switch() == ("outer got", "inner result")


def test_finished_greenlet_returns_to_parent_not_to_switcher():
    main = getcurrent()
    log = []

    def child():
        log.append("child runs")
        return "child value"

    def other():
        c = RawGreenlet(child, parent=main)
        # c's parent is main, so c's return value goes to main, not here.
        c.switch()
        log.append("never reached")  # pragma: no cover

    o = RawGreenlet(other)
    assert o.switch() == "child value"
    assert log == ["child runs"]
    assert not o.dead
    o.throw()
    assert o.dead


def test_reparenting_changes_where_results_go():
    main = getcurrent()
    collector = []

    def collector_run():
        while True:
            collector.append(main.switch("collector ready"))

    c = RawGreenlet(collector_run)
    assert c.switch() == "collector ready"
    g = RawGreenlet(lambda: "from g")
    g.parent = c
    assert g.parent is c
    # g finishes and its result is delivered to c, which hands control back.
    assert g.switch() == "collector ready"
    assert collector == ["from g"]
    c.throw()


def test_exception_propagates_along_parent_chain():
    def level2():
        raise KeyError("deep")

    def level1():
        g2 = RawGreenlet(level2)
        g2.switch()
        return "not reached"  # pragma: no cover

    g1 = RawGreenlet(level1)
    with pytest.raises(KeyError) as info:
        g1.switch()
    assert info.value.args == ("deep",)
    assert g1.dead


def test_exception_in_run_has_full_traceback():
    def helper_that_raises():
        raise RuntimeError("from helper")

    def run_function():
        helper_that_raises()

    g = RawGreenlet(run_function)
    with pytest.raises(RuntimeError) as info:
        g.switch()
    names = [entry.name for entry in traceback.extract_tb(info.value.__traceback__)]
    # The traceback continues from the parent's switch() call into run.
    assert names[-2:] == ["run_function", "helper_that_raises"]
    assert names[0] == "test_exception_in_run_has_full_traceback"
    assert info.value.__context__ is None
    assert g.dead


def test_exception_from_suspended_greenlet_after_resume_has_its_frames():
    main = getcurrent()

    def worker():
        main.switch("parked")
        raise ValueError("after resume")

    g = RawGreenlet(worker)
    assert g.switch() == "parked"
    with pytest.raises(ValueError) as info:
        g.switch()
    names = [entry.name for entry in traceback.extract_tb(info.value.__traceback__)]
    assert names[-1] == "worker"


# ---------------------------------------------------------------------------
# Dead greenlets


def test_switch_to_dead_greenlet_from_its_parent_returns_args():
    g = RawGreenlet(lambda: None)
    g.switch()
    assert g.dead
    assert g.switch(7) == 7
    assert g.switch() == ()
    assert g.switch(1, 2) == (1, 2)
    assert g.switch(k=1) == {"k": 1}


def test_switch_to_dead_greenlet_goes_to_its_parent():
    main = getcurrent()
    dead = RawGreenlet(lambda: None)
    dead.switch()

    def other():
        # dead's parent is main, so the value lands in main's pending switch.
        back = dead.switch("via dead")
        return ("other resumed with", back)

    o = RawGreenlet(other)
    assert o.switch() == "via dead"
    assert o.switch("hello") == ("other resumed with", "hello")
    assert main is getcurrent()


def test_switch_to_dead_greenlet_starts_unstarted_parent():
    seen = []

    def parent_run(*args):
        seen.append(args)
        return "parent finished"

    p = RawGreenlet(parent_run)
    child = RawGreenlet(lambda: None)
    child.switch()            # child dies; its parent is still main
    child.parent = p          # now an unstarted ancestor
    assert child.switch(1, 2) == "parent finished"
    assert seen == [(1, 2)]
    assert p.dead


def test_bool_and_dead_through_lifecycle():
    main = getcurrent()
    states = []

    def run():
        me = getcurrent()
        states.append(("running", bool(me), me.dead))
        main.switch()

    g = RawGreenlet(run)
    states.append(("new", bool(g), g.dead))
    g.switch()
    states.append(("suspended", bool(g), g.dead))
    g.switch()
    states.append(("finished", bool(g), g.dead))
    assert states == [
        ("new", False, False),
        ("running", True, False),
        ("suspended", True, False),
        ("finished", False, True),
    ]
    assert bool(main) and not main.dead


# ---------------------------------------------------------------------------
# Deep stacks


def _recurse_then_switch(depth, main, tag):
    if depth == 0:
        value = main.switch(tag)
        return value
    local_marker = (tag, depth)  # must survive the stack being copied away
    result = _recurse_then_switch(depth - 1, main, tag)
    assert local_marker == (tag, depth)
    return result + 1


def test_deep_python_stacks_survive_interleaving():
    main = getcurrent()
    depths = [10, 150, 40, 300, 1]
    gs = [RawGreenlet(_recurse_then_switch) for _ in depths]
    for i, (g, depth) in enumerate(zip(gs, depths)):
        assert g.switch(depth, main, "g%d" % i) == "g%d" % i
    # Resume in a different order than started; each finishes with v + depth.
    for i in [3, 0, 4, 2, 1]:
        assert gs[i].switch(1000 * i) == 1000 * i + depths[i]
        assert gs[i].dead


def test_switch_inside_nested_c_calls_sorted_key():
    """A greenlet suspended ~100 C (sorted) frames deep resumes correctly."""
    main = getcurrent()
    depth = 100

    def nested(n, tag):
        if n == 0:
            return main.switch(("bottom", tag))
        results = []

        def key(x):
            results.append(nested(n - 1, tag) + 1)
            return -x

        assert sorted([n], key=key) == [n]
        assert len(results) == 1
        return results[0]

    gs = [RawGreenlet(nested) for _ in range(3)]
    for i, g in enumerate(gs):
        assert g.switch(depth, i) == ("bottom", i)
    # Walk the suspended stack: frames alternate nested/key through sorted().
    frame = gs[0].gr_frame
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    assert names[0] == "nested"
    assert names.count("key") == depth
    assert names.count("nested") == depth + 1
    assert names[-1] == "nested"
    # An unrelated greenlet that uses lots of stack in between.
    assert RawGreenlet(_recurse_then_switch).switch(200, main, "x") == "x"
    for i in [2, 0, 1]:
        assert gs[i].switch(10 * i) == 10 * i + depth
        assert gs[i].dead


def test_suspended_stack_frames_have_correct_locals():
    main = getcurrent()

    def recurse(v):
        if v > 0:
            return v * _call(lambda: recurse(v - 1))
        return main.switch("deep")

    def _call(f):
        # a C-level call layer (map is implemented in C)
        return list(map(lambda _: f(), [None]))[0]

    g = RawGreenlet(recurse)
    assert g.switch(5) == "deep"
    frame = g.gr_frame
    seen = []
    while frame is not None:
        if frame.f_code.co_name == "recurse":
            seen.append(frame.f_locals["v"])
        frame = frame.f_back
    assert seen == [0, 1, 2, 3, 4, 5]
    assert g.switch(10) == 1200  # 5! * 10


def test_ten_thousand_suspended_greenlets_resumed_in_random_order():
    main = getcurrent()
    count = 10000

    def run(i):
        received = main.switch(("ready", i))
        return (i, received * 3 + i)

    gs = []
    for i in range(count):
        g = RawGreenlet(run)
        assert g.switch(i) == ("ready", i)
        gs.append(g)
    assert all(g and not g.dead for g in gs)
    order = list(range(count))
    random.Random(20260914).shuffle(order)
    for i in order:
        assert gs[i].switch(i + 7) == (i, (i + 7) * 3 + i)
    assert all(g.dead for g in gs)


def test_chain_of_greenlets_passing_values():
    def link(prev_value):
        return prev_value + 1

    value = 0
    for _ in range(1000):
        value = RawGreenlet(link).switch(value)
    assert value == 1000

    # A true chain: each greenlet is the parent of the next.
    def start(n):
        if n == 0:
            return 0
        child = RawGreenlet(start)
        return child.switch(n - 1) + 1

    assert RawGreenlet(start).switch(300) == 300


# ---------------------------------------------------------------------------
# Switching from __del__ and weakref callbacks during garbage collection


class _Echo:
    """A long-lived greenlet that records messages and switches back to
    whichever greenlet sent them."""

    def __init__(self):
        self.log = []

        def run(caller, message):
            while True:
                self.log.append(message)
                caller, message = caller.switch(("ack", message))

        self.g = RawGreenlet(run)

    def send(self, message):
        return self.g.switch(getcurrent(), message)


def test_switch_inside_del_during_gc_collect():
    echo = _Echo()
    replies = []

    class Cyclic:
        def __init__(self, name):
            self.name = name
            self.me = self

        def __del__(self):
            replies.append(echo.send(self.name))

    gc.collect()
    for i in range(5):
        Cyclic("obj%d" % i)
    gc.collect()
    assert sorted(echo.log) == ["obj%d" % i for i in range(5)]
    assert sorted(replies) == [("ack", "obj%d" % i) for i in range(5)]

    # Now collect from inside a non-main greenlet.
    def collector():
        for i in range(3):
            Cyclic("inner%d" % i)
        gc.collect()
        return "collected"

    assert RawGreenlet(collector).switch() == "collected"
    assert sorted(x for x in echo.log if x.startswith("inner")) == [
        "inner0", "inner1", "inner2"]
    echo.g.throw()
    assert echo.g.dead


def test_switch_inside_weakref_callback_during_gc_collect():
    echo = _Echo()
    replies = []

    class Node:
        pass

    refs = []
    for i in range(4):
        n = Node()
        n.cycle = n
        refs.append(weakref.ref(n, lambda r, i=i: replies.append(echo.send("wr%d" % i))))
        del n
    gc.collect()
    assert sorted(echo.log) == ["wr0", "wr1", "wr2", "wr3"]
    assert sorted(replies) == [("ack", "wr%d" % i) for i in range(4)]
    assert all(r() is None for r in refs)
    echo.g.throw()


def test_automatic_gc_with_switching_finalizers_while_switching():
    """Automatic collections triggered in the middle of switches run
    finalizers that themselves switch (the 3.11 GC hazard)."""
    echo = _Echo()
    finalized = []

    class Cyclic:
        def __init__(self, n):
            self.n = n
            self.me = self

        def __del__(self):
            echo.send(self.n)
            finalized.append(self.n)

    main = getcurrent()

    def worker():
        x = 0
        while x < 400:
            Cyclic(("w", x))
            x = main.switch(x) + 1
        return "worker done"

    old = gc.get_threshold()
    gc.collect()
    try:
        gc.set_threshold(7, 1, 1)
        w = RawGreenlet(worker)
        value = w.switch()
        while not w.dead:
            Cyclic(("m", value))
            value = w.switch(value)
        assert value == "worker done"
    finally:
        gc.set_threshold(*old)
    gc.collect()
    assert len(finalized) == len(echo.log) == 800
    assert sorted(finalized) == sorted(
        [("w", i) for i in range(400)] + [("m", i) for i in range(400)])
    assert sorted(finalized) == sorted(echo.log)
    echo.g.throw()


# ---------------------------------------------------------------------------
# Generators and greenlets


def test_generator_iterated_across_greenlets():
    def gen():
        for i in range(6):
            yield i

    it = gen()
    main = getcurrent()

    def consumer():
        got = [next(it), next(it)]
        main.switch(got)
        got.append(next(it))
        return got

    g = RawGreenlet(consumer)
    assert g.switch() == [0, 1]
    assert next(it) == 2  # main continues the same generator
    assert g.switch() == [0, 1, 3]
    assert list(it) == [4, 5]


def test_generator_body_switches_greenlets():
    main = getcurrent()

    def gen():
        for i in range(3):
            reply = main.switch(("gen at", i))
            yield (i, reply)

    def consumer():
        return list(gen())

    g = RawGreenlet(consumer)
    out = [g.switch()]
    while not g.dead:
        out.append(g.switch("r%d" % (len(out) - 1)))
    assert out == [("gen at", 0), ("gen at", 1), ("gen at", 2),
                   [(0, "r0"), (1, "r1"), (2, "r2")]]


def test_generator_running_in_suspended_greenlet_is_executing():
    main = getcurrent()

    def gen():
        main.switch("inside generator")
        yield "first"

    it = gen()
    g = RawGreenlet(lambda: next(it))
    assert g.switch() == "inside generator"
    with pytest.raises(ValueError, match="generator already executing"):
        next(it)
    assert g.switch() == "first"


def test_greenlet_based_generator():
    """The classic 'genlet': a generator implemented with greenlets."""

    class Genlet(RawGreenlet):
        def __init__(self, func, *args):
            super().__init__()
            self.func = func
            self.args = args

        def run(self):
            self.func(*self.args)

        def __iter__(self):
            return self

        def __next__(self):
            self.parent = getcurrent()
            result = self.switch()
            if self:
                return result
            raise StopIteration

    def produce(n):
        for i in range(n):
            getcurrent().parent.switch(i * i)

    def produce_nested(n):
        for i in range(n):
            for sq in Genlet(produce, i):
                getcurrent().parent.switch((i, sq))

    assert list(Genlet(produce, 5)) == [0, 1, 4, 9, 16]
    assert list(Genlet(produce_nested, 4)) == [
        (1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 4)]


def test_greenlet_switch_inside_generator_expression_and_comprehension():
    main = getcurrent()

    def run():
        squares = [main.switch(i) for i in range(4)]
        total = sum(main.switch(-i - 1) for i in range(3))
        return squares, total

    g = RawGreenlet(run)
    requests = [g.switch()]
    while True:
        value = requests[-1]
        result = g.switch(value * value if value >= 0 else 10)
        if g.dead:
            break
        requests.append(result)
    assert requests == [0, 1, 2, 3, -1, -2, -3]
    assert result == ([0, 1, 4, 9], 30)
