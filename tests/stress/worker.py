"""One seed of the stress harness, run in its own interpreter by ``run.py``.

The worker keeps a model of every greenlet it made (state, parent, who holds
a reference to it, what it must receive next, its context variable, its
handled exception) and drives a seeded random sequence of operations.  The
operations run in whichever greenlet is current: every greenlet's ``run`` is
the same driver loop, so a switch, a throw or a return hands the driver to
the receiver, which first checks what it received and then the whole model.

Usage: ``python worker.py --seed S --ops N [--batch B] [--threads] [--signals]``.
The last line printed is ``RESULT {json}``; any invariant failure prints the
seed, the step and the tail of the operation log and exits with status 1.
"""
import argparse
import array
import collections
import contextvars
import gc
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
import weakref

import greenlet
from greenlet import GreenletExit, getcurrent

RawGreenlet = greenlet.greenlet
CV = contextvars.ContextVar("stress_cv")
HAS_TOTALREFCOUNT = hasattr(sys, "gettotalrefcount")
# From CPython 3.15 on, gc.collect() frees a started, unfinished greenlet that
# is only reachable from a reference cycle without throwing GreenletExit into
# it: its frames are released but never unwound (no `finally`, no `except`),
# upstream 3.5.6 and greenlet-rs alike; up to 3.14 such greenlets are never
# collected (greenlet's tp_is_gc).  The model does not follow that (weak
# references cleared before a resurrecting __del__, ...), so on 3.15 the
# harness runs no collection mid-batch.
GC_COLLECTS_SUSPENDED = sys.version_info >= (3, 15)


class StressFailure(Exception):
    """An invariant did not hold."""


class Boom(Exception):
    """Raised by a greenlet that finishes with an exception, or thrown."""


class Boom2(ValueError):
    pass


class NestExc(Exception):
    """The exception being handled inside a nested ``except`` block."""


class TracerError(RuntimeError):
    """Raised by a tracer that raises."""


class _KillReturn(BaseException):
    """Unwinds a killed greenlet whose body chooses to return."""


class Sub(RawGreenlet):
    """A plain subclass."""


class SubRun(RawGreenlet):
    """A subclass whose ``run`` is a method (it does not keep ``self``)."""

    def run(self, *args, **kwargs):
        gid = self._gid
        del self
        return _body(gid, *args, **kwargs)


RESURRECTED = []


class Res(RawGreenlet):
    """A subclass whose ``__del__`` resurrects it (once: PEP 442)."""

    def __del__(self):
        RESURRECTED.append(self)


# GEXIT_TO_NEW: a GreenletExit that becomes a value (a greenlet raising it, or
# it thrown into a dead or new greenlet) delivered to a greenlet that has not
# started calls run() with the exception instance as its argument tuple:
# upstream 3.5.6 (and greenlet-rs, which copies it) trips CPython's
# ``PyTuple_Check(args)`` assertion in _PyObject_Call on a debug build and reads
# a non-tuple as a tuple on a release build.  The harness avoids that case.
EXC_TYPES = (Boom, Boom2, KeyError, GreenletExit, KeyboardInterrupt)


class Rec:
    __slots__ = ("gid", "state", "parent", "cls", "expect", "held", "cv",
                 "nest", "exists", "wref", "in_h", "cyc", "finalized", "res",
                 "kill_returns")

    def __init__(self, gid, cls, parent):
        self.gid = gid
        self.state = "new"          # new | active | dead (active = started, not dead)
        self.parent = parent        # gid or None
        self.cls = cls
        self.expect = None          # what the next receipt must be
        self.held = None            # gid of the greenlet its pending call holds
        self.cv = None              # expected CV value in this greenlet
        self.nest = []              # ('exc', tok) | ('frames', n) ...
        self.exists = True
        self.wref = None
        self.in_h = True
        self.cyc = False            # g.__dict__ holds g (only dead greenlets)
        self.finalized = False
        self.res = False            # held by RESURRECTED
        self.kill_returns = False


