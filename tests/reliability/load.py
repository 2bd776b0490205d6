"""Load: mixed traffic at a set rate against a real uvicorn server, with no error answer and
flat memory.

    python -m tests.reliability.load --seconds 1800 --rate 100          # manual mode
    python -m tests.reliability.load --seconds 60 --engine postgresql

The mix (per 20 requests): 6 secret listings, 4 check-outs each followed later by its check-in
(8), 3 log pages with proofs, 2 readiness reports and 1 lease listing - as consultants, an
auditor and an admin would. Requests are paced by ``--clients`` threads to the target rate
(each waits for its own answer, so an overloaded server shows as a lower achieved rate, not as
piled-up connections).

Memory: the server's resident set (VmRSS from /proc/PID/status) after a warm-up (the first
``--warmup`` seconds: imports, pools, caches filling) against the end. The server keeps no
state per request - the SQLAlchemy statement cache and the rate-limit buckets are bounded, the
log lives in the database - so the RSS after warm-up must stay flat; ``--max-growth-mb``
(default 24 MB) is what "flat" allows for the allocator's and SQLite's page cache's slack. A
leak of 1 KB per request shows after ~25,000 requests (the 30-minute mode sends ~180,000).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.crash import Server, _pg_database
from tests.reliability.seed import seed, settings_for

MIX = ["list"] * 6 + ["checkout"] * 4 + ["log"] * 3 + ["report"] * 2 + ["leases"]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def client_loop(
    n: int, url: str, ids: dict[str, str], tokens: dict[str, str], interval: float,
    until: float, tally: Tally,
) -> None:  # fmt: skip
    rng = random.Random(n)
    client = ids["client_a"]
    secret_ids = [v for k, v in ids.items() if k.startswith("secret_a")]
    auth = {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}
    open_leases: list[str] = []
    next_at = time.monotonic() + rng.uniform(0, interval)
    with httpx.Client(base_url=url, timeout=60) as http:
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at = max(next_at + interval, time.monotonic() - interval)
            if time.monotonic() >= until:
                break
            kind = rng.choice(MIX)
            if open_leases and rng.random() < 0.5:
                kind = "checkin"
            if kind == "list":
                req = ("GET", f"/clients/{client}/secrets", "cons_a", None)
            elif kind == "checkout":
                sid = rng.choice(secret_ids)
                req = ("POST", f"/clients/{client}/secrets/{sid}/checkout", "cons_a",
                       {"reason": f"load {n}"})  # fmt: skip
            elif kind == "checkin":
                req = ("POST", f"/leases/{open_leases.pop()}/checkin", "cons_a", {})
            elif kind == "log":
                req = ("GET", "/log/entries?limit=20&proofs=true", "auditor", None)
            elif kind == "report":
                req = ("GET", f"/reports/readiness/{client}", "admin", None)
            else:
                req = ("GET", "/leases", "cons_a", None)
            method, path, who, body = req
            started = time.monotonic()
            try:
                r = http.request(method, path, headers=auth[who], json=body)
                status, text = r.status_code, r.text[:200]
            except httpx.HTTPError as exc:
                status, text = 0, type(exc).__name__
            took = time.monotonic() - started
            with tally.lock:
                tally.latencies.append(took)
                tally.counts[kind] += 1
                if not 200 <= status < 300:
                    tally.errors.append(f"{method} {path}: {status} {text}")
            if kind == "checkout" and status == 200:
                open_leases.append(r.json()["lease"]["id"])


def run(
    *, seconds: float, rate: float, clients: int, warmup: float, engine: str,
    pg_url: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="custody-load-") as tmp:
        db_url, drop = (None, None)
        if engine == "postgresql":
            db_url, drop = _pg_database(pg_url)
        vault = seed(settings_for(Path(tmp) / "custody-data", db_url), secrets_per_client=20)
        try:
            tokens = {name: vault.token(name) for name in ("admin", "cons_a", "auditor")}
            server = Server(vault.env(CUSTODY_RATE_LIMIT="0"))
            server.start()
            try:
                assert server.proc is not None
                return _drive(
                    server.proc.pid, server.url, vault.ids, tokens,
                    seconds=seconds, rate=rate, clients=clients, warmup=warmup,
                )  # fmt: skip
            finally:
                server.stop()
        finally:
            vault.store.engine.dispose()
            if drop is not None:
                drop()


def _drive(
    pid: int, url: str, ids: dict[str, str], tokens: dict[str, str], *, seconds: float,
    rate: float, clients: int, warmup: float,
) -> dict[str, Any]:  # fmt: skip
    tally = Tally()
    start = time.monotonic()
    until = start + seconds
    threads = [
        threading.Thread(
            target=client_loop, args=(n, url, ids, tokens, clients / rate, until, tally)
        )
        for n in range(clients)
    ]
    for t in threads:
        t.start()
    time.sleep(min(warmup, seconds / 2))
    rss_start = rss_kb(pid)
    with tally.lock:
        done_at_warmup = len(tally.latencies)
    samples = [rss_start]
    while time.monotonic() < until:
        time.sleep(min(5.0, max(0.1, until - time.monotonic())))
        samples.append(rss_kb(pid))
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - start
    rss_end = rss_kb(pid)
    lat = sorted(tally.latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
    return {
        "requests": len(lat),
        "after_warmup": len(lat) - done_at_warmup,
        "rate": len(lat) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": tally.errors,
        "mix": dict(tally.counts),
        "rss_start_mb": rss_start / 1024,
        "rss_end_mb": rss_end / 1024,
        "rss_max_mb": max(samples) / 1024,
        "growth_mb": (rss_end - rss_start) / 1024,
    }


def describe(result: dict[str, Any], target: float) -> str:
    return (
        f"{result['requests']} requests at {result['rate']:.1f}/s (target {target:g}/s), "
        f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
        f"{len(result['errors'])} errors; RSS {result['rss_start_mb']:.1f} MB after warm-up -> "
        f"{result['rss_end_mb']:.1f} MB at the end (growth {result['growth_mb']:+.1f} MB, "
        f"peak {result['rss_max_mb']:.1f} MB); mix {result['mix']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--rate", type=float, default=100, help="requests a second in all")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--max-growth-mb", type=float, default=24)
    args = parser.parse_args()
    result = run(seconds=args.seconds, rate=args.rate, clients=args.clients,
                 warmup=args.warmup, engine=args.engine, pg_url=args.pg_url)  # fmt: skip
    print(describe(result, args.rate))
    for e in result["errors"][:20]:
        print("ERROR:", e)
    ok = not result["errors"] and result["growth_mb"] < args.max_growth_mb
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
