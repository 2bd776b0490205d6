"""What the transparency log costs the check-out path: log on versus a plain audit table.

    python bench/bench_log_append.py [--pairs 400] [--rounds 6] [--pg URL]

One process runs check-out + check-in pairs through the services (each its own durable
transaction, as the API does: lease, reveal, value, audit events) against a real database -
SQLite with synchronous=FULL, and PostgreSQL with --pg (an admin URL; a fresh database is made
and dropped). Rounds alternate between the transparency log (events become leaves: head moved,
leaves hashed, subtrees stored) and the same events stored as a plain table (the same INSERT,
no head, no hashing), log-plain-plain-log ..., after an untimed warm-up of each, so both see
the same machine noise and neither always goes first. Prints per engine the median time per
pair of each, the overhead of the log (target: at most 10%), and the median overhead of
neighbouring rounds (less sensitive to load that drifts over the run); then the same for this
process's CPU time (on PostgreSQL the server's CPU is not in it), which other processes on a
shared machine disturb far less than wall time; then the CPU time spent inside
``auditlog.append`` itself in each mode - what the log adds, measured directly.
"""

from __future__ import annotations

import argparse
import secrets as pysecrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import PASSPHRASE, bench_settings, workdir  # noqa: E402
from vault.keys import UnsealSecret  # noqa: E402
from vault.services import Principal, auditlog, checkout, clients, secrets  # noqa: E402
from vault.store import Store, init_vault  # noqa: E402


@dataclass
class Rounds:
    """Seconds per pair of each timed round of one mode, in order: wall clock, CPU, and the
    CPU spent inside ``auditlog.append``."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    append_cpu: list[float] = field(default_factory=list)


class AppendClock:
    """Wraps ``auditlog.append`` for the run, adding up this process's CPU time inside it - the
    append measured directly, without the rest of the pair's noise."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._append = auditlog.append

    def __enter__(self) -> AppendClock:
        def timed(session: Any, events: Any) -> int:
            start = time.process_time()
            try:
                return self._append(session, events)
            finally:
                self.seconds += time.process_time() - start

        auditlog.append = timed
        return self

    def __exit__(self, *_exc: object) -> None:
        auditlog.append = self._append


def run(url: str, home: Path, pairs: int, rounds: int) -> tuple[Rounds, Rounds]:
    settings = bench_settings(url, home)
    init_vault(settings, passphrase=PASSPHRASE, admin=None)
    with AppendClock() as clock:  # before the Store: its group writer keeps auditlog.append
        return _run(Store.open(settings), pairs, rounds, clock)


def _run(store: Store, pairs: int, rounds: int, clock: AppendClock) -> tuple[Rounds, Rounds]:
    keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    with store.context("operator:bench", keys) as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secrets(
            ctx, "Acme", [secrets.NewSecret(title=f"s{i}", value="v" * 24) for i in range(64)]
        )
    consultant = Principal(name="user:bench", role="admin")

    def pairs_of(count: int) -> tuple[float, float, float]:
        wall, cpu, append_cpu = time.perf_counter(), time.process_time(), clock.seconds
        for i in range(count):
            with store.context(consultant, keys) as ctx:
                out = checkout.checkout(ctx, "Acme", f"s{i % 64}", reason="benchmark")
            with store.context(consultant, keys) as ctx:
                checkout.checkin(ctx, out.lease.id)
        return (
            (time.perf_counter() - wall) / count,
            (time.process_time() - cpu) / count,
            (clock.seconds - append_cpu) / count,
        )

    log, plain = Rounds(), Rounds()
    try:
        for warm_up_plain in (False, True):
            auditlog.PLAIN_TABLE_FOR_BENCHMARKS = warm_up_plain
            pairs_of(min(pairs, 100))
        for r in range(rounds * 2):
            auditlog.PLAIN_TABLE_FOR_BENCHMARKS = r % 4 in (1, 2)
            wall, cpu, append_cpu = pairs_of(pairs)
            mode = plain if auditlog.PLAIN_TABLE_FOR_BENCHMARKS else log
            mode.wall.append(wall)
            mode.cpu.append(cpu)
            mode.append_cpu.append(append_cpu)
    finally:
        auditlog.PLAIN_TABLE_FOR_BENCHMARKS = False
        store.engine.dispose()
    return log, plain


def overheads(log: list[float], plain: list[float]) -> tuple[float, float]:
    """The log's overhead in percent: of the medians, and the median of neighbouring rounds'."""
    lm, pm = statistics.median(log), statistics.median(plain)
    paired = statistics.median(lg / pl for lg, pl in zip(log, plain, strict=True))
    return 100 * (lm - pm) / pm, 100 * (paired - 1)


def report(name: str, log: Rounds, plain: Rounds) -> None:
    for label, lg, pl in (("", log.wall, plain.wall), ("CPU", log.cpu, plain.cpu)):
        overhead, paired = overheads(lg, pl)
        print(
            f"{name if not label else '':11s}{label:>4s} log {statistics.median(lg) * 1000:6.2f}"
            f" ms/pair   plain table {statistics.median(pl) * 1000:6.2f} ms/pair   "
            f"overhead {overhead:+5.1f}%   paired rounds {paired:+5.1f}%   "
            f"(medians of {len(lg)} rounds)"
        )
    inside_log = statistics.median(log.append_cpu)
    inside_plain = statistics.median(plain.append_cpu)
    extra = inside_log - inside_plain
    print(
        f"{'':11s}CPU in auditlog.append: log {inside_log * 1e6:4.0f} us/pair   plain table "
        f"{inside_plain * 1e6:4.0f} us/pair   the log's own {extra * 1e6:+4.0f} us/pair = "
        f"{100 * extra / statistics.median(plain.cpu):+4.1f}% of a pair's CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400, help="pairs per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each mode")
    parser.add_argument("--pg", help="PostgreSQL admin URL")
    args = parser.parse_args()
    with workdir("custody-log-bench-") as tmp:
        log, plain = run(f"sqlite:///{tmp}/custody.db", tmp, args.pairs, args.rounds)
        report("SQLite", log, plain)
        if args.pg:
            admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
            name = f"custody_bench_{pysecrets.token_hex(4)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
                log, plain = run(url, tmp, args.pairs, args.rounds)
                report("PostgreSQL", log, plain)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                admin.dispose()


if __name__ == "__main__":
    main()