class World:
    def __init__(self, seed, ops, batch, use_threads, use_signals):
        self.seed = seed
        self.rng = random.Random(seed)
        self.total_ops = ops
        self.batch = batch
        self.use_threads = use_threads
        self.use_signals = use_signals
        self.log = collections.deque(maxlen=60)
        self.step = 0
        self.done_ops = 0
        self.tok = 1000
        self.killed = []
        self.freed_cb = []
        self.events = None          # recording tracer list (or None)
        self.tracer_raises = False
        self.pending = None         # predicted outcome of the last op
        self.stats = collections.Counter()
        self.batch_index = 0
        self.without = ()
        self.inject_leak = 0
        self.dump = None
        self.unraisables = []

    # -- tokens, log -------------------------------------------------------
    def unraisable(self, u):
        self.unraisables.append("%s: %r (object %r)" % (u.err_msg, u.exc_value, type(u.object)))

    def token(self):
        self.tok += 1
        return self.tok

    def note(self, gid, text):
        self.log.append("#%d g%d: %s" % (self.step, gid, text))

    def fail(self, msg):
        """Report and leave at once: greenlets would deliver an exception
        somewhere the model does not expect, hiding the first failure."""
        greenlet.settrace(None)
        result = {"seed": self.seed, "ops": self.done_ops, "steps": self.step, "ok": False,
                  "error": "seed %d step %d: %s" % (self.seed, self.step, msg),
                  "trace": "".join(traceback.format_stack()[-8:]),
                  "log": list(self.log), "stats": dict(self.stats)}
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(1)

    # -- model helpers -----------------------------------------------------
    def holders(self, gid):
        n = 0
        r = self.recs[gid]
        if r.in_h:
            n += 1
        if r.cyc:
            n += 1
        if r.res:
            n += 1
        if r.cls is SubRun and r.state == "active":
            n += 1      # the running bound method self.run holds it
        for o in self.recs.values():
            if not o.exists:
                continue
            if o.parent == gid:
                n += 1
            if o.held == gid:
                n += 1
        return n

    def release_cascade(self, cur):
        """Kill/free everything whose last holder went away; return killed set."""
        killed, freed = set(), set()
        changed = True
        while changed:
            changed = False
            for r in list(self.recs.values()):
                if not r.exists or r.gid == cur or r.gid == 0:
                    continue
                if self.holders(r.gid):
                    continue
                changed = True
                if r.cls is Res and not r.finalized:
                    r.finalized = True
                    r.res = True
                    continue
                if r.state == "active":
                    r.state = "dead"
                    r.held = None
                    r.nest = []
                    killed.add(r.gid)
                else:
                    r.exists = False
                    freed.add(r.gid)
        return killed, freed

    def gc_model(self, cur):
        """What gc.collect() frees: greenlets unreachable from the roots.

        Up to 3.14 a started, unfinished greenlet is never collected (greenlet's
        tp_is_gc says no), so it is a root and keeps what its frame holds alive.
        From 3.15 on it is collected like anything else, without GreenletExit:
        its frame is never unwound (upstream 3.5.6 and greenlet-rs alike)."""
        roots = set()
        for r in self.recs.values():
            if not r.exists:
                continue
            if r.in_h or r.res or r.gid in (0, cur) or (
                    r.state == "active" and not GC_COLLECTS_SUSPENDED):
                roots.add(r.gid)
        reach = set()
        todo = list(roots)
        while todo:
            g = todo.pop()
            if g in reach or g is None:
                continue
            reach.add(g)
            o = self.recs[g]
            todo.append(o.parent)
            todo.append(o.held)
        freed = set()
        for r in self.recs.values():
            if r.exists and r.gid not in reach:
                if r.state == "active" and not GC_COLLECTS_SUSPENDED:
                    continue
                r.exists = False
                r.cyc = False
                r.held = None
                freed.add(r.gid)
        return freed

    def walk(self, start, kind, payload, throw=False):
        """Deliver a switch/throw/return starting at gid ``start``.

        kind: 'args' (payload=(args, kwargs)), 'gexit' (a GreenletExit
        instance as a value: payload=args), 'exc' (payload=(type, args)).
        Returns (receiver gid, list of greenlets that died on the way).
        """
        t = start
        died = []
        if throw and payload[0] is GreenletExit and self.recs[t].state == "dead":
            # throw() into a dead greenlet turns GreenletExit into a return value
            kind, payload = "gexit", payload[1]
        while True:
            r = self.recs[t]
            if r.state == "active":
                if kind == "args":
                    a, kw = payload
                    r.expect = ("value", single_result(a, kw))
                elif kind == "gexit":
                    r.expect = ("value", ("GreenletExit", payload))
                else:
                    r.expect = ("exc",) + payload
                return t, died
            if r.state == "new":
                if kind == "args":
                    r.expect = ("start",) + payload
                    r.state = "active"
                    return t, died
                if kind == "gexit":
                    r.expect = ("start", (), {})
                    r.state = "active"
                    return t, died
                # a pending exception kills it before it runs
                r.state = "dead"
                died.append(t)
                if payload[0] is GreenletExit:
                    kind, payload = "gexit", payload[1]
            t = r.parent
            if t is None:
                self.fail("delivery walked off the parent chain")

    def receiver_of(self, start, kind, payload, throw=False, gexit_to_new=False):
        """Dry run of walk(): (receiver, receiver was new); with gexit_to_new,
        whether a GreenletExit turned into a value would start a new greenlet."""
        t = start
        if throw and payload[0] is GreenletExit and self.recs[t].state == "dead":
            kind = "gexit"
        while True:
            r = self.recs[t]
            if r.state == "active":
                return False if gexit_to_new else (t, False)
            if r.state == "new":
                if gexit_to_new and kind == "gexit":
                    return True
                if kind in ("args", "gexit"):
                    return False if gexit_to_new else (t, True)
                if payload[0] is GreenletExit:
                    kind = "gexit"
            t = r.parent

    def cycle_if_parent(self, g, p):
        t = p
        while t is not None:
            if t == g:
                return True
            t = self.recs[t].parent
        return False


def single_result(args, kwargs):
    if kwargs:
        if args:
            return (args, kwargs)
        return kwargs
    if len(args) == 1:
        return args[0]
    return args


def normalize(value):
    if isinstance(value, BaseException):
        return (type(value).__name__, value.args)
    return value


_INJECTED = []
W = None      # the World of this process
H = {}        # gid -> greenlet: the harness's own references


def _body(gid, *args, **kwargs):
    W.receipt(gid, ("start", args, kwargs))
    try:
        res = W.loop(gid)
    except _KillReturn:
        return "killed-returned"
    return res[1]


def _make_run(gid):
    def run(*args, **kwargs):
        return _body(gid, *args, **kwargs)
    return run


class RecordingTracer:
    def __init__(self, events):
        self.events = events

    def __call__(self, event, args):
        origin, target = args
        self.events.append((event, getattr(origin, "_gid", -1), getattr(target, "_gid", -1)))


class RaisingTracer:
    def __init__(self, tok):
        self.tok = tok

    def __call__(self, event, args):
        raise TracerError(self.tok)


def _install(world):
    global W
    W = world


def _nest_exc(world, gid, tok):
    try:
        raise NestExc(tok)
    except NestExc:
        return world.loop(gid)


def _nest_frames(world, gid, n):
    if n > 0:
        return _nest_frames(world, gid, n - 1)
    return world.loop(gid)


def _loop(self, gid):
    while True:
        self.verify(gid)
        if self.done_ops >= self.batch_ops:
            if gid == 0:
                return ("end",)
            res = self.op_finish(gid, forced=True)
        else:
            self.done_ops += 1
            res = self.one_op(gid)
        if res is not None:
            return res


