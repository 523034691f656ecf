"""Stress harness for greenlet: seeded random operations checked against a model.

This directory is our own harness (nothing here comes from upstream's test
suite).  It runs unchanged against greenlet-rs and against upstream greenlet
3.5.6; the model was validated on upstream.

Layout
------
``worker.py``  one seed in one interpreter: builds greenlets, drives a seeded
               random sequence of operations and checks invariants after each
               step.  Prints ``RESULT {json}`` and exits 1 on any failure.
``run.py``     runs seeds in subprocesses (a crash or hang is reported with its
               seed, never kills the harness) and prints the summary line
               ``stress: N operations, seeds A..B, 0 crashes, 0 leaked references``.
``compare.py`` runs the same seeds under two interpreters (greenlet-rs and
               upstream) and diffs every trace event step by step.
``test_stress_short.py``  the short pytest run (about 30-60 s; fewer seeds on a
               debug build; ``GREENLET_STRESS_OPS``/``GREENLET_STRESS_SEEDS``
               override).

Operations
----------
Every greenlet's ``run`` is the driver loop itself, so operations execute in
whichever greenlet is current: create (plain, subclass, subclass with a ``run``
method, subclass whose ``__del__`` resurrects it; default or explicit parent),
switch (five argument shapes, to self, to new, suspended and dead greenlets),
throw (five exception types, four call forms, into new, suspended, dead and the
current greenlet), finish (return, raise, raise GreenletExit), drop the
harness's reference (a suspended greenlet nobody else holds is killed with
GreenletExit, possibly cascading), re-parent (valid, cyclic, main, wrong type,
``del``), ``gr_context`` read/set and a ContextVar per greenlet, nested
``except`` blocks and Python frames (``sys.exc_info()`` per greenlet, varied
stack depths), ``greenlet.settrace`` with a recording tracer and with a tracer
that raises, ``gc.collect()`` of greenlets in reference cycles, resurrection in
``__del__``.  With ``--threads``: greenlets of another thread (wrong-thread
switch/throw raise ``greenlet.error``, dropped here while the thread lives,
the thread exiting with a suspended greenlet).  With ``--signals``: a
``KeyboardInterrupt`` raised by a SIGALRM handler (``signal.setitimer``) while
two greenlets switch back and forth; it must be caught exactly once.

Invariants
----------
After every step the model is compared with the real objects: ``dead``,
``bool(g)``, ``parent``, ``gr_frame`` (set iff suspended), which greenlets are
alive (weak references and their callbacks), which were killed, what every
receiver got (each delivery carries a unique token and the model knows who must
receive it, exactly once), ``sys.exc_info()`` and the ContextVar in the running
greenlet, the trace events of simple switches.  The order of a killed
greenlet's trace event relative to its frame's release is not checked.  Each
batch (``--batch`` operations) ends by finishing every greenlet and dropping
all references; then the number of greenlet objects must be back to its
baseline, and ``len(gc.get_objects())`` (and ``sys.gettotalrefcount()`` on a
debug build) must not grow in each of the last four batch-to-batch steps after
three warm-up batches.

What the harness steers around (both implementations, see worker.py)
---------------------------------------------------------------------
* ``GEXIT_TO_NEW``: a GreenletExit that becomes a value and lands in a greenlet
  that has not started calls ``run`` with a non-tuple argument list (asserts in
  a debug CPython, undefined on a release one).
* ``GC_COLLECTS_SUSPENDED``: from CPython 3.15 gc frees suspended greenlets in
  cycles without unwinding them; no collections mid-batch there.
* A suspended greenlet whose frame holds it (a subclass with a ``run`` method),
  or a cycle of suspended greenlets, is never freed before 3.15: the model
  counts such references and finishes every greenlet before dropping them.
* Upstream's ``sys.gettotalrefcount()`` drifts (its deallocation resurrects
  with ``Py_SET_REFCNT``), so the total is checked only on greenlet-rs
  (``--refcount on`` forces it).

Narrowing a failure down: ``worker.py --without gc,thread,...`` leaves
operations out; ``--dump-events FILE`` writes the trace events.

Commands
--------
Short run (``make test``)::

    python -m pytest tests/stress -q -p no:cacheprovider

Long run (``make stress``), at least 1,000,000 operations::

    python tests/stress/run.py --seed 1 --ops 1000000 --ops-per-seed 10000 --threads --signals --jobs 2

Replay one seed (add the same flags)::

    python tests/stress/worker.py --seed S --ops N --threads --signals
"""
