#!/usr/bin/env python3
"""Timings of the greenlet API, run with pyperf.

Works with any greenlet: upstream's or greenlet-rs, whichever the running
interpreter imports. `benchmarks/compare.py` runs it for both and prints a
table; on its own it is an ordinary pyperf script:

    python benchmarks/bench_greenlet.py                  # every benchmark (slow:
                                                         # pyperf's 20 processes each)
    python benchmarks/bench_greenlet.py --bench chain    # one (repeatable)
    python benchmarks/bench_greenlet.py --list           # ids and names
    python benchmarks/bench_greenlet.py --fast -o out.json

plus any other pyperf option (`--help` lists them). `--quick` shrinks every
workload and runs one value in one process: it only checks that everything
runs, its numbers mean little.

Each value is the time of one operation (the benchmark's "per" column in
BENCHMARKS), except for the 100k-greenlet workloads (chain, read frames),
whose value is the time of the whole workload, as upstream's chain.py
reports them.

This module imports neither pyperf nor greenlet at import time, so that
compare.py can read BENCHMARKS from any interpreter.
"""

import argparse
import os
import sys
from time import perf_counter as _now  # what pyperf.perf_counter is

# How many greenlets the 100k workloads use (--quick divides by 10).
GREENLET_COUNT = 100_000
# Switches per greenlet per loop in the switch benchmarks.
SWITCHES = 10_000
# Python frames on the stack of both greenlets in the deep switch benchmarks.
DEEP, DEEPER = 200, 400
# Nested sorted(key=...) calls under the switch in the C-frames benchmark.
# One level is about 10 real C frames on CPython 3.11 (builtin_sorted,
# list_sort, the key call, _PyEval_EvalFrameDefault, ... as gdb shows them),
# so 10 levels put about 100 C frames, roughly 50 KB of C stack, under it.
SORTED_LEVELS = 10
# Python frames a greenlet is parked under in kill_deep and memory.py's rss_deep,
# and how many of them one loop of kill_deep drops.
KILL_DEPTH = 20
KILL_BATCH = 100
# The depth sweep switch_c_depth_N: N C frames (N // 10 sorted() levels) under
# both greenlets. 1000 C frames are 100 levels, about 500 KB of C stack (5 KB
# a level on 3.11-3.13), which fits the default 1 MiB dedicated stack, its C
# recursion budget on 3.12/3.13 and the default recursion limit (200 Python
# frames). Sliced, one switch there copies ~500 KB, so that benchmark does a
# tenth of the switches per loop.
C_DEPTHS = (0, 10, 100, 1000)
# The hub round robin: a hub greenlet switches to HUB_WORKERS workers in
# turn, each parked HUB_LEVELS sorted() levels (~10 C frames) deep, as
# gevent's hub does with greenlets blocked in I/O.
HUB_WORKERS = 100
HUB_LEVELS = 1
HUB_ROUNDS = 50
# Greenlets alive at once while the pool is warmed (the dedicated-stack pool
# keeps up to 64 free stacks per thread).
WARM_POOL = 64


class _Ping(Exception):
    """Thrown into a greenlet that catches it and waits again."""


# ---------------------------------------------------------------- helpers


def python_depth(depth, fn):
    """Call fn() under `depth` extra Python frames."""
    if not depth:
        return fn()
    return python_depth(depth - 1, fn)


def c_depth(levels, fn):
    """Call fn() under `levels` nested sorted(key=...) calls (C frames)."""
    if not levels:
        return fn()
    # sorted() computes the key of its single item, which recurses; every
    # level re-enters the eval loop from C, so it costs C stack.
    return sorted((levels,), key=lambda _: c_depth(levels - 1, fn))[0]


# ---------------------------------------------------------------- benchmarks
#
# Every function takes pyperf's loop count and returns the elapsed seconds
# for that many loops; the work it times per loop is `inner` operations.


def bm_create(loops, scale):
    from greenlet import greenlet

    t0 = _now()
    for _ in range(loops):
        # Ten per loop, unrolled so the loop itself costs little.
        greenlet()
        greenlet()
        greenlet()
        greenlet()
        greenlet()
        greenlet()
        greenlet()
        greenlet()
        greenlet()
        greenlet()
    return _now() - t0