World.loop = _loop

ALL_OPS = ("create", "switch", "throw", "finish", "drop", "reparent", "attr", "ctx",
           "exc", "trace", "gc", "cycle", "unres")


def _one_op(self, gid):
    self.step += 1
    r = self.recs[gid]
    n_exist = sum(1 for x in self.recs.values() if x.exists)
    choices = [("create", 10 if n_exist < 12 else 1), ("switch", 30), ("throw", 8),
               ("finish", 0 if gid == 0 else 8), ("drop", 8 if n_exist > 4 else 2),
               ("reparent", 5), ("attr", 3), ("ctx", 6), ("exc", 6), ("trace", 3), ("gc", 1),
               ("cycle", 1), ("unres", 2 if RESURRECTED else 0)]
    if GC_COLLECTS_SUSPENDED:
        # 3.15: see GC_COLLECTS_SUSPENDED
        choices = [(n, 0 if n in ("gc", "cycle") else w) for n, w in choices]
    if gid == 0 and self.use_threads:
        choices.append(("thread", 1))
    if gid == 0 and self.use_signals:
        choices.append(("signal", 1))
    if self.inject_leak and self.done_ops % self.inject_leak == 0:
        _INJECTED.append([])    # a (gc-tracked) leak on purpose: tests the leak check
    if self.without:
        choices = [(n, 0 if n in self.without else w) for n, w in choices]
    total = sum(w for _, w in choices)
    x = self.rng.random() * total
    for name, w in choices:
        x -= w
        if x < 0:
            break
    self.stats[name] += 1
    return getattr(self, "op_" + name)(gid)


World.one_op = _one_op


def op(fn):
    setattr(World, fn.__name__, fn)
    return fn


@op
def obj(self, t):
    """The greenlet object of gid t (a temporary: never keep it in a local)."""
    if t in H:
        return H[t]
    o = self.recs[t].wref()
    if o is None:
        self.fail("g%d expected to exist" % t)
    return o


@op
def site(self, gid, call):
    """Run a switch/throw call and check what comes back (the switch site)."""
    try:
        got = ("value", normalize(call()))
    except BaseException as e:  # noqa: B902 -- everything is a delivery here
        if type(e) is GreenletExit and not (len(e.args) == 1 and type(e.args[0]) is int):
            # killed: the last reference went away (thrown GreenletExits carry a token)
            self.killed.append(gid)
            if self.recs[gid].kill_returns:
                raise _KillReturn()
            raise
        got = ("exc", type(e), e.args)
        e = None
    self.receipt(gid, got)


@op
def receipt(self, gid, got):
    r = self.recs[gid]
    exp, r.expect = r.expect, None
    if exp is None:
        self.fail("g%d received %r but nothing was sent to it" % (gid, got))
    if exp != got:
        self.fail("g%d received %r, expected %r" % (gid, got, exp))


@op
def settle(self, cur, events=None):
    """Model: the previous op is done, ``cur`` runs; compute kills and frees."""
    rc = self.recs[cur]
    rc.held = None
    killed, freed = self.release_cascade(cur)
    self.pending = {"killed": killed, "events": events if not killed else None,
                    "mark": len(self.events) if self.events is not None else 0}


@op
def verify(self, gid):
    me = getcurrent()
    if getattr(me, "_gid", None) != gid:
        self.fail("running g%s, model says g%d" % (getattr(me, "_gid", "?"), gid))
    me = None
    p = self.pending
    self.pending = None
    if p is not None:
        if set(self.killed) != p["killed"]:
            self.fail("killed %s, model predicted %s" % (sorted(self.killed), sorted(p["killed"])))
        if self.unraisables:
            self.fail("unraisable exception: %s" % self.unraisables[0])
        if self.events is not None:
            got = self.events[p["mark"]:]
            if self.dump is not None and got:
                self.dump.write("%d %r\n" % (self.step, got))
            for ev in got:
                if ev[0] not in ("switch", "throw") or ev[1] < 0 or ev[2] < 0:
                    self.fail("malformed trace event %r" % (ev,))
            if p["events"] is not None and got != p["events"]:
                self.fail("trace events %r, expected %r" % (got, p["events"]))
            del self.events[:]
    self.killed = []
    # walk the gr_frame chain of one suspended greenlet per step
    pick = self.rng.choice(list(self.recs)) if self.rng.random() < 0.5 else None
    for r in self.recs.values():
        alive = r.wref() is not None
        if alive != r.exists:
            self.fail("g%d %s, model says %s" % (r.gid, "alive" if alive else "freed",
                                                 "exists" if r.exists else "freed"))
        if not alive:
            continue
        g = self.obj(r.gid)
        suspended = r.state == "active" and r.gid != gid
        facts = (g.dead, bool(g), getattr(g.parent, "_gid", None), g.gr_frame is not None)
        chain = frame_chain(g.gr_frame) if suspended and r.gid == pick else None
        g = None
        want = (r.state == "dead", r.state == "active", r.parent, suspended)
        if facts != want:
            self.fail("g%d (dead, bool, parent, has gr_frame) = %r, model %r" % (r.gid, facts, want))
        if chain is not None:
            self.check_chain(r, chain)
        if r.gid == pick:
            words = repr(self.obj(r.gid)).rsplit(")", 1)[-1].strip(" >")
            want = {"new": "pending", "dead": "dead"}.get(r.state) or (
                ("current" if r.gid == gid else "suspended") + " active started"
                + (" main" if r.gid == 0 else ""))
            if words != want:
                self.fail("repr(g%d) ends %r, model %r" % (r.gid, words, want))
    r = self.recs[gid]
    if r.state != "active":
        self.fail("g%d runs but model state is %s" % (gid, r.state))
    excs = [x[1] for x in r.nest if x[0] == "exc"]
    want_exc = excs[-1] if excs else None
    e = sys.exc_info()[1]
    have = e.args[0] if isinstance(e, NestExc) else (None if e is None else repr(e))
    e = None
    if have != want_exc:
        self.fail("g%d sys.exc_info() holds %r, model %r" % (gid, have, want_exc))
    if CV.get(None) != r.cv:
        self.fail("g%d context var %r, model %r" % (gid, CV.get(None), r.cv))
    if sorted(getattr(x, "_gid", -1) for x in RESURRECTED) != sorted(
            x.gid for x in self.recs.values() if x.res):
        self.fail("resurrected list differs from model")
    if set(self.freed_cb) != {x.gid for x in self.recs.values() if not x.exists}:
        self.fail("weakref callbacks %s, freed in model %s" % (
            sorted(self.freed_cb), sorted(x.gid for x in self.recs.values() if not x.exists)))


