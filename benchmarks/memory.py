#!/usr/bin/env python3
"""Memory that suspended greenlets hold, for whichever greenlet is installed.

    python benchmarks/memory.py            # a small table
    python benchmarks/memory.py --json     # what compare.py reads
    python benchmarks/memory.py --quick    # 10x fewer greenlets, one repeat

Three metrics, each measured in a fresh child process (so that nothing
earlier in the process has grown or fragmented the heap) and repeated;
the median is reported:

  rss         resident memory added per suspended greenlet: RSS (from
              /proc/self/statm) before and after starting 100,000 greenlets
              that each park in their first switch, divided by 100,000.
              This is everything a greenlet costs: the object, its saved C
              stack, its frames and its slice of CPython's data stack.
  rss_deep    the same for greenlets that each park 20 Python frames deep
              (`python_depth`; the frames live in CPython's data stack on
              3.11+, and in the saved C stack and frame objects on 3.10).
  stack       bytes of C stack saved (`_stack_saved`) by an idle greenlet
              parked right at its start (no C frames of its own).
  stack_c     the same for a greenlet parked under the C frames of the
              switch_c_frames benchmark (10 nested sorted(key=...) calls).
  vmas        memory mappings (lines of /proc/self/maps) added by the
              100,000 greenlets of the rss metric: with GREENLET_STACKS=
              dedicated every greenlet maps a stack, and vm.max_map_count
              (65,530 by default) bounds the mappings of a process.
  dedicated   how many of those 100,000 greenlets run on a stack of their
              own (greenlet-rs' _greenlet._stack_bounds; 0 for upstream and
              for sliced mode). greenlet-rs starts a greenlet sliced when it
              cannot map a stack, so this says whether 100,000 dedicated
              greenlets can be alive at once on one thread.

With GREENLET_STACKS=dedicated in the environment the children run
greenlet-rs in that mode (compare.py --stacks does this).

Linux only (RSS comes from /proc).
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_greenlet import (  # noqa: E402
    GREENLET_COUNT, KILL_DEPTH, SORTED_LEVELS, c_depth, python_depth)

METRICS = {
    "rss": "memory per suspended greenlet (RSS)",
    "rss_deep": f"memory per greenlet {KILL_DEPTH} frames deep (RSS)",
    "stack": "C stack saved per idle greenlet",
    "stack_c": f"C stack saved, idle under {SORTED_LEVELS} sorted()",
    "vmas": "memory mappings added (/proc/self/maps)",
    "dedicated": "greenlets alive on a dedicated stack",
}
# The metrics compare.py shows when only one mode of ours runs.
BASIC = ("rss", "rss_deep", "stack", "stack_c")
# Metrics that are counts, not bytes.
UNITS = {"vmas": "mappings", "dedicated": "greenlets"}
# How many idle greenlets the _stack_saved medians are taken over.
STACK_SAMPLE = 1000


def _rss_bytes():
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _maps():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def _park():
    from greenlet import getcurrent

    getcurrent().parent.switch()


def _idle(count, under=None):
    """Start `count` greenlets that park in their first switch; return them.

    Afterwards one more greenlet runs to its end, so that the stack of the
    last parked one is saved too, like everybody else's.
    """
    from greenlet import greenlet

    run = _park if under is None else (lambda: under(_park))
    parked = []
    for _ in range(count):
        g = greenlet(run)
        g.switch()
        parked.append(g)
    greenlet(lambda: None).switch()
    return parked


def child(metric, count):
    import greenlet  # noqa: F401  (imported before the first RSS reading)

    if metric in ("rss", "rss_deep"):
        under = None
        if metric == "rss_deep":
            def under(fn):
                return python_depth(KILL_DEPTH, fn)
        # Warm up: the first greenlets allocate the thread state, the main
        # greenlet and the allocator's first pools (and the same workload's
        # steady state: greenlet-rs sizes data-stack root chunks by what
        # finished greenlets needed).
        for g in _idle(1000, under):
            g.throw()
        gc.collect()
        gc.disable()  # nothing below is garbage; keep collections out of it
        before = _rss_bytes()
        parked = _idle(count, under)
        after = _rss_bytes()
        assert len(parked) == count
        return (after - before) / count
    if metric in ("vmas", "dedicated"):
        from greenlet import _greenlet

        for g in _idle(1000):
            g.throw()
        before = _maps()
        parked = _idle(count)
        after = _maps()
        if metric == "vmas":
            return after - before
        bounds = getattr(_greenlet, "_stack_bounds", None)
        if bounds is None:
            return 0
        return sum(bounds(g) is not None for g in parked)
    if metric == "stack":
        parked = _idle(STACK_SAMPLE)
    elif metric == "stack_c":
        parked = _idle(STACK_SAMPLE // 10, lambda fn: c_depth(SORTED_LEVELS, fn))
    else:
        raise ValueError(metric)
    return statistics.median(g._stack_saved for g in parked)


def measure(python, metric, count, repeat):
    """Median over `repeat` fresh processes of `python`."""
    values = []
    for _ in range(repeat):
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--child", metric, "--count", str(count)],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
        values.append(float(out.strip().splitlines()[-1]))
    return statistics.median(values)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true",
                   help="10x fewer greenlets and one process per metric")
    p.add_argument("--repeat", type=int, default=3,
                   help="fresh processes per metric (default 3)")
    p.add_argument("--count", type=int, default=GREENLET_COUNT,
                   help=f"greenlets for the RSS metric (default {GREENLET_COUNT})")
    p.add_argument("--metrics", default=",".join(METRICS),
                   help="comma-separated metrics to measure (default: all)")
    p.add_argument("--child", choices=sorted(METRICS), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        print(child(args.child, args.count))
        return

    count, repeat = args.count, args.repeat
    if args.quick:
        count, repeat = count // 10, 1
    metrics = [m for m in args.metrics.split(",") if m]
    for m in metrics:
        if m not in METRICS:
            p.error(f"unknown metric {m!r}; choose from {', '.join(METRICS)}")
    results = {m: measure(sys.executable, m, count, repeat) for m in metrics}
    if args.json:
        print(json.dumps({"count": count, "repeat": repeat, "bytes": results}))
        return
    for m in metrics:
        print(f"{METRICS[m]:45} {results[m]:10.0f} {UNITS.get(m, 'B')}")


if __name__ == "__main__":
    main()
