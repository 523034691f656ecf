"""greenlet-rs only: the cache of CPython's 16 KiB data-stack chunks (3.11+).

A greenlet that goes deeper than its small root chunk makes CPython take a
16 KiB chunk from the object arena allocator and give it back when the frames
on it return. greenlet-rs wraps that allocator so that those chunks are reused
instead of being mapped and unmapped every time.
"""
import sys
import threading

import pytest

import greenlet
from greenlet import greenlet as RawGreenlet

pytestmark = [
    pytest.mark.skipif(getattr(greenlet, "__implementation__", None) != "greenlet-rs",
                       reason="greenlet-rs's own cache"),
    pytest.mark.skipif(sys.version_info < (3, 11), reason="no data stack before 3.11"),
]

cached = getattr(greenlet._greenlet, "_cached_data_stack_chunks", None)


def descend(depth, fn):
    if not depth:
        return fn()
    return descend(depth - 1, fn)


def deep_greenlet(depth):
    # Parks `depth` frames deep, far past a 1 KiB root chunk.
    g = RawGreenlet(lambda: descend(depth, lambda: greenlet.getcurrent().parent.switch(depth)))
    assert g.switch() == depth
    return g


def run_deep_to_the_end(depth):
    g = deep_greenlet(depth)
    g.switch()
    assert g.dead
    # Dropped here. (Depending on the CPython version the chunk comes back when the
    # frames on it return or when the dead greenlet is freed.)


def finish_all(greenlets):
    for g in greenlets:
        g.switch()
        assert g.dead


def test_chunks_are_returned_and_reused():
    # Three deep greenlets parked at once hold three chunks. When they finish, newer
    # CPythons keep one back for the thread (`datastack_cached_chunk`); every other
    # one reaches the arena allocator, and so our cache.
    finish_all([deep_greenlet(60) for _ in range(3)])
    before = cached()
    assert before >= 2
    # A steady start-deep-finish loop neither grows nor drains it.
    for _ in range(200):
        run_deep_to_the_end(60)
    assert cached() == before
    # Parked deep greenlets take their chunks from it...
    parked = [deep_greenlet(60) for _ in range(before + 2)]
    assert cached() == 0
    # ...and give them back.
    finish_all(parked)
    del parked
    assert cached() >= before


def test_reused_chunks_hold_correct_frames():
    # Frames built in reused (not zeroed) chunks behave: locals, deep recursion,
    # exceptions through them, gr_frame walks.
    def body(depth):
        local = ("x" * depth, depth)
        if depth:
            return body(depth - 1) + local[1]
        me = greenlet.getcurrent()
        frame_count = me.parent.switch("parked")
        return frame_count

    for round_ in range(50):
        g = RawGreenlet(body)
        assert g.switch(300) == "parked"
        f = g.gr_frame
        n = 0
        while f is not None:
            n += 1
            f = f.f_back
        assert n == 301  # body(300) ... body(0): run is body itself
        assert g.switch(round_) == round_ + sum(range(301))
        assert g.dead


def test_many_threads_share_the_cache():
    errors = []

    def worker():
        try:
            for _ in range(100):
                g = deep_greenlet(80)
                g.switch()
                assert g.dead
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert 0 < cached() <= 64


def test_recursion_limit_still_applies():
    def recurse(n):
        return recurse(n + 1)

    def run():
        with pytest.raises(RecursionError):
            recurse(0)
        return "done"

    for _ in range(3):
        assert RawGreenlet(run).switch() == "done"