def frame_chain(frame):
    names = []
    while frame is not None and len(names) < 5000:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


NEST_FRAMES = {"exc": lambda n: 4, "frames": lambda n: 4 + n, "c": lambda n: 4 + 2 * n}


@op
def check_chain(self, r, chain):
    """A suspended greenlet's gr_frame: the switch call's lambda on top; for a
    non-main greenlet exactly the frames the model predicts down to ``run``,
    whose f_back is None; for main, down to the worker's module frame."""
    if chain[0] != "<lambda>" or chain[1] != "site":
        self.fail("g%d gr_frame chain starts %r" % (r.gid, chain[:4]))
    if r.gid == 0:
        if chain[-1] != "<module>":
            self.fail("main gr_frame chain ends %r" % (chain[-4:],))
        return
    depth = 3 + 4 + sum(NEST_FRAMES[k](n) for k, n in r.nest)
    if chain[-2:] != ["_body", "run"] or len(chain) != depth:
        self.fail("g%d gr_frame chain of %d frames ends %r, model %d frames" % (
            r.gid, len(chain), chain[-3:], depth))


def _weak_cb(gid):
    def cb(_ref):
        W.freed_cb.append(gid)
    return cb


@op
def op_create(self, gid):
    n = self.next_gid
    self.next_gid += 1
    cls = self.rng.choice((RawGreenlet, RawGreenlet, Sub, SubRun, Res))
    choice = self.rng.random()
    # A Res never becomes a parent: gc would clear its weak references before
    # its __del__ resurrects it, which the model does not follow.
    cands = [t for t in H if self.recs[t].exists and self.recs[t].cls is not Res]
    parent = self.rng.choice(cands) if choice < 0.4 or self.recs[gid].cls is Res else None
    r = Rec(n, cls, parent if parent is not None else gid)
    r.kill_returns = self.rng.random() < 0.3
    self.recs[n] = r
    self.note(gid, "create g%d %s parent=%s" % (n, cls.__name__, parent))
    kw = {}
    if parent is not None:
        kw["parent"] = H[parent]
    if cls is SubRun:
        g = cls(**kw)
    elif self.rng.random() < 0.5:
        g = cls(_make_run(n), **kw)
    else:
        g = cls(run=_make_run(n), **kw)
    kw = None
    g._gid = n
    r.wref = weakref.ref(g, _weak_cb(n))
    H[n] = g
    g = None
    self.settle(gid, [])


PAYLOADS = (
    lambda tok: ((tok,), {}),
    lambda tok: ((tok, "x"), {}),
    lambda tok: ((), {"tok": tok}),
    lambda tok: ((tok,), {"k": 1}),
    lambda tok: ((), {}),
)


@op
def op_switch(self, gid, forced_target=None):
    if forced_target is not None:
        t = forced_target
    else:
        t = self.rng.choice(list(H))
    tok = self.token()
    a, kw = self.rng.choice(PAYLOADS)(tok)
    rcv, rcv_new = self.receiver_of(t, "args", None)
    raising = (self.events is None and forced_target is None and rcv != gid
               and self.rng.random() < 0.08)
    self.note(gid, "switch g%d%s %r %r -> receiver g%d" % (
        t, " (raising tracer)" if raising else "", a, kw, rcv))
    sender = self.recs[gid]
    if raising:
        if rcv_new:
            self.recs[rcv].state = "dead"
            rcv, _ = self.walk(self.recs[rcv].parent, "exc", (TracerError, (tok,)))
        else:
            self.walk(t, "args", (a, kw))
            self.recs[rcv].expect = ("exc", TracerError, (tok,))
    else:
        rcv, _ = self.walk(t, "args", (a, kw))
    if rcv != gid:
        sender.held = t
    simple = rcv == t and rcv != gid and not raising
    self.settle(rcv, [("switch", gid, rcv)] if simple else None)
    if raising:
        greenlet.settrace(RaisingTracer(tok))
    self.site(gid, lambda: self.obj(t).switch(*a, **kw))


def _tb():
    try:
        raise Boom("tb")
    except Boom as e:
        return e.__traceback__


@op
def op_throw(self, gid):
    t = self.rng.choice(list(H))
    typ = self.rng.choice(EXC_TYPES)
    if typ is GreenletExit and self.receiver_of(t, "exc", (typ, None), True, gexit_to_new=True):
        typ = Boom      # see GEXIT_TO_NEW
    tok = self.token()
    form = self.rng.randrange(4)
    self.note(gid, "throw %s(%d) form %d into g%d" % (typ.__name__, tok, form, t))
    rcv, died = self.walk(t, "exc", (typ, (tok,)), throw=True)
    if rcv != gid:
        self.recs[gid].held = t
    simple = rcv == t and rcv != gid
    self.settle(rcv, [("throw", gid, rcv)] if simple else None)
    if form == 0:
        self.site(gid, lambda: self.obj(t).throw(typ, typ(tok)))
    elif form == 1:
        self.site(gid, lambda: self.obj(t).throw(typ(tok)))
    elif form == 2:
        self.site(gid, lambda: self.obj(t).throw(typ, tok))
    else:
        self.site(gid, lambda: self.obj(t).throw(typ, typ(tok), _tb()))


