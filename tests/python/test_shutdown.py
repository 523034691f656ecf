"""Interpreter exit and finalization, each in a fresh subprocess."""
import re

# Every script writes with os.write so that output is not lost if sys.stdout
# has already been torn down.
PRELUDE = """
import os, sys
import greenlet

def out(msg):
    os.write(1, (str(msg) + "\\n").encode())
"""


def run(run_script, body, **kwargs):
    return run_script(PRELUDE + body, **kwargs)


def test_getcurrent_raises_during_finalization_module_teardown(run_script):
    result = run(run_script, """
class WithDel:
    # cache everything: module globals may be gone when this runs
    def __del__(self, getcurrent=greenlet.getcurrent, out=out):
        try:
            g = getcurrent()
        except BaseException as e:
            out("DEL %s: %s" % (type(e).__name__, e))
        else:
            out("DEL returned %r" % (g,))

# Cleared while the interpreter is finalizing modules.
greenlet._greenlet.with_del = WithDel()
out("END OF SCRIPT")
""")
    assert "END OF SCRIPT" in result.stdout
    assert "DEL RuntimeError: greenlet is being finalized" in result.stdout, result


def test_getcurrent_raises_during_final_gc_pass(run_script):
    result = run(run_script, """
import gc

class WithDel:
    def __del__(self, getcurrent=greenlet.getcurrent, out=out):
        try:
            getcurrent()
        except RuntimeError as e:
            out("CYCLE DEL RuntimeError: %s" % (e,))
        else:
            out("CYCLE DEL no error")

class Holder:
    pass

h = Holder()
h.cycle = h
h.d = WithDel()
del h
gc.disable()   # leave the cycle for the collection done during finalization
out("END OF SCRIPT")
""")
    assert "END OF SCRIPT" in result.stdout
    assert "CYCLE DEL RuntimeError: greenlet is being finalized" in result.stdout, result


def test_greenlets_work_inside_atexit_handlers(run_script):
    result = run(run_script, """
import atexit

main_at_import = greenlet.getcurrent()

@atexit.register
def handler():
    cur = greenlet.getcurrent()
    out("ATEXIT current is main: %s" % (cur is main_at_import,))
    out("ATEXIT repr: %r" % (cur,))
    g = greenlet.greenlet(lambda x: x * 2)
    out("ATEXIT switch: %r" % (g.switch(21),))
    events = []
    old = greenlet.settrace(lambda e, a: events.append(e))
    greenlet.greenlet(lambda: None).switch()
    greenlet.settrace(old)
    out("ATEXIT trace events: %r gettrace: %r" % (events, greenlet.gettrace()))

out("END OF SCRIPT")
""")
    assert "ATEXIT current is main: True" in result.stdout
    assert re.search(r"ATEXIT repr: <greenlet\.greenlet object at 0x[0-9a-f]+ "
                     r"\(otid=0x[0-9a-f]+\) current active started main>",
                     result.stdout), result
    assert "ATEXIT switch: 42" in result.stdout
    assert "ATEXIT trace events: ['switch', 'switch'] gettrace: None" in result.stdout


def test_suspended_greenlets_at_exit_do_not_crash_and_are_not_run(run_script):
    """At interpreter finalization, suspended greenlets are discarded without
    running any more of their code (no GreenletExit, no finally)."""
    result = run(run_script, """
def make(name, depth=0):
    def worker(out=out):
        def descend(n):
            if n:
                return descend(n - 1)
            try:
                greenlet.getcurrent().parent.switch("parked " + name)
            finally:
                out("FINALLY " + name)
        return descend(depth)
    g = greenlet.greenlet(worker)
    out(g.switch())
    return g

# Referenced from the extension module's dict: cleared at finalization.
greenlet._greenlet.kept = [make("ext%d" % i, depth=i * 10) for i in range(5)]

# Referenced only from a cycle: collected at finalization.
class Holder:
    pass
h = Holder()
h.cycle = h
h.g = make("cycle", depth=50)
del h

# A plain module global.
g_global = make("global", depth=3)

# Nested: a suspended greenlet that started another suspended greenlet.
def outer(out=out):
    inner = greenlet.greenlet(lambda: greenlet.getcurrent().parent.switch("inner parked"))
    out(inner.switch())
    try:
        greenlet.getcurrent().parent.switch("outer parked")
    finally:
        out("FINALLY outer")
nested = greenlet.greenlet(outer)
out(nested.switch())

import gc
gc.disable()
out("END OF SCRIPT")
""")
    stdout = result.stdout
    for name in ["ext0", "ext4", "cycle", "global"]:
        assert "parked " + name in stdout
    assert "inner parked" in stdout and "outer parked" in stdout
    assert "END OF SCRIPT" in stdout
    assert "FINALLY" not in stdout, result
    assert result.returncode == 0


