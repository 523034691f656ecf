"""Freeing a long chain of suspended greenlets, each holding the next one.

Dropping the head kills it (GreenletExit); unwinding its frame drops the next
greenlet, which is killed from inside that unwinding, and so on: the kills nest
as deep as the chain is long, each one a switch made during a deallocation.
Upstream greenlet 3.5.6 crashes here on CPython 3.13.0 with chains of about
3,000 (it takes a reference to ``tstate->delete_later``, an object whose
reference count is already zero, and drops it again later). This test is
therefore specific to greenlet-rs; it runs in a subprocess so that a crash is
reported as a failure.
"""

CHAIN = """
import greenlet

N = %d
finished = 0

def run(next_one):
    global finished
    try:
        greenlet.getcurrent().parent.switch()
    finally:
        finished += 1

head = None
for _ in range(N):
    g = greenlet.greenlet(run)
    g.switch(head)
    head = g
del g
head = None
assert finished == N, finished
print("freed", finished)
"""


def test_chain_of_suspended_greenlets_is_freed(run_script):
    n = 100000
    result = run_script(CHAIN % n, timeout=300)
    assert result.stdout.strip() == "freed %d" % n, result
    assert result.stderr == "", result