@op
def op_finish(self, gid, forced=False):
    r = self.recs[gid]
    tok = self.token()
    how = 0 if forced else self.rng.randrange(4)
    if how == 3 and self.receiver_of(r.parent, "gexit", None, gexit_to_new=True):
        how = 0         # see GEXIT_TO_NEW
    r.state = "dead"
    r.held = None
    r.nest = []
    if how == 0:
        rcv, _ = self.walk(r.parent, "args", ((tok,), {}))
        self.note(gid, "return %d -> g%d" % (tok, rcv))
    elif how == 3:
        rcv, _ = self.walk(r.parent, "gexit", (tok,))
        self.note(gid, "raise GreenletExit(%d) -> g%d" % (tok, rcv))
    else:
        typ = Boom if how == 1 else KeyError
        rcv, _ = self.walk(r.parent, "exc", (typ, (tok,)))
        self.note(gid, "raise %s(%d) -> g%d" % (typ.__name__, tok, rcv))
    simple = rcv == r.parent
    self.settle(rcv, [("switch" if how in (0, 3) else "throw", gid, rcv)] if simple else None)
    if how == 0:
        return ("finish", tok)
    if how == 3:
        raise GreenletExit(tok)
    raise (Boom if how == 1 else KeyError)(tok)


@op
def op_drop(self, gid):
    cands = [t for t in H if t != 0 and (t != gid or self.rng.random() < 0.2)]
    if not cands:
        return None
    t = self.rng.choice(cands)
    self.recs[t].in_h = False
    self.settle(gid)
    self.note(gid, "drop g%d -> kills %s" % (t, sorted(self.pending["killed"])))
    del H[t]
    return None


@op
def op_reparent(self, gid):
    t = self.rng.choice(list(H))
    kind = self.rng.random()
    if kind < 0.1:
        self.note(gid, "del g%d.parent" % t)
        self.expect_error(lambda: delattr(H[t], "parent"), AttributeError, "can't delete attribute")
        return None
    if kind < 0.2 and t != 0:
        self.note(gid, "g%d.parent = None/int" % t)
        bad = self.rng.choice((None, 7))
        self.expect_error(lambda: setattr(H[t], "parent", bad), TypeError,
                          "GreenletChecker: Expected any type of greenlet, not "
                          + type(bad).__name__)
        return None
    p = self.rng.choice([x for x in H if self.recs[x].cls is not Res])
    self.note(gid, "g%d.parent = g%d" % (t, p))
    if t == 0:
        self.expect_error(lambda: setattr(H[t], "parent", H[p]), AttributeError,
                          "cannot set the parent of a main greenlet")
        return None
    if self.cycle_if_parent(t, p):
        self.expect_error(lambda: setattr(H[t], "parent", H[p]), ValueError,
                          "cyclic parent chain")
        return None
    self.recs[t].parent = p
    self.settle(gid)
    H[t].parent = H[p]
    return None


@op
def expect_error(self, fn, typ, msg):
    try:
        fn()
    except BaseException as e:  # noqa: B902
        if type(e) is not typ or str(e) != msg:
            self.fail("expected %s(%r), got %s(%r)" % (typ.__name__, msg, type(e).__name__, str(e)))
        e = None
    else:
        self.fail("expected %s(%r), nothing raised" % (typ.__name__, msg))
    self.settle(self.cur_gid())


@op
def cur_gid(self):
    return getcurrent()._gid


@op
def op_attr(self, gid):
    """Attribute and argument errors that must leave everything as it was."""
    t = self.rng.choice(list(H))
    r = self.recs[t]
    kind = self.rng.randrange(7)
    self.note(gid, "attr %d on g%d" % (kind, t))
    if kind == 0:
        self.expect_error(lambda: H[t].throw(1), TypeError,
                          "exceptions must be classes, or instances, not int")
    elif kind == 1:
        self.expect_error(lambda: H[t].throw(Boom, Boom(), "tb"), TypeError,
                          "throw() third argument must be a traceback object")
    elif kind == 2:
        self.expect_error(lambda: H[t].throw(Boom(1), 2), TypeError,
                          "instance exception may not have a separate value")
    elif kind == 3:
        self.expect_error(lambda: delattr(H[t], "gr_context"), AttributeError,
                          "can't delete context attribute")
    elif r.cls is SubRun:
        self.settle(gid, [])            # its run is a method of the class
    elif t == 0:
        if kind == 4:
            self.expect_error(lambda: setattr(H[t], "run", len), AttributeError,
                              "Main greenlets do not have a run attribute.")
        else:
            self.expect_error(lambda: H[t].run, AttributeError,
                              "Main greenlets do not have a run attribute.")
    elif r.state == "new":
        if kind == 4:
            H[t].run = _make_run(t)         # a new run before the start is fine
        else:
            if not callable(H[t].run):
                self.fail("g%d.run is not callable before its start" % t)
        self.settle(gid, [])
    elif kind in (4, 5):
        self.expect_error(lambda: setattr(H[t], "run", len), AttributeError,
                          "run cannot be set after the start of the greenlet")
    else:
        self.expect_error(lambda: H[t].run, AttributeError, "run")
    return None


