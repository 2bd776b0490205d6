"""Serving an ASGI app with uvicorn, with a listening socket of its own for every worker process.

uvicorn's ``--workers`` binds one socket in the parent, and every worker accepts on it. Whichever
worker wakes first takes a whole burst of new connections (asyncio and uvloop accept in a loop
until none is left), so long-lived connections - a proxy's or load balancer's keep-alive pool, a
load test's clients - pile up on one process: 32 connections opened together were split 2/30,
6/26 and 8/24 between two workers. A check-out's writes go through its process's group commit
one batch at a time, so a process holding most connections is the bottleneck while the other
idles. Here, on Linux, every worker binds its own socket with ``SO_REUSEPORT`` and the kernel
spreads new connections over the workers' sockets by a hash of their addresses (the same test:
15/17, 11/21, 15/17).

Elsewhere, or with one worker, uvicorn serves as usual. ``python -m api.server APP`` runs any
app factory this way (the benchmarks serve their ceiling app with it too).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("custody.server")

#: uvicorn's exit status for a server that could not start (bad app, port taken)
STARTUP_FAILURE = 3
#: a worker that exits sooner than this after its start is not restarted: the next one would
#: most likely fail the same way (an app that cannot load), and a restart loop helps nobody
QUICK_DEATH = 5.0


@dataclass(frozen=True)
class ServeOptions:
    app: str  # "module:factory"
    host: str = "127.0.0.1"
    port: int = 8787
    workers: int = 1
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    log_level: str = "info"
    access_log: bool = True
    #: "auto": each worker process runs on a CPU of its own (see :func:`worker_cpus`);
    #: "off" (the default): the kernel moves them as it likes. Off unless asked for: on a
    #: host shared with other busy services, or running several vaults, CPUs held by one
    #: server could be the ones another one needs; the operator knows the host.
    cpu_affinity: str = "off"

    def uvicorn_kwargs(self) -> dict[str, Any]:
        return {
            "factory": True,
            "host": self.host,
            "port": self.port,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "log_level": self.log_level,
            "access_log": self.access_log,
            "server_header": False,
        }


def worker_cpus(options: ServeOptions) -> list[int | None]:
    """The CPU each worker process is held to (None: not held), by worker slot.

    A worker is one Python process: its threads (the event loop, the request threads, the
    group commit's) take turns holding the GIL, and every hand-over wakes the next thread. On
    a CPU of its own, that thread wakes where the last one ran, with the interpreter's state
    still in that core's cache; left to move, it wakes on whichever core is free and the
    hand-over costs a cross-core wake-up. Measured (docs/benchmarks.md, "CPU affinity"):
    about a fifth less CPU per check-out and a quarter more check-outs per second, with 1
    worker and with 2. Only where each worker can have a CPU to itself, out of those this
    process may use (a container's cpuset included), and on Linux."""
    if options.cpu_affinity != "auto" or not hasattr(os, "sched_setaffinity"):
        return [None] * options.workers
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or options.workers > len(allowed):
        return [None] * options.workers
    # The last CPUs first: the first ones tend to take the devices' interrupts.
    return [allowed[len(allowed) - 1 - slot] for slot in range(options.workers)]


def _hold_to(cpu: int | None) -> None:
    """Keep this process (and the threads it starts from now on) on ``cpu``."""
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as exc:  # a CPU taken away meanwhile: serve anyway, unpinned
            log.warning("could not hold the worker to CPU %d: %s", cpu, exc.strerror)


def serve(options: ServeOptions) -> int:
    """Serve until interrupted (SIGINT, SIGTERM); the exit status."""
    import uvicorn

    # Linux only: elsewhere SO_REUSEPORT lets several sockets bind but does not spread the
    # connections over them.
    if options.workers == 1 or not sys.platform.startswith("linux"):
        if options.workers == 1:
            _hold_to(worker_cpus(options)[0])
        uvicorn.run(options.app, workers=options.workers, **options.uvicorn_kwargs())
        return 0
    # Bound here too, never listening (the kernel hands connections to listening sockets
    # only): a port another program holds is one clear error before any worker starts.
    try:
        claim = _reuse_port_socket(options.host, options.port)
    except OSError as exc:
        log.error("cannot bind %s:%d: %s", options.host, options.port, exc.strerror)
        return STARTUP_FAILURE
    try:
        return _Supervisor(options).run()
    finally:
        claim.close()


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _worker(options: ServeOptions, cpu: int | None = None) -> None:
    """One worker process: its own socket, its own uvicorn server (on ``cpu``, if given)."""
    import uvicorn

    _hold_to(cpu)
    try:
        sock = _reuse_port_socket(options.host, options.port)
    except OSError as exc:
        print(f"cannot bind {options.host}:{options.port}: {exc.strerror}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config(options.app, **options.uvicorn_kwargs())
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _Supervisor:
    """Starts the workers, restarts one that dies, stops them all on SIGINT or SIGTERM; gives
    up if a worker cannot start (a restart would fail the same way)."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.context = multiprocessing.get_context("spawn")
        self.stopping = False
        self.started_at: dict[BaseProcess, float] = {}
        #: the CPU of each worker slot (a replacement worker takes its slot's)
        self.cpus = worker_cpus(options)

    def _start(self, slot: int) -> BaseProcess:
        cpu = self.cpus[slot]
        process = self.context.Process(
            target=_worker, args=(self.options, cpu), name="custody-worker"
        )
        process.start()
        self.started_at[process] = time.monotonic()
        return process

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        workers = [self._start(slot) for slot in range(self.options.workers)]
        status = 0
        try:
            while not self.stopping:
                time.sleep(0.2)
                for i, process in enumerate(workers):
                    if process.is_alive() or self.stopping:
                        continue
                    lived = time.monotonic() - self.started_at.pop(process)
                    if process.exitcode == STARTUP_FAILURE or lived < QUICK_DEATH:
                        log.error("a worker could not start (exit %s): stopping", process.exitcode)
                        status = STARTUP_FAILURE
                        self.stopping = True
                        break
                    log.warning(
                        "worker %d exited (%s): starting another", process.pid, process.exitcode
                    )
                    workers[i] = self._start(i)
        finally:
            for process in workers:
                if process.is_alive():
                    process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
            for process in workers:
                process.join(30)
                if process.is_alive():
                    process.kill()
                    process.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("app", help="an app factory, module:function")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument(
        "--cpu-affinity",
        choices=["auto", "off"],
        default="off",
        help="auto: each worker on a CPU of its own, when there are enough",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    return serve(
        ServeOptions(
            app=args.app,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=not args.no_access_log,
            cpu_affinity=args.cpu_affinity,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