def _ping_pong(loops, switches, under):
    """Two greenlets switch to each other `switches` times each per loop.

    Each one first goes under(fn), Python or C frames deep, and parks there;
    only the switching that follows is timed, so every timed switch has
    that stack beneath both sides.
    """
    from greenlet import greenlet, getcurrent

    def body():
        me = getcurrent()
        me.parent.switch()  # parked, at depth
        switch = other_of[me].switch
        for _ in range(switches):
            switch()

    elapsed = 0.0
    for _ in range(loops):
        a = greenlet(lambda: under(body))
        b = greenlet(lambda: under(body))
        other_of = {a: b, b: a}
        a.switch()
        b.switch()
        t0 = _now()
        # a switches to b, b back to a, ...; after its last turn a ends and
        # we resume here. b is left in its last switch.
        a.switch()
        elapsed += _now() - t0
        b.switch()  # let b end too, outside the timing
        assert a.dead and b.dead
    return elapsed


def bm_switch_shallow(loops, scale):
    return _ping_pong(loops, SWITCHES // scale, lambda fn: fn())


def bm_switch_deep(loops, scale):
    return _ping_pong(loops, SWITCHES // scale, lambda fn: python_depth(DEEP, fn))


def bm_switch_deeper(loops, scale):
    return _ping_pong(loops, SWITCHES // scale, lambda fn: python_depth(DEEPER, fn))


def bm_switch_c_frames(loops, scale):
    return _ping_pong(loops, SWITCHES // scale, lambda fn: c_depth(SORTED_LEVELS, fn))


def _ping_pong_switches_only(loops, switches, under):
    """As _ping_pong, but the timing stops in the first greenlet right after its
    last switch, so it holds the switches only: not the unwinding of its stack
    nor its end (which, dedicated, returns a deep stack to the pool)."""
    from greenlet import greenlet, getcurrent

    ends = []

    def body():
        me = getcurrent()
        me.parent.switch()  # parked, at depth
        switch = other_of[me].switch
        for _ in range(switches):
            switch()
        if me is a:
            ends.append(_now())

    elapsed = 0.0
    for _ in range(loops):
        a = greenlet(lambda: under(body))
        b = greenlet(lambda: under(body))
        other_of = {a: b, b: a}
        a.switch()
        b.switch()
        t0 = _now()
        a.switch()
        elapsed += ends.pop() - t0
        b.switch()
        assert a.dead and b.dead
    return elapsed


def _c_depth_bench(frames):
    levels = frames // 10
    per_loop = SWITCHES // (10 if frames >= 1000 else 1)

    def bm(loops, scale):
        return _ping_pong_switches_only(
            loops, per_loop // scale, lambda fn: c_depth(levels, fn))
    return bm, (lambda scale: 2 * (per_loop // scale))


def bm_hub_round_robin(loops, scale):
    """A hub switches to each of HUB_WORKERS workers in turn; each switches back.

    The workers are the hub's children and each waits HUB_LEVELS sorted()
    levels deep, as greenlets blocked in I/O wait under gevent's hub. Only
    the hub's rounds are timed.
    """
    from greenlet import greenlet, getcurrent

    rounds = max(1, HUB_ROUNDS // scale)
    stop = []

    def worker():
        def wait():
            back = hub.switch
            while not stop:
                back()
        c_depth(HUB_LEVELS, wait)

    def run_hub():
        workers = [greenlet(worker) for _ in range(HUB_WORKERS)]
        for w in workers:
            w.switch()  # parked, at depth
        elapsed = 0.0
        for _ in range(loops):
            t0 = _now()
            for _ in range(rounds):
                for w in workers:
                    w.switch()
            elapsed += _now() - t0
        stop.append(True)
        for w in workers:
            w.switch()
            assert w.dead
        return elapsed

    hub = greenlet(run_hub)
    assert getcurrent() is not hub
    return hub.switch()


def bm_spawn_finish_warm(loops, scale):
    """create + start + finish, after WARM_POOL greenlets were alive at once.

    Dedicated: their stacks went back to the thread's pool, so every timed
    greenlet starts on a stack from the pool (no mmap). Sliced: the same
    workload as spawn_finish.
    """
    from greenlet import greenlet, getcurrent

    def park():
        getcurrent().parent.switch()

    warm = [greenlet(park) for _ in range(WARM_POOL)]
    for g in warm:
        g.switch()
    for g in warm:
        g.switch()
        assert g.dead
    del warm
    return bm_spawn_finish(loops, scale)


def bm_getcurrent(loops, scale):
    from greenlet import getcurrent

    getcurrent()  # the main greenlet exists before the timing starts
    t0 = _now()
    for _ in range(loops):
        getcurrent()
        getcurrent()
        getcurrent()
        getcurrent()
        getcurrent()
        getcurrent()
        getcurrent()
        getcurrent()
        getcurrent()
        getcurrent()
    return _now() - t0


def bm_chain(loops, scale):
    from greenlet import greenlet, getcurrent

    # A closure over getcurrent, as cheap as upstream chain.py's module-level
    # `greenlet.getcurrent()` lookup. (An `import` statement in the link's body
    # would add the import system's ~0.7 us per link to both sides.)
    def _chain_link(previous):
        # Wait for the value, add one, hand it on to the link made before us.
        value = getcurrent().parent.switch()
        previous.switch(value + 1)

    count = GREENLET_COUNT // scale
    t0 = _now()
    for _ in range(loops):
        # Each new link is started right away and parks in its first
        # switch, holding the link made before it; the first link holds us.
        last = getcurrent()
        for _ in range(count):
            link = greenlet(_chain_link)
            link.switch(last)
            last = link
        # Send 0 in at the newest end; it comes out at us, counted.
        result = last.switch(0)
        assert result == count, result
    return _now() - t0


def _noop():
    pass


def bm_spawn_finish(loops, scale):
    from greenlet import greenlet

    t0 = _now()
    for _ in range(loops):
        # Create, start, run to the end, back to us; ten per loop.
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
        greenlet(_noop).switch()
    return _now() - t0


def _catcher():
    from greenlet import getcurrent

    back = getcurrent().parent.switch
    while True:
        try:
            back()
        except _Ping:
            pass


def bm_throw(loops, scale):
    from greenlet import GreenletExit, greenlet

    target = greenlet(_catcher)
    target.switch()  # now suspended in its first back()
    throw = target.throw
    t0 = _now()
    for _ in range(loops):
        # Switch in raising _Ping, which it catches, and back out.
        throw(_Ping)
    elapsed = _now() - t0
    # GreenletExit is not caught: it ends the target.
    assert isinstance(target.throw(GreenletExit), GreenletExit)
    assert target.dead
    return elapsed


def _read_frames(loops, scale, depth):
    from greenlet import greenlet, getcurrent

    def park():
        me = getcurrent()
        me.parent.switch(me)

    count = GREENLET_COUNT // scale
    t0 = _now()
    for _ in range(loops):
        for _ in range(count):
            g = greenlet(python_depth)
            g.switch(depth, park)  # parks `depth` Python frames deep
            frames = 0
            f = g.gr_frame
            while f is not None:
                frames += 1
                f = f.f_back
            # park, `depth` python_depth frames; nothing below the greenlet.
            assert frames == depth + 2, frames
            g.switch()  # let it finish, so 100k don't pile up
    return _now() - t0


def bm_read_frames_2(loops, scale):
    return _read_frames(loops, scale, 2)


def bm_read_frames_20(loops, scale):
    return _read_frames(loops, scale, 20)


def bm_read_frames_200(loops, scale):
    return _read_frames(loops, scale, 200)


def bm_kill_deep(loops, scale):
    """Dropping the last reference to a greenlet parked KILL_DEPTH frames deep.

    The greenlet is killed: GreenletExit is raised in it, unwinds its frames,
    and it switches back to the dropper. The greenlets are made outside the
    timing, KILL_BATCH per loop.
    """
    from greenlet import greenlet, getcurrent

    def park():
        getcurrent().parent.switch()

    elapsed = 0.0
    for _ in range(loops):
        batch = []
        for _ in range(KILL_BATCH):
            g = greenlet(python_depth)
            g.switch(KILL_DEPTH, park)
            batch.append(g)
        g = None
        t0 = _now()
        del batch[:]
        elapsed += _now() - t0
    return elapsed


_PARKED = []


def bm_gc_collect(loops, scale):
    """One full collection (gc.collect()) with 100k suspended greenlets alive.

    The pause a server with that many greenlets sees: the collector
    traverses every suspended greenlet. They are made once per process,
    outside the timing, and stay parked in their first switch for the
    benchmark's later values.
    """
    import gc
    from greenlet import greenlet, getcurrent

    def park():
        getcurrent().parent.switch()

    count = GREENLET_COUNT // scale
    if len(_PARKED) != count:
        del _PARKED[:]
        for _ in range(count):
            g = greenlet(park)
            g.switch()
            _PARKED.append(g)
    gc.collect()
    t0 = _now()
    for _ in range(loops):
        gc.collect()
    return _now() - t0


# ---------------------------------------------------------------- the table


class Bench:
    """One benchmark: an id for the command line, a pyperf name, a function.

    `inner` is how many operations one loop does (pyperf divides by it);
    `heavy` marks workloads of a second or more per loop, which get fewer
    processes and values than pyperf's defaults.
    """

    def __init__(self, id, name, func, inner=1, per="op", heavy=False):
        self.id = id
        self.name = name
        self.func = func
        self.inner = inner
        self.per = per
        self.heavy = heavy

    def display_name(self, scale):
        return self.name.format(n=GREENLET_COUNT // scale)

    def inner_loops(self, scale):
        return self.inner(scale) if callable(self.inner) else self.inner


def _two_way(scale):
    # Both greenlets switch SWITCHES times: two one-way switches per turn.
    return 2 * (SWITCHES // scale)


BENCHMARKS = [
    Bench("create", "create a greenlet", bm_create, inner=10, per="greenlet()"),
    Bench("switch_shallow", "switch (shallow)", bm_switch_shallow,
          inner=_two_way, per="one-way switch"),
    Bench("switch_deep", f"switch ({DEEP} Python frames deep)", bm_switch_deep,
          inner=_two_way, per="one-way switch"),
    Bench("switch_deeper", f"switch ({DEEPER} Python frames deep)", bm_switch_deeper,
          inner=_two_way, per="one-way switch"),
    Bench("switch_c_frames", f"switch (under {SORTED_LEVELS} sorted() ~ 100 C frames)",
          bm_switch_c_frames, inner=_two_way, per="one-way switch"),
    Bench("getcurrent", "getcurrent", bm_getcurrent, inner=10, per="getcurrent()"),
    Bench("chain", "chain({n})", bm_chain, per="whole chain", heavy=True),
    Bench("spawn_finish", "create + start + finish", bm_spawn_finish, inner=10,
          per="greenlet"),
    Bench("throw", "throw into a suspended greenlet", bm_throw,
          per="throw and switch back"),
    Bench("read_frames_2", "read 2 nested frames x {n}", bm_read_frames_2,
          per="whole workload", heavy=True),
    Bench("read_frames_20", "read 20 nested frames x {n}", bm_read_frames_20,
          per="whole workload", heavy=True),
    Bench("read_frames_200", "read 200 nested frames x {n}", bm_read_frames_200,
          per="whole workload", heavy=True),
    Bench("kill_deep", f"kill a greenlet {KILL_DEPTH} frames deep", bm_kill_deep,
          inner=KILL_BATCH, per="dropped greenlet"),
    Bench("gc_collect", "gc.collect() with {n} suspended greenlets", bm_gc_collect,
          per="full collection"),
]
for _frames in C_DEPTHS:
    _func, _inner = _c_depth_bench(_frames)
    BENCHMARKS.append(Bench(
        f"switch_c_depth_{_frames}",
        f"switch under {_frames} C frames ({_frames // 10} sorted())",
        _func, inner=_inner, per="one-way switch"))
BENCHMARKS += [
    Bench("hub_round_robin",
          f"hub round robin, {HUB_WORKERS} workers {HUB_LEVELS} sorted() deep",
          bm_hub_round_robin,
          inner=lambda scale: 2 * HUB_WORKERS * max(1, HUB_ROUNDS // scale),
          per="one-way switch"),
    Bench("spawn_finish_warm", f"create + start + finish (warm pool, {WARM_POOL})",
          bm_spawn_finish_warm, inner=10, per="greenlet"),
]
BY_ID = {b.id: b for b in BENCHMARKS}

# pyperf settings: (processes, values). pyperf's own default is (20, 3),
# and --fast halves it; the heavy workloads would take minutes with that.
LIGHT, LIGHT_FAST = (20, 3), (10, 2)
HEAVY, HEAVY_FAST = (6, 2), (3, 2)


def settings(bench, fast=False):
    if bench.heavy:
        return HEAVY_FAST if fast else HEAVY
    return LIGHT_FAST if fast else LIGHT


# ---------------------------------------------------------------- main


def _own_args(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--bench", action="append", choices=sorted(BY_ID), default=[])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--expect-stacks")
    return p.parse_known_args(argv)[0]


def stack_mode():
    """'dedicated' if a new greenlet gets a stack of its own, else 'sliced';
    'auto' under the auto policy (which starts every kind of greenlet sliced
    and moves the kinds that copy much to stacks of their own).

    Asked of the greenlet actually imported (GREENLET_STACKS is read at
    import); upstream greenlet has no _stack_bounds and is always sliced.
    """
    import greenlet as greenlet_module
    from greenlet import greenlet, getcurrent
    from greenlet import _greenlet

    policy = getattr(greenlet_module, "get_stack_policy", lambda: None)()
    if policy is not None and policy.startswith("auto"):
        return "auto"
    bounds = getattr(_greenlet, "_stack_bounds", None)
    if bounds is None:
        return "sliced"
    g = greenlet(lambda: getcurrent().parent.switch())
    g.switch()
    mode = "sliced" if bounds(g) is None else "dedicated"
    g.switch()
    return mode


def check_stacks(expected):
    """Exit if this process does not run the stack mode its parent ran.

    pyperf starts its workers with a filtered environment: a worker that
    lost GREENLET_STACKS would silently measure the other mode.
    """
    if expected and stack_mode() != expected:
        sys.exit(f"bench: expected {expected} stacks, this process runs {stack_mode()} "
                 f"(GREENLET_STACKS={os.environ.get('GREENLET_STACKS')!r}); pass "
                 f"--inherit-environ GREENLET_STACKS to pyperf")


def main():
    own = _own_args(sys.argv[1:])
    if own.list:
        for b in BENCHMARKS:
            print(f"{b.id:16} {b.display_name(1)}  [per {b.per}]")
        return

    import pyperf

    check_stacks(own.expect_stacks)
    mode = stack_mode()
    selected = [BY_ID[i] for i in own.bench] or BENCHMARKS
    scale = 10 if own.quick else 1
    kwargs = {}
    if own.quick:
        kwargs = dict(processes=1, values=1, warmups=1, min_time=0.01)
    elif len(selected) == 1:
        # One benchmark per run (what compare.py does): its own defaults.
        # --processes/--values on the command line still win.
        kwargs = dict(zip(("processes", "values"), settings(selected[0])))

    def pass_on(cmd, args):
        # pyperf workers are new processes running this script: tell them
        # what the parent was told.
        for b in args.bench:
            cmd.extend(("--bench", b))
        if args.quick:
            cmd.append("--quick")
        cmd.extend(("--expect-stacks", mode))

    runner = pyperf.Runner(add_cmdline_args=pass_on, **kwargs)
    runner.argparser.add_argument(
        "--bench", action="append", choices=sorted(BY_ID), default=[],
        help="run only this benchmark (repeatable); --list shows the ids")
    runner.argparser.add_argument(
        "--quick", action="store_true",
        help="tiny workloads, one value: checks that it runs, measures little")
    runner.argparser.add_argument(
        "--list", action="store_true", help="list the benchmarks and exit")
    runner.argparser.add_argument(
        "--expect-stacks", choices=("sliced", "dedicated", "auto"),
        help="exit unless greenlets run in this stack mode (GREENLET_STACKS)")
    runner.metadata["greenlet_impl"] = _implementation()
    runner.metadata["greenlet_stacks"] = mode

    for b in selected:
        runner.bench_time_func(
            b.display_name(scale),
            b.func,
            scale,
            inner_loops=b.inner_loops(scale),
        )


def _implementation():
    import greenlet

    impl = getattr(greenlet, "__implementation__", "greenlet")
    return f"{impl} {greenlet.__version__}"


if __name__ == "__main__":
    main()
