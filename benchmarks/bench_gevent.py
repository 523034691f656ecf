#!/usr/bin/env python3
"""gevent workloads, run with pyperf, on whichever greenlet the venv imports.

`benchmarks/compare.py --suite gevent` runs it for upstream greenlet and for
greenlet-rs (in venvs of their own with gevent's binary wheel, which links
against greenlet's C API) and prints a table; add `--stacks sliced,dedicated`
for both stack modes of greenlet-rs. On its own it is a pyperf script:

    python benchmarks/bench_gevent.py --bench echo_deep --fast
    python benchmarks/bench_gevent.py --list

Every workload runs in one process on gevent's default hub, without monkey
patching; the TCP ones talk over loopback to a gevent StreamServer in the
same process. Each value is the time of one operation (the "per" column).

  spawn_sleep   gevent.spawn of a greenlet that does gevent.sleep(0) and
                ends; joinall. Per greenlet.
  queue_pingpong  two greenlets pass a message back and forth through two
                gevent.queue.Queue. Per round trip (two messages).
  echo_flat     ECHO_CLIENTS client greenlets, each on its own connection,
                send ECHO_BYTES bytes and wait for them to come back,
                ECHO_ROUNDS times; the server's handler greenlets recv and
                sendall in a loop. Per round trip.
  echo_deep     the same, but each handler blocks in its recv ECHO_LEVELS
                nested sorted(key=...) calls deep (~10 C frames and ~5 KB of
                C stack each), as handlers do under C-heavy frameworks.
                Sliced, every switch into or out of a handler copies that
                stack; with dedicated stacks it stays in place.

This module imports neither pyperf nor gevent at import time, so that
compare.py can read BENCHMARKS from any interpreter.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_greenlet import Bench, _now, c_depth, check_stacks, stack_mode  # noqa: E402

# What compare.py installs in the gevent venvs (with --no-deps in ours, then
# gevent's requirements other than greenlet), and the modules that prove it.
GEVENT_VERSION = "26.9.0"
REQUIREMENTS = [f"gevent=={GEVENT_VERSION}"]
IMPORT_NAMES = {"gevent": "gevent"}

SPAWN_BATCH = 100
QUEUE_TRIPS = 1000
ECHO_CLIENTS = 10
ECHO_ROUNDS = 10
ECHO_BYTES = 64
ECHO_LEVELS = 8


def requirements_besides_greenlet(python, packages):
    """The installed packages' own requirements (markers kept), greenlet left out."""
    import json
    import subprocess

    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = []\n"
        "for name in sys.argv[1:]:\n"
        "    for r in m.requires(name) or ():\n"
        "        if 'extra ==' in r or r.split(';')[0].strip().lower()"
        ".startswith('greenlet'):\n"
        "            continue\n"
        "        out.append(r)\n"
        "print(json.dumps(out))\n"
    )
    names = [p.split("=")[0] for p in packages]
    out = subprocess.run([python, "-c", code, *names], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


# ---------------------------------------------------------------- benchmarks


def bm_spawn_sleep(loops, scale):
    import gevent

    sleep = gevent.sleep
    spawn = gevent.spawn
    n = SPAWN_BATCH // scale
    t0 = _now()
    for _ in range(loops):
        gevent.joinall([spawn(sleep, 0) for _ in range(n)])
    return _now() - t0


def bm_queue_pingpong(loops, scale):
    import gevent
    from gevent.queue import Queue

    trips = QUEUE_TRIPS // scale
    ping, pong = Queue(), Queue()

    def echo():
        get, put = ping.get, pong.put
        while True:
            m = get()
            if m is None:
                return
            put(m)

    server = gevent.spawn(echo)
    gevent.sleep(0)  # parked in its first get()
    put, get = ping.put, pong.get
    t0 = _now()
    for _ in range(loops):
        for i in range(trips):
            put(i)
            get()
    elapsed = _now() - t0
    put(None)
    server.join()
    return elapsed


def _echo(loops, scale, levels):
    import gevent
    from gevent.server import StreamServer
    from gevent.socket import create_connection

    def serve(sock):
        recv, sendall = sock.recv, sock.sendall
        while True:
            data = recv(ECHO_BYTES)
            if not data:
                return
            sendall(data)

    def handle(sock, address):
        # Blocks in recv() `levels` sorted() calls deep.
        c_depth(levels, lambda: serve(sock))

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    clients = [create_connection(("127.0.0.1", server.server_port))
               for _ in range(ECHO_CLIENTS)]
    msg = b"x" * ECHO_BYTES
    rounds = max(1, ECHO_ROUNDS // scale)

    def client(sock):
        recv, sendall = sock.recv, sock.sendall
        for _ in range(rounds):
            sendall(msg)
            got = 0
            while got < ECHO_BYTES:
                got += len(recv(ECHO_BYTES))

    spawn = gevent.spawn
    gevent.joinall([spawn(client, c) for c in clients])  # warm: handlers at depth
    t0 = _now()
    for _ in range(loops):
        gevent.joinall([spawn(client, c) for c in clients])
    elapsed = _now() - t0
    for c in clients:
        c.close()
    server.stop()
    return elapsed


def bm_echo_flat(loops, scale):
    return _echo(loops, scale, 0)


def bm_echo_deep(loops, scale):
    return _echo(loops, scale, ECHO_LEVELS)


def _round_trips(scale):
    return ECHO_CLIENTS * max(1, ECHO_ROUNDS // scale)


BENCHMARKS = [
    Bench("spawn_sleep", "gevent spawn + sleep(0) + join", bm_spawn_sleep,
          inner=lambda scale: SPAWN_BATCH // scale, per="greenlet"),
    Bench("queue_pingpong", "gevent Queue ping-pong", bm_queue_pingpong,
          inner=lambda scale: QUEUE_TRIPS // scale, per="round trip"),
    Bench("echo_flat", f"gevent TCP echo, {ECHO_CLIENTS} clients, flat handlers",
          bm_echo_flat, inner=_round_trips, per="round trip"),
    Bench("echo_deep",
          f"gevent TCP echo, {ECHO_CLIENTS} clients, handlers {ECHO_LEVELS} sorted() deep",
          bm_echo_deep, inner=_round_trips, per="round trip"),
]
BY_ID = {b.id: b for b in BENCHMARKS}

# pyperf settings (processes, values), as bench_greenlet's light ones.
LIGHT, LIGHT_FAST = (20, 3), (10, 2)


def settings(bench, fast=False):
    return LIGHT_FAST if fast else LIGHT


# ---------------------------------------------------------------- main


def main():
    import argparse

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--bench", action="append", choices=sorted(BY_ID), default=[])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--expect-stacks")
    own = p.parse_known_args(sys.argv[1:])[0]
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
        kwargs = dict(zip(("processes", "values"), settings(selected[0])))

    def pass_on(cmd, args):
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
    import gevent
    import greenlet

    runner.metadata["greenlet_impl"] = (
        f"{getattr(greenlet, '__implementation__', 'greenlet')} {greenlet.__version__}")
    runner.metadata["greenlet_stacks"] = mode
    runner.metadata["gevent"] = gevent.__version__

    for b in selected:
        runner.bench_time_func(b.display_name(scale), b.func, scale,
                               inner_loops=b.inner_loops(scale))


if __name__ == "__main__":
    main()
