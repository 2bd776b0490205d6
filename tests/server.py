"""A real uvicorn server, in its own process, for end-to-end and concurrency tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes() -> Iterator[tuple[int, str, list[str]]]:
    """Every process now (Linux /proc): its pid, its command name, and the fields of
    /proc/PID/stat after the name (``[1]`` the parent's pid, ``[11]`` and ``[12]`` the user and
    system CPU time in clock ticks)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            name, _, rest = stat.partition(" (")[2].rpartition(") ")
            yield int(entry.name), name, rest.split()


def children_of(pid: int) -> list[int]:
    return [child for child, _, fields in processes() if int(fields[1]) == pid]


def cpu_seconds(select: Callable[[int, str], bool]) -> float:
    """User + system CPU time used so far by the processes ``select(pid, name)`` picks."""
    ticks = sum(int(f[11]) + int(f[12]) for pid, name, f in processes() if select(pid, name))
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def uvicorn_server(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Serve api.main:app_from_env as `custody serve` does, on a free loopback port; yield its
    URL."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    full_env.update(env)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.server",  # as `custody serve`: uvicorn, a socket of its own per worker
            "api.main:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"uvicorn did not start: {output[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def pid_app() -> Any:
    """An app factory for tests of the launcher (api.server): GET /pid answers the process id
    of the worker that served it."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def pid(_request: Any) -> PlainTextResponse:
        return PlainTextResponse(str(os.getpid()))

    return Starlette(routes=[Route("/pid", pid)])
