"""The lease queries that run all the time, against a long history of ended leases.

Every server process sweeps expired leases once a minute; consultants list their open leases;
admins list overdue ones. A vault keeps every ended lease, so these must cost what the open
leases cost, not what the history costs. For each engine and history size this fills a vault
with N ended leases and 50 open ones (5 of them overdue), gathers statistics (as autovacuum
would), and times the queries on the index of open leases (migration 0008) and then, in the
same run on the same rows, on the full index of every lease's expiry that it replaced.

    .venv/bin/python bench/bench_lease_sweep.py [--pg URL] [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text  # noqa: E402

from bench.bench_checkout import fresh_pg  # noqa: E402
from vault.db import engine as db  # noqa: E402
from vault.db.models import Client, Lease, Secret, User, new_id, utcnow  # noqa: E402
from vault.services import checkout  # noqa: E402

OPEN, OVERDUE, RUNS = 50, 5, 20


def fill(engine: Engine, ended: int) -> dict[str, Any]:
    """One client, one secret, 100 consultants; ``ended`` ended leases spread over the
    consultants and the past, OPEN open ones (OVERDUE of them past their expiry)."""
    now = utcnow()
    ids = {"client": new_id(), "secret": new_id(), "users": [new_id() for _ in range(100)]}
    with engine.begin() as conn:
        conn.execute(
            Client.__table__.insert(),  # type: ignore[attr-defined]
            {"id": ids["client"], "name": "Acme", "name_key": "acme", "wrapped_key": b"k"},
        )
        conn.execute(
            Secret.__table__.insert(),  # type: ignore[attr-defined]
            {
                "id": ids["secret"],
                "client_id": ids["client"],
                "title": "R",
                "title_key": "r",
                "kind": "login",
            },
        )
        conn.execute(
            User.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "id": u,
                    "username": f"c{i}",
                    "username_key": f"c{i}",
                    "role": "consultant",
                    "password_hash": "-",
                }
                for i, u in enumerate(ids["users"])
            ],
        )
        chunk = 20_000
        for start in range(0, ended + OPEN, chunk):
            rows = []
            for i in range(start, min(start + chunk, ended + OPEN)):
                is_open = i >= ended
                expires = (
                    now - timedelta(minutes=ended - i)
                    if not is_open
                    else now + timedelta(minutes=(i - ended) - OVERDUE + 1)
                )
                rows.append(
                    {
                        "id": new_id(),
                        "secret_id": ids["secret"],
                        "client_id": ids["client"],
                        "user_id": ids["users"][i % 100],
                        "holder": "c",
                        "version": 1,
                        "exclusive": False,
                        "created_at": expires - timedelta(hours=1),
                        "expires_at": expires,
                        "released_at": None if is_open else expires - timedelta(minutes=30),
                        "release_kind": None if is_open else "checkin",
                    }
                )
            conn.execute(Lease.__table__.insert(), rows)  # type: ignore[attr-defined]
    analyze(engine)
    return ids


def analyze(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def timed(engine: Engine, statement: Any, expect: int) -> float:
    """Median wall time (ms) of RUNS executions of ``statement``, each checked to return
    ``expect`` rows."""
    times = []
    with engine.connect() as conn:
        for _ in range(RUNS):
            start = time.perf_counter()
            rows = conn.execute(statement).all()
            times.append((time.perf_counter() - start) * 1000)
            assert len(rows) == expect, (len(rows), expect)
            conn.rollback()
    return statistics.median(times)


def measure(engine: Engine, ids: dict[str, Any], ended: int) -> dict[str, float]:
    """The sweep's query, and one consultant's open leases (the one holding the first open
    lease: one open lease, and ended // 100 ended ones)."""
    return {
        "sweep": timed(
            engine, checkout.open_leases(expired_by=utcnow()).with_only_columns(Lease.id), OVERDUE
        ),
        "open leases of a user": timed(
            engine,
            checkout.open_leases(user_id=ids["users"][ended % 100]).with_only_columns(Lease.id),
            1,
        ),
    }


def swap_to_old_index(engine: Engine) -> None:
    """The 0007 schema's index: every lease's expiry."""
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_leases_open_expiry"))
        conn.execute(text("CREATE INDEX ix_leases_expires_at ON leases (expires_at)"))
    analyze(engine)


def run(label: str, url: str, ended: int) -> None:
    engine = db.make_engine(url, create_dirs=True)
    try:
        db.upgrade(engine)
        start = time.perf_counter()
        ids = fill(engine, ended)
        filled = time.perf_counter() - start
        new = measure(engine, ids, ended)
        swap_to_old_index(engine)
        old = measure(engine, ids, ended)
    finally:
        engine.dispose()
    for name in new:
        print(
            f"{label:10s} {ended:>9,} ended leases  {name:22s}  open-leases index "
            f"{new[name]:8.3f} ms   full expiry index {old[name]:8.3f} ms   "
            f"{old[name] / new[name]:7.1f}x   (filled in {filled:.0f} s)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL admin URL")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    print(f"# bench_lease_sweep  {time.strftime('%Y-%m-%d %H:%M:%S')}  median of {RUNS} runs")
    for ended in args.sizes:
        with tempfile.TemporaryDirectory(prefix="custody-bench-sweep-") as root:
            run("sqlite", f"sqlite:///{root}/custody.db", ended)
        if args.pg:
            url, drop = fresh_pg(args.pg)
            try:
                run("postgresql", url, ended)
            finally:
                drop()


if __name__ == "__main__":
    main()