def test_many_suspended_greenlets_at_exit(run_script):
    result = run(run_script, """
main = greenlet.getcurrent()
gs = []
for i in range(2000):
    g = greenlet.greenlet(lambda i=i: main.switch(i))
    assert g.switch() == i
    gs.append(g)
out("PARKED %d" % len(gs))
""")
    assert "PARKED 2000" in result.stdout


def test_finally_runs_at_thread_exit(run_script):
    result = run(run_script, """
import threading

def thread_body():
    def worker():
        try:
            greenlet.getcurrent().parent.switch()
        except greenlet.GreenletExit:
            out("GreenletExit in " + threading.current_thread().name)
            raise
        finally:
            out("FINALLY in " + threading.current_thread().name)
    g = greenlet.greenlet(worker)
    g.switch()
    out("thread returning")

t = threading.Thread(target=thread_body, name="worker-thread")
t.start()
t.join()
out("JOINED")
""")
    lines = result.stdout.splitlines()
    assert lines == [
        "thread returning",
        "GreenletExit in worker-thread",
        "FINALLY in worker-thread",
        "JOINED",
    ], result


def test_daemon_thread_with_suspended_greenlets_at_exit(run_script):
    result = run(run_script, """
import threading, time

ready = threading.Event()

def daemon_body():
    main = greenlet.getcurrent()
    gs = [greenlet.greenlet(lambda: main.switch()) for _ in range(10)]
    for g in gs:
        g.switch()
    out("DAEMON PARKED")
    ready.set()
    time.sleep(60)

t = threading.Thread(target=daemon_body, daemon=True)
t.start()
ready.wait(10)
out("MAIN EXITING")
""")
    assert "DAEMON PARKED" in result.stdout
    assert "MAIN EXITING" in result.stdout


def test_switching_during_module_teardown(run_script):
    result = run(run_script, """
state = []

def parked(state=state):
    # (getcurrent() would raise RuntimeError here: use the parent directly)
    me = state[0]
    value = me.parent.switch("first")
    state.append(value)
    me.parent.switch("second")

state.append(greenlet.greenlet(parked))

class SwitchOnDel:
    def __del__(self, state=state, out=out):
        out("DEL running")
        try:
            out("DEL result %r" % (state[0].switch(),))
        except BaseException as e:
            out("DEL error %s: %s" % (type(e).__name__, e))

greenlet._greenlet.switch_on_del = SwitchOnDel()
out("END OF SCRIPT")
""")
    assert "DEL running" in result.stdout, result
    # Switching into a greenlet still works during teardown, even though
    # getcurrent() raises at that point.
    assert "DEL result 'first'" in result.stdout, result


def test_sys_exit_inside_greenlet_exits_process(run_script):
    result = run(run_script, """
def run():
    sys.exit(7)
greenlet.greenlet(run).switch()
out("not reached")
""", check_rc=False)
    assert result.returncode == 7
    assert "not reached" not in result.stdout


def test_uncaught_exception_in_greenlet_reaches_top_level(run_script):
    result = run(run_script, """
def level_two():
    raise LookupError("escaped from greenlet")

def level_one():
    level_two()

greenlet.greenlet(level_one).switch()
""", check_rc=False)
    assert result.returncode == 1
    assert "LookupError: escaped from greenlet" in result.stderr
    assert "level_one" in result.stderr and "level_two" in result.stderr


def test_trace_function_installed_at_exit(run_script):
    result = run(run_script, """
main = greenlet.getcurrent()
def tracer(event, args, out=out):
    out("TRACE " + event)
greenlet.settrace(tracer)
g = greenlet.greenlet(lambda: main.switch())
g.switch()
out("END OF SCRIPT")
""")
    assert result.stdout.splitlines()[:3] == ["TRACE switch", "TRACE switch", "END OF SCRIPT"]