@op
def op_ctx(self, gid):
    kind = self.rng.randrange(4)
    r = self.recs[gid]
    if kind == 0:
        tok = self.token()
        self.note(gid, "CV.set(%d)" % tok)
        CV.set(tok)
        r.cv = tok
        self.settle(gid, [])
        return None
    cands = [t for t in H if self.recs[t].state != "dead"]
    t = self.rng.choice(cands)
    rt = self.recs[t]
    if kind == 1:
        self.note(gid, "read g%d.gr_context" % t)
        ctx = H[t].gr_context
        have = ctx.get(CV, None) if ctx is not None else None
        ctx = None
        if have != rt.cv:
            self.fail("g%d.gr_context has CV %r, model %r" % (t, have, rt.cv))
    elif kind == 2:
        which = self.rng.randrange(3)
        self.note(gid, "set g%d.gr_context (%s)" % (t, ("copy", "empty", "None")[which]))
        if which == 0:
            H[t].gr_context = contextvars.copy_context()
            rt.cv = r.cv
        elif which == 1:
            H[t].gr_context = contextvars.Context()
            rt.cv = None
        else:
            H[t].gr_context = None
            rt.cv = None
    else:
        self.note(gid, "set g%d.gr_context = 5" % t)
        self.expect_error(lambda: setattr(H[t], "gr_context", 5), TypeError,
                          "greenlet context must be a contextvars.Context or None")
        return None
    self.settle(gid, [])
    return None


@op
def op_exc(self, gid):
    r = self.recs[gid]
    kind = self.rng.randrange(3)
    if (kind == 2 or len(r.nest) > 6) and r.nest:
        self.note(gid, "leave %r" % (r.nest[-1],))
        r.nest.pop()
        self.settle(gid, [])
        return ("leave",)
    if kind == 2:
        return None
    if kind == 0:
        tok = self.token()
        self.note(gid, "enter except NestExc(%d)" % tok)
        r.nest.append(("exc", tok))
        self.settle(gid, [])
        return _unless_left(_nest_exc(self, gid, tok))
    n = self.rng.randrange(1, 30)
    if self.rng.random() < 0.5:
        self.note(gid, "enter %d frames" % n)
        r.nest.append(("frames", n))
        self.settle(gid, [])
        return _unless_left(_nest_frames(self, gid, n))
    self.note(gid, "enter %d C-recursion levels" % n)
    r.nest.append(("c", n))
    self.settle(gid, [])
    return _unless_left(_nest_c(self, gid, n))


def _nest_c(world, gid, n):
    """Recursion through C (map, list): each level leaves C frames on the
    machine stack, so greenlets suspended here have big stack slices to save."""
    if n > 0:
        return list(map(lambda _: _nest_c(world, gid, n - 1), (0,)))[0]
    return world.loop(gid)


def _unless_left(res):
    """A nested loop returned: ('leave',) ends the nest; anything else
    (a return, the end of the batch) goes on unwinding."""
    return None if res == ("leave",) else res


@op
def op_trace(self, gid):
    if self.events is None and self.rng.random() < 0.7:
        self.note(gid, "settrace(recording)")
        self.events = []
        prev = greenlet.settrace(RecordingTracer(self.events))
        if prev is not None:
            self.fail("settrace returned %r, expected None" % (prev,))
    else:
        self.note(gid, "settrace(None)")
        prev = greenlet.settrace(None)
        if (prev is None) != (self.events is None):
            self.fail("settrace(None) returned %r" % (prev,))
        self.events = None
    self.settle(gid, [])


@op
def op_gc(self, gid):
    freed = self.gc_model(gid)
    self.settle(gid)
    self.note(gid, "gc.collect() frees %s kills %s" % (sorted(freed), sorted(self.pending["killed"])))
    gc.collect()


@op
def op_cycle(self, gid):
    cands = [t for t in H if t != 0 and self.recs[t].state == "dead" and self.recs[t].cls is not Res]
    if not cands:
        return None
    t = self.rng.choice(cands)
    self.note(gid, "g%d.cyc = g%d" % (t, t))
    H[t].cyc = H[t]
    self.recs[t].cyc = True
    self.settle(gid, [])


@op
def op_unres(self, gid):
    for r in self.recs.values():
        r.res = False
    self.settle(gid)
    self.note(gid, "RESURRECTED.clear() kills %s" % sorted(self.pending["killed"]))
    RESURRECTED.clear()


# -- scenarios that keep their own greenlets out of the model -------------------

THREAD_SWITCH_MSG = "Cannot switch to a different thread"


@op
def op_thread(self, gid):
    """Greenlets of another thread: wrong-thread switches, cross-thread drops,
    thread exit with suspended greenlets."""
    # Variant 0 lets the thread exit with a greenlet suspended in a switch; its
    # frame can never be unwound, so what that frame holds (the thread's main
    # greenlet) stays alive for good, upstream too.  It runs only during the
    # first batches, which the leak accounting treats as warm-up.
    variant = self.rng.randrange(0 if self.batch_index < WARM_BATCHES - 1 else 1, 3)
    self.note(gid, "thread scenario %d" % variant)
    tracer = greenlet.settrace(None)
    if not GC_COLLECTS_SUSPENDED:
        self.gc_model(gid)
    try:
        self._thread_scenario(gid, variant)
    finally:
        greenlet.settrace(tracer)
    self.settle(gid, None)


