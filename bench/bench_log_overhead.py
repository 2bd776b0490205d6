"""What the transparency log costs the check-out path through a real server.

    python bench/bench_log_overhead.py [--seconds 8] [--rounds 3] [--workers 1 2] [--pg URL]

The load of bench_checkout.py (32 wrk connections, each alternating a check-out and the
check-in of its lease, against uvicorn on loopback; SQLite with synchronous=FULL, and
PostgreSQL with --pg) is run against two servers in alternating rounds (log, plain, plain,
log, ...): the vault's app as it is, and the same app with the log turned into a plain audit
table (bench/plain_log_app.py: same rows, no head, no hashing, no subtrees). Prints per
engine and worker count the median pairs/s and server CPU per request of each, and the
log's overhead (target: at most 10%). bench_log_append.py measures the same in one process,
pair after pair, where nothing is shared between requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_checkout import (  # noqa: E402
    checkout_wrk_env,
    fresh_pg,
    server_env,
    setup_vault,
    wrk_against,
)
from bench.common import workdir  # noqa: E402

FACTORIES = {"log": "api.main:app_from_env", "plain": "bench.plain_log_app:app_from_env"}


def measure(url: str, args: argparse.Namespace, workers: int) -> dict[str, dict[str, list[float]]]:
    env = server_env(url)
    wrk_env = checkout_wrk_env(*setup_vault(url, args.clients))
    found: dict[str, dict[str, list[float]]] = {
        mode: {"pairs": [], "cpu": []} for mode in FACTORIES
    }
    for r in range(2 * args.rounds):
        mode = "plain" if r % 4 in (1, 2) else "log"
        out = wrk_against(FACTORIES[mode], env, workers, "checkout.lua", args, wrk_env)
        found[mode]["pairs"].append(out["rps"] / 2)
        found[mode]["cpu"].append(out["cpu_ms"])
    return found


def report(label: str, workers: int, found: dict[str, dict[str, list[float]]]) -> None:
    log_pairs = statistics.median(found["log"]["pairs"])
    plain_pairs = statistics.median(found["plain"]["pairs"])
    log_cpu = statistics.median(found["log"]["cpu"])
    plain_cpu = statistics.median(found["plain"]["cpu"])
    print(
        f"{label:10s} workers={workers}  log {log_pairs:6.1f} pairs/s ({log_cpu:.3f} ms CPU/req)"
        f"  plain table {plain_pairs:6.1f} pairs/s ({plain_cpu:.3f} ms CPU/req)"
        f"  ->  throughput {100 * (plain_pairs / log_pairs - 1):+5.1f}%"
        f"  CPU {100 * (log_cpu / plain_cpu - 1):+5.1f}%  (medians of {len(found['log']['pairs'])})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--pg", help="PostgreSQL admin URL (a fresh database is made, dropped)")
    args = parser.parse_args()
    results: list[tuple[str, int, Any]] = []
    for workers in args.workers:
        with workdir("custody-bench-lo-") as root:
            results.append(
                ("sqlite", workers, measure(f"sqlite:///{root}/custody.db", args, workers))
            )
        if args.pg:
            url, drop = fresh_pg(args.pg)
            try:
                results.append(("postgresql", workers, measure(url, args, workers)))
            finally:
                drop()
    print(
        f"# bench_log_overhead  clients={args.clients} seconds={args.seconds}  log vs plain table"
    )
    for label, workers, found in results:
        report(label, workers, found)


if __name__ == "__main__":
    main()
