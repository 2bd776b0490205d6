"""A real uvicorn server, in its own process, for end-to-end and concurrency tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