@op
def _thread_scenario(self, gid, variant):
    box = {}
    log = []
    ready, go = threading.Event(), threading.Event()

    def inner(x):
        try:
            box["tmain"].switch("parked")
        except GreenletExit:
            log.append(("killed", threading.get_ident()))
            raise
        return "inner-done"

    def tmain():
        box["tmain"] = getcurrent()
        s = RawGreenlet(inner)
        if s.switch(1) != "parked":
            log.append("bad park")
        box["s"] = s
        box["u"] = RawGreenlet(inner)
        s = None
        log.append(("tid", threading.get_ident()))
        ready.set()
        go.wait(30)
        if variant == 1:
            # run greenlet code after the main thread dropped our greenlet
            RawGreenlet(lambda: 0).switch()
        elif variant == 2 and "s" in box:
            if box["s"].switch("bye") != "inner-done":
                log.append("bad finish")
        box.pop("tmain", None)

    th = threading.Thread(target=tmain)
    th.start()
    if not ready.wait(30):
        self.fail("thread did not start")
    for attr in ("switch", "throw"):
        try:
            getattr(box["s"], attr)()
        except greenlet.error as e:
            if not str(e).startswith(THREAD_SWITCH_MSG):
                self.fail("wrong-thread %s raised %r" % (attr, str(e)))
        else:
            self.fail("wrong-thread %s did not raise" % attr)
    s = box["s"]
    facts = (s.dead, bool(s), s.gr_frame is not None)
    s = None
    if facts != (False, True, True):
        self.fail("other thread's suspended greenlet: (dead, bool, has gr_frame) = %r" % (facts,))
    wrefs = [weakref.ref(box["s"]), weakref.ref(box["u"]), weakref.ref(box["tmain"])]
    if variant == 1:
        del box["s"]          # cross-thread drop while the thread lives
    go.set()
    th.join(30)
    if th.is_alive():
        self.fail("thread scenario hung")
    box.clear()               # variant 0: dropped here after its thread exited
    for _ in range(200):
        count = getattr(greenlet._greenlet, "get_pending_cleanup_count", None)
        if all(w() is None for w in wrefs) and (count is None or count() == 0):
            break
        time.sleep(0.005)
        RawGreenlet(lambda: 0).switch()   # let deferred cleanup run
    if not GC_COLLECTS_SUSPENDED:
        gc.collect()    # the model predicts what it frees in op_thread
    if variant == 0 and wrefs[2]() is not None:
        self.stats["thread_exit_kept"] += 1
        wrefs.pop()
    if any(w() is not None for w in wrefs):
        self.fail("thread scenario %d: greenlets of an exited thread still alive: %r" % (
            variant, [w() is not None for w in wrefs]))
    tids = [x[1] for x in log if x[0] == "tid"]
    for x in log:
        if x[0] == "killed" and x[1] not in tids:
            self.fail("a greenlet of another thread was killed in the wrong thread")
        if x in ("bad park", "bad finish"):
            self.fail("thread scenario: " + x)
    self.stats["thread_kills_seen"] += sum(1 for x in log if x[0] == "killed")


@op
def op_signal(self, gid):
    """A KeyboardInterrupt raised by a signal handler while two greenlets ping-pong."""
    tracer = greenlet.settrace(None)    # a tracer hit by the KeyboardInterrupt would be removed
    try:
        self._signal_scenario(gid)
    finally:
        greenlet.settrace(tracer)
    self.settle(gid, None)


