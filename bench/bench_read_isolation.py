"""Check-out latency while slow reads run beside it, on the same server.

    python bench/bench_read_isolation.py [--read readiness|log-export] [--logins 500]
        [--events 100000] [--slices 8] [--pg URL]

A request that only reads - a listing, a report, the audit log - runs in a read-only
transaction outside the group commit (``Store.read_context``), so a slow one holds up no
write. Two of the slowest reads there are:

* ``readiness``: the readiness report decrypts every login of the client and runs the
  strength estimator on each (about 0.4 ms per 24-character password); the client has
  ``--logins`` logins;
* ``log-export``: an auditor downloads the whole audit log (``GET /log/export``), which holds
  ``--events`` events more than the benchmark's own, with its checkpoints.

This serves one vault (1 worker), drives check-out + check-in pairs with wrk (32 connections,
bench/checkout.lua) in short slices, and in every other slice has a client of the API fetch
the report or the export over and over meanwhile. Quiet slices and busy ones alternate, so
both kinds share the machine's phases; the script prints the check-out figures of each kind,
their ratio, and how long one read took.

Before read-only requests left the group commit, each such read held every write of its
process (and, on SQLite, the database's write lock) for as long as it ran.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.bench_checkout import (  # noqa: E402
    Server,
    checkout_wrk_env,
    fresh_pg,
    fresh_sqlite,
    run_wrk,
    server_env,
    setup_vault,
)
from bench.common import PASSPHRASE, bench_settings  # noqa: E402

CLIENTS = 32


def add_logins(url: str, count: int) -> None:
    """``count`` more logins for the client, with distinct random passwords."""
    import secrets as pysecrets

    from vault.keys import UnsealSecret
    from vault.services import secrets
    from vault.store import Store

    store = Store.open(bench_settings(url))
    keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    with store.context("operator:bench", keys) as ctx:
        secrets.add_secrets(
            ctx,
            "Acme",
            [
                secrets.NewSecret(title=f"login {i}", value=pysecrets.token_urlsafe(18))
                for i in range(count)
            ],
        )
    store.engine.dispose()


def add_events(url: str, count: int) -> None:
    """``count`` more audit events in the log (as a busy vault's history), and an auditor."""
    from vault.keys import UnsealSecret
    from vault.services import audit
    from vault.store import Store

    store = Store.open(bench_settings(url))
    keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    for start in range(0, count, 10_000):
        with store.context("operator:bench", keys) as ctx:
            for i in range(start, min(count, start + 10_000)):
                audit.record(
                    ctx, "bench.history", subject_kind="secret", subject_id=f"s{i}", reason="bench"
                )
    store.engine.dispose()


def auditor_token(url: str) -> str:
    from vault.services import users
    from vault.store import Store

    store = Store.open(bench_settings(url))
    with store.context("operator:bench") as ctx:
        user = users.create_user(ctx, "auditor", role="auditor", password="x" * 16)
        token = users._new_token(ctx, user, scope="full", ttl=users.SESSION_TTL)
    store.engine.dispose()
    return token


class Reports:
    """Fetches a slow read (``path``) in a loop on a thread of its own while running."""

    def __init__(self, base: str, path: str, token: str) -> None:
        self.url = f"{base}{path}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Reports:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _loop(self) -> None:
        with httpx.Client(timeout=60) as http:
            while not self._stop.is_set():
                start = time.perf_counter()
                with http.stream("GET", self.url, headers=self.headers) as response:
                    assert response.status_code == 200, response.read()
                    for _ in response.iter_bytes(1 << 16):
                        pass
                self.seconds.append(time.perf_counter() - start)


def run(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    client_id, secret_ids, tokens = setup_vault(url, CLIENTS)
    if args.read == "readiness":
        add_logins(url, args.logins)
        path, token = f"/reports/readiness/{client_id}", tokens[0]
    else:
        add_events(url, args.events)
        path, token = "/log/export", auditor_token(url)
    wrk_env = checkout_wrk_env(client_id, secret_ids, tokens)
    server = Server("api.main:app_from_env", server_env(url), 1)
    kinds: dict[str, list[dict[str, float]]] = {"quiet": [], "reports": []}
    reports = Reports(server.url, path, token)
    try:
        run_wrk(server.url, "checkout.lua", CLIENTS, 2, wrk_env)  # warm-up
        for index in range(2 * args.slices):
            if index % 2 == 0:
                kinds["quiet"].append(
                    run_wrk(server.url, "checkout.lua", CLIENTS, args.slice_seconds, wrk_env)
                )
            else:
                with reports:
                    kinds["reports"].append(
                        run_wrk(server.url, "checkout.lua", CLIENTS, args.slice_seconds, wrk_env)
                    )
    finally:
        server.stop()
    out: dict[str, Any] = {"label": label, "report_count": len(reports.seconds)}
    out["report_ms"] = 1000 * statistics.median(reports.seconds) if reports.seconds else 0.0
    for kind, slices in kinds.items():
        assert not any(s["errors"] for s in slices), slices
        out[kind] = {
            "pairs_per_s": statistics.mean(s["rps"] for s in slices) / 2,
            "p50": statistics.median(s["p50"] for s in slices),
            "p99": statistics.median(s["p99"] for s in slices),
            "p99_max": max(s["p99"] for s in slices),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read", choices=["readiness", "log-export"], default="readiness")
    parser.add_argument("--logins", type=int, default=500, help="for --read readiness")
    parser.add_argument("--events", type=int, default=100_000, help="for --read log-export")
    parser.add_argument("--slices", type=int, default=8, help="slices of each kind")
    parser.add_argument("--slice-seconds", type=int, default=3)
    parser.add_argument("--pg", help="PostgreSQL admin URL (a fresh database is made)")
    args = parser.parse_args()
    print(
        f"# bench_read_isolation  {time.strftime('%Y-%m-%d %H:%M:%S')}  1 worker, "
        f"{CLIENTS} connections, reads: {args.read} ("
        + (f"{args.logins} logins" if args.read == "readiness" else f"{args.events} events")
        + f"), {args.slices} x {args.slice_seconds} s slices of each kind, alternating"
    )
    engines: list[tuple[str, Any]] = [("sqlite", fresh_sqlite)]
    if args.pg:
        engines.append(("postgresql", lambda: fresh_pg(args.pg)))
    for label, fresh in engines:
        url, drop = fresh()
        try:
            r = run(label, url, args)
        finally:
            drop()
        quiet, busy = r["quiet"], r["reports"]
        what = "reports" if args.read == "readiness" else "exports"
        for kind, f in (("quiet", quiet), (f"with {what}", busy)):
            print(
                f"{label:10s} {kind:12s}  {f['pairs_per_s']:7.1f} pairs/s  p50 {f['p50']:6.1f} ms"
                f"  p99 {f['p99']:6.1f} ms (worst slice {f['p99_max']:.1f})"
            )
        print(
            f"{label:10s} with {what} / quiet: throughput "
            f"{busy['pairs_per_s'] / quiet['pairs_per_s']:.2f}x, "
            f"p99 {busy['p99'] / quiet['p99']:.2f}x"
            f"; {r['report_count']} {args.read} {what}, median {r['report_ms']:.0f} ms each"
        )


if __name__ == "__main__":
    main()
