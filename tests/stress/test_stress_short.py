"""The short stress run for ``make test``: a few seeds of the harness, each in
its own interpreter (see ``tests/stress/__init__.py``)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (tests/stress/run.py)

# About 30-60 s on a release build; a debug build runs the harness some five
# times slower, so it gets fewer seeds. 6000 operations (24 batches of 250) on
# both: on 3.14's debug build the total reference count is still settling
# after the 4 warm-up batches (by some 50 references over the next dozen
# batches, then flat: seed 3, 20,000 operations), which 4000 operations (12
# batches after warm-up, the least that gives a verdict at all) mistook for a
# leak in about half the runs.
DEBUG = hasattr(sys, "gettotalrefcount")
OPS_PER_SEED = int(os.environ.get("GREENLET_STRESS_OPS", "6000"))
SEEDS = range(1, 1 + int(os.environ.get("GREENLET_STRESS_SEEDS", "3" if DEBUG else "8")))
SEEDS_THREADS = [101] if DEBUG else [101, 102]
# With threads, a debug build's total settles more slowly still (seed 101: some 60
# references over the 20 batches after warm-up, a slope of about 3 per batch against
# the check's 4, with noise of +-15 a batch), so it gets 40 batches there.
THREAD_OPS = int(os.environ.get("GREENLET_STRESS_OPS", "10000" if DEBUG else "6000"))


def _check(res, ops=OPS_PER_SEED):
    if not res.get("ok"):
        import io
        buf = io.StringIO()
        run.report(res, buf)
        pytest.fail(buf.getvalue(), pytrace=False)
    assert res["ops"] == ops


@pytest.mark.parametrize("seed", SEEDS)
def test_stress_seed(seed):
    _check(run.run_seed(seed, OPS_PER_SEED, ["--batch", "250"], timeout=300))


@pytest.mark.parametrize("seed", SEEDS_THREADS)
def test_stress_seed_threads_signals(seed):
    _check(run.run_seed(seed, THREAD_OPS, ["--batch", "250", "--threads", "--signals"],
                        timeout=300), THREAD_OPS)


def test_leak_check_catches_a_leak():
    """The harness itself: one object leaked every 25 operations must fail."""
    res = run.run_seed(1, 4000, ["--batch", "250", "--inject-leak", "25"], timeout=300)
    assert not res.get("ok") and not res.get("crash"), res
    assert "sustained growth" in res.get("error", ""), res.get("error")
