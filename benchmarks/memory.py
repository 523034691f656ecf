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
}
# How many idle greenlets the _stack_saved medians are taken over.
STACK_SAMPLE = 1000


def _rss_bytes():
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


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
    p.add_argument("--child", choices=sorted(METRICS), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        print(child(args.child, args.count))
        return

    count, repeat = args.count, args.repeat
    if args.quick:
        count, repeat = count // 10, 1
    results = {m: measure(sys.executable, m, count, repeat) for m in METRICS}
    if args.json:
        print(json.dumps({"count": count, "repeat": repeat, "bytes": results}))
        return
    for m, label in METRICS.items():
        print(f"{label:45} {results[m]:10.0f} B")


if __name__ == "__main__":
    main()
