"""CPU time per check-out + check-in pair through the whole app, in-process (no network).

    python bench/profile_checkout.py [--pairs 2000] [--pg URL] [--profile out.html]

Drives the ASGI application directly (the same app uvicorn serves: middleware, FastAPI
validation, the routes, the services, the database) with one client at a time, and reports
process CPU time per pair and per request. With ``--profile`` it also writes a pyinstrument
report (``pip install pyinstrument`` into the venv; not a project dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_checkout import fresh_pg, setup_vault  # noqa: E402
from bench.common import PASSPHRASE, bench_settings, workdir  # noqa: E402


async def call(app: Any, method: str, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def drive(app: Any, client_id: str, secret_id: str, token: str, pairs: int) -> None:
    path = f"/clients/{client_id}/secrets/{secret_id}/checkout"
    for _ in range(pairs):
        status, body = await call(app, "POST", path, token, b'{"reason": "bench"}')
        assert status == 200, body
        lease = json.loads(body)["lease"]["id"]
        status, body = await call(app, "POST", f"/leases/{lease}/checkin", token, b"{}")
        assert status == 200, body


def inline_threadpool() -> None:
    """Run sync routes and dependencies on the event loop thread (profilers follow one thread)."""
    import anyio.to_thread

    async def run_sync(func: Any, *args: Any, **_kw: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]


def build_app(url: str) -> Any:
    from api.app import create_app
    from api.state import ServerState
    from vault.keys import UnsealSecret
    from vault.store import Store

    # measuring the service, not the per-address limit
    settings = bench_settings(url, rate_limit_per_minute=0)
    store = Store.open(settings)
    state = ServerState(store=store)
    state.keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    return create_app(state, sweep_leases=False, checkpoints=False)


def measure(url: str, args: argparse.Namespace) -> None:
    client_id, secret_ids, tokens = setup_vault(url, 1)
    app = build_app(url)
    asyncio.run(drive(app, client_id, secret_ids[0], tokens[0], 50))  # warm-up
    if args.inline or args.profile:
        inline_threadpool()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(drive(app, client_id, secret_ids[0], tokens[0], args.pairs))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler is not None:
        profiler.stop()
        Path(args.profile).write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:12000])
    engine = url.split(":", 1)[0]
    print(
        f"{engine:10s} {args.pairs} pairs: {1000 * cpu / args.pairs:.2f} ms CPU/pair "
        f"({500 * cpu / args.pairs:.2f} ms/request), {1000 * wall / args.pairs:.2f} ms wall/pair"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--pg", help="PostgreSQL admin URL (a fresh database is made)")
    parser.add_argument("--profile", help="write a pyinstrument HTML report here")
    parser.add_argument(
        "--inline", action="store_true", help="no worker threads (as --profile does)"
    )
    args = parser.parse_args()
    with workdir("custody-prof-") as root:
        measure(f"sqlite:///{root}/custody.db", args)
    if args.pg:
        url, drop = fresh_pg(args.pg)
        try:
            measure(url, args)
        finally:
            drop()


if __name__ == "__main__":
    main()