@op
def _signal_scenario(self, gid):
    tok = self.token()
    state = {"armed": True, "raised": 0}
    hits = []
    S = {}

    def handler(signum, frame):
        if state["armed"]:
            state["armed"] = False
            state["raised"] += 1
            raise KeyboardInterrupt(tok)

    def pinger(me, peer):
        count = 0
        while True:
            try:
                while count < 3000:
                    count += 1
                    S[peer].switch()
                return me
            except KeyboardInterrupt as e:
                hits.append((me, e.args))
                e = None

    old = signal.signal(signal.SIGALRM, handler)
    try:
        S["a"] = RawGreenlet(lambda: pinger("a", "b"))
        S["b"] = RawGreenlet(lambda: pinger("b", "a"))
        delay = self.rng.choice((0.00005, 0.0002, 0.001))
        done = []
        try:
            signal.setitimer(signal.ITIMER_REAL, delay)
            done.append(S["a"].switch())
            while not (S["a"].dead and S["b"].dead):
                done.append(S["b"].switch() if not S["b"].dead else S["a"].switch())
        except KeyboardInterrupt as e:
            hits.append(("driver", e.args))
            e = None
            while not (S["a"].dead and S["b"].dead):
                try:
                    done.append(S["b"].switch() if not S["b"].dead else S["a"].switch())
                except KeyboardInterrupt as e2:
                    hits.append(("driver2", e2.args))
                    e2 = None
        finally:
            state["armed"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            for _ in range(50):
                pass
    finally:
        signal.signal(signal.SIGALRM, old)
    if len(hits) != state["raised"] or any(h[1] != (tok,) for h in hits):
        self.fail("signal scenario: raised %d, caught %r" % (state["raised"], hits))
    if not all(g.dead for g in S.values()):
        self.fail("signal scenario: ping-pong greenlets not dead")
    S.clear()
    self.note(gid, "signal scenario: KeyboardInterrupt caught in %r" % ([h[0] for h in hits],))
    self.stats["signal_hits"] += len(hits)


# -- batches, teardown, leak accounting -----------------------------------------

@op
def setup_batch(self):
    main = getcurrent()
    main._gid = 0
    self.recs = {0: Rec(0, type(main), None)}
    r = self.recs[0]
    r.state = "active"
    r.wref = weakref.ref(main)
    r.cv = CV.get(None)
    main = None
    H.clear()
    H[0] = getcurrent()
    self.next_gid = 1
    self.freed_cb = []
    self.killed = []
    self.pending = None


@op
def run_batch(self, nops):
    self.setup_batch()
    self.batch_ops = self.done_ops + nops
    self.loop(0)
    self.recs[0].nest = []
    # teardown: every started greenlet finishes (the budget is spent, so each
    # greenlet that gets control returns), then all references are dropped.
    if self.events is not None or greenlet.gettrace() is not None:
        greenlet.settrace(None)
        self.events = None
    for _ in range(1000):
        act = [r.gid for r in self.recs.values()
               if r.exists and r.state == "active" and r.gid != 0]
        if not act:
            break
        self.step += 1
        self.op_switch(0, forced_target=act[0]) if act[0] in H else self._switch_unnamed(act[0])
        self.verify(0)
    for r in self.recs.values():
        if r.gid != 0:
            r.in_h = False
            r.res = False
    self.settle(0)
    H.clear()
    H[0] = getcurrent()
    while RESURRECTED:
        RESURRECTED.clear()
    gc.collect()
    gc.collect()
    for r in self.recs.values():
        if r.gid != 0 and r.wref() is not None:
            self.fail("teardown: g%d still alive (state %s, model exists=%s)" % (
                r.gid, r.state, r.exists))
    self.pending = None
    self.killed = []


@op
def _switch_unnamed(self, t):
    """Teardown: switch into a suspended greenlet the harness no longer names."""
    tok = self.token()
    self.note(0, "teardown switch g%d" % t)
    rcv, _ = self.walk(t, "args", ((tok,), {}))
    self.recs[0].held = t
    self.settle(rcv, None)
    self.site(0, lambda: self.recs[t].wref().switch(tok))


def measure():
    for _ in range(3):
        gc.collect()
    objs = gc.get_objects()
    n_green = sum(1 for o in objs if isinstance(o, RawGreenlet))
    n_objs = len(objs)
    objs = None
    refs = sys.gettotalrefcount() if HAS_TOTALREFCOUNT else None
    return n_objs, n_green, refs


WARM_BATCHES = 4


def _slope(vals):
    n = len(vals)
    mx = (n - 1) / 2.0
    my = sum(vals) / float(n)
    return sum((i - mx) * (v - my) for i, v in enumerate(vals)) / sum((i - mx) ** 2 for i in range(n))


def leak_trend(values, warm=WARM_BATCHES, min_slope=4.0):
    """Sustained growth after the warm-up batches: the least-squares slope is
    at least ``min_slope`` per batch over all of them and over their second
    half (caches warming flatten out, a leak does not; the harness's own
    bookkeeping gives about 1, with noise of +-30 between batches), and the
    last value is above everything in the first half.  Returns the growth
    (last - first) or 0."""
    vals = values[warm:]
    n = len(vals)
    if n < 12:          # too short to tell warming from leaking (noise +-30)
        return 0
    if (_slope(vals) >= min_slope and _slope(vals[n // 2:]) >= min_slope
            and vals[-1] > max(vals[: n // 2])):
        return vals[-1] - vals[0]
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--threads", action="store_true")
    ap.add_argument("--signals", action="store_true")
    ap.add_argument("--refcount", choices=("auto", "on", "off"), default="auto",
                    help="check sys.gettotalrefcount() on a debug build; auto: not on "
                    "upstream greenlet, whose deallocation resurrects with Py_SET_REFCNT "
                    "and so drifts the total by a few references per greenlet")
    ap.add_argument("--without", default="", help="comma-separated operations to leave out "
                    "(to narrow a failure down): " + ",".join(ALL_OPS + ("thread", "signal")))
    ap.add_argument("--dump-events", metavar="FILE",
                    help="write every trace event with its step (compare.py diffs two runs)")
    ap.add_argument("--inject-leak", type=int, default=0, metavar="K",
                    help="leak one object every K operations (checks the leak check)")
    args = ap.parse_args(argv)
    use_refs = HAS_TOTALREFCOUNT and (
        args.refcount == "on" or (args.refcount == "auto" and
                                  getattr(greenlet, "__implementation__", None) == "greenlet-rs"))
    gc.disable()
    world = World(args.seed, args.ops, args.batch, args.threads, args.signals)
    world.inject_leak = args.inject_leak
    world.dump = open(args.dump_events, "w") if args.dump_events else None
    sys.unraisablehook = world.unraisable
    world.without = tuple(x for x in args.without.split(",") if x)
    _install(world)
    greenlet.settrace(None)
    # Preallocated, so that recording a measurement allocates nothing the next
    # measurement would count (appending ints to lists adds a few references
    # per batch).
    n_batches = -(-args.ops // args.batch)
    series_objs = array.array("q", [0]) * n_batches
    series_refs = array.array("q", [0]) * n_batches
    baseline_green = None
    result = {"seed": args.seed, "ops": 0, "ok": True, "leaked_refs": 0, "leaked_objs": 0}
    try:
        while world.done_ops < args.ops:
            world.run_batch(min(args.batch, args.ops - world.done_ops))
            world.batch_index += 1
            n_objs, n_green, refs = measure()
            if world.batch_index <= WARM_BATCHES:
                baseline_green = n_green
                baseline_green = n_green
            elif n_green > baseline_green:
                world.fail("%d greenlet objects alive after teardown, baseline %d" % (
                    n_green, baseline_green))
            series_objs[world.batch_index - 1] = n_objs
            if refs is not None:
                series_refs[world.batch_index - 1] = refs
        series_objs = list(series_objs[:world.batch_index])
        series_refs = list(series_refs[:world.batch_index]) if HAS_TOTALREFCOUNT else []
        result["leaked_objs"] = leak_trend(series_objs)
        result["leaked_refs"] = leak_trend(series_refs) if use_refs else 0
        result["refcount_checked"] = use_refs
        if result["leaked_objs"] or result["leaked_refs"]:
            result["ok"] = False
            result["error"] = "sustained growth: objects %r refs %r" % (series_objs, series_refs)
    except StressFailure as e:
        result["ok"] = False
        result["error"] = str(e)
        result["trace"] = traceback.format_exc()
    except BaseException as e:  # noqa: B902
        result["ok"] = False
        result["error"] = "seed %d step %d: unexpected %s: %s" % (
            args.seed, world.step, type(e).__name__, e)
        result["trace"] = traceback.format_exc()
    result["ops"] = world.done_ops
    result["steps"] = world.step
    result["stats"] = dict(world.stats)
    result["series_objs"] = list(series_objs)
    result["series_refs"] = list(series_refs)
    if not result["ok"]:
        result["log"] = list(world.log)
    greenlet.settrace(None)
    if world.dump is not None:
        world.dump.close()
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
