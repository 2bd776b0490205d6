"""Check-out + check-in round trips per second through a real uvicorn server on loopback.

    python bench/bench_checkout.py [--seconds 10] [--clients 32] [--pg URL] [--rounds N]
    python bench/bench_checkout.py --slices 12 [--slice-seconds 3] [--pg URL]

32 concurrent clients (wrk: 32 connections shared by a thread per core, bench/checkout.lua;
or asyncio + httpx with --driver httpx) each repeat: check out a secret (with a
reason; a lease opens, the value comes back, the access is audited), then check it in. In the
same run, the same load against a trivial FastAPI endpoint that reads one row from the same
database (bench/trivial_app.py) gives the framework's ceiling. SQLite always; PostgreSQL with 1
and 2 workers when --pg (an admin URL; a fresh database is created and dropped).
Prints pairs/s, p50/p99 per request, the ratios, and the CPU time per request of the server
processes, of PostgreSQL's processes (when it runs on this machine) and of wrk: on two cores
they share, those say how far a second worker can take the throughput. Each round also
measures how much more pure-Python work two processes do than one on the machine at that
moment (``machine_scaling``): what a second worker could add at best.

With ``--slices N`` the configurations of an engine are served at once and driven in turn by N
short wrk runs each (``run_interleaved``): compared configurations share the machine's phases,
which on these VMs move the throughput more than most changes under test. That mode also gives
the share of the machine's CPU nobody used during each configuration's slices (idle: what a
second worker had left to take) and the ceiling app's own 2-worker/1-worker ratio (how far
the framework alone scales on this machine at that time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import PASSPHRASE, bench_settings, workdir  # noqa: E402
from tests.server import children_of, cpu_seconds, free_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def setup_vault(url: str, clients_n: int) -> tuple[str, list[str], list[str]]:
    from vault.keys import UnsealSecret
    from vault.services import clients, secrets, users
    from vault.store import Store, init_vault

    settings = bench_settings(url)
    init_vault(settings, passphrase=PASSPHRASE, admin=None)
    store = Store.open(settings)
    keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    tokens = []
    with store.context("operator:bench", keys) as ctx:
        client_id = clients.add_client(ctx, "Acme").id
        made = secrets.add_secrets(
            ctx,
            "Acme",
            [
                secrets.NewSecret(
                    title=f"secret {i}", value=f"value-{i}-{'x' * 20}", username="admin"
                )
                for i in range(clients_n)
            ],
        )
        secret_ids = [s.id for s in made]
        for i in range(clients_n):
            user = users.create_user(ctx, f"c{i}", role="consultant", password="x" * 16)
            users.grant(ctx, f"c{i}", "Acme")
            tokens.append(users._new_token(ctx, user, scope="full", ttl=users.SESSION_TTL))
    store.engine.dispose()
    return client_id, secret_ids, tokens


def server_env(db_url: str) -> dict[str, str]:
    """The environment of a vault server under load: its database, unsealed at start."""
    return {
        "CUSTODY_DATABASE_URL": db_url,
        "CUSTODY_UNSEAL_PASSPHRASE": PASSPHRASE,
        "CUSTODY_RATE_LIMIT": "0",  # measuring the server, not the per-address limit
    }


def checkout_wrk_env(client_id: str, secret_ids: list[str], tokens: list[str]) -> dict[str, str]:
    """What checkout.lua reads: the client, and a token and a secret per connection."""
    return {
        "BENCH_CLIENT": client_id,
        "BENCH_TOKENS": ",".join(tokens),
        "BENCH_SECRETS": ",".join(secret_ids),
    }


class Server:
    """``factory`` served as `custody serve` serves the vault, from this checkout or from
    ``tree`` (another checkout of the repository: bench/ab_checkout.py)."""

    def __init__(
        self, factory: str, env: dict[str, str], workers: int, tree: Path | None = None
    ) -> None:
        import subprocess

        self.port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        full.update(env)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.server",  # as `custody serve` runs the vault (both apps, for fairness)
                factory,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                "--no-access-log",
                "--cpu-affinity",
                CPU_AFFINITY,
            ],
            env=full,
            cwd=str(tree or REPO),
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/docs", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def pids(self) -> list[int]:
        """The launcher's process and its workers."""
        return [self.proc.pid, *children_of(self.proc.pid)]

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server and its workers (from /proc)."""
        pids = set(self.pids())
        return cpu_seconds(lambda pid, _name: pid in pids)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def load_checkout(
    url: str, client_id: str, secret_ids: list[str], tokens: list[str], seconds: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def worker(i: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[i]}"}
            path = f"/clients/{client_id}/secrets/{secret_ids[i]}"
            while time.monotonic() < deadline:
                start = time.perf_counter()
                out = await http.post(path + "/checkout", headers=headers, json={"reason": "bench"})
                assert out.status_code == 200, out.text
                lease = out.json()["lease"]["id"]
                back = await http.post(f"/leases/{lease}/checkin", headers=headers, json={})
                assert back.status_code == 200, back.text
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker(i) for i in range(len(tokens))))
    return latencies


async def load_trivial(url: str, concurrency: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def worker() -> None:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                response = await http.get("/row")
                assert response.status_code == 200
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


#: the launcher's ``--cpu-affinity`` for every server, vault and ceiling alike
#: (``--cpu-affinity``): ``custody serve``'s default, ``off``, or ``auto`` to compare
CPU_AFFINITY = "off"

#: wrk threads (``--wrk-threads``): as many as the machine has cores, each driving its share of
#: the connections, as wrk is meant to run; one thread per connection (32 on two cores) spent
#: CPU and context switches on the load generator that the servers under test then lacked
WRK_THREADS = os.cpu_count() or 1


def run_wrk(
    url: str, script: str, connections: int, seconds: float, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Drive ``url`` with wrk (``WRK_THREADS`` threads sharing ``connections``); return req/s,
    p50, p99 (ms)."""
    import re
    import subprocess

    threads = max(1, min(WRK_THREADS, connections))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--latency",
            # wrk's default (2 s) drops a slower request from the latency figures and sends
            # the next one on a new connection while the server still works on it
            "--timeout",
            "30s",
            "-s",
            str(Path(__file__).parent / script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {}), "BENCH_THREADS": str(threads)},
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rate, out
    socket = re.search(r"Socket errors:.*", out)
    if socket:
        print(f"wrk ({script}): {socket.group(0)}", file=sys.stderr)
    return {
        "rps": float(rate.group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def run_engine(label: str, db_url: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    env = server_env(db_url)
    client_id, secret_ids, tokens = setup_vault(db_url, args.clients)
    server = Server("api.main:app_from_env", env, workers)
    try:
        asyncio.run(load_checkout(server.url, client_id, secret_ids, tokens, 2))  # warm-up
        pairs = asyncio.run(load_checkout(server.url, client_id, secret_ids, tokens, args.seconds))
    finally:
        server.stop()
    trivial_server = Server("bench.trivial_app:app_from_env", env, workers)
    try:
        asyncio.run(load_trivial(trivial_server.url, args.clients, 2))
        trivial = asyncio.run(load_trivial(trivial_server.url, args.clients, args.seconds))
    finally:
        trivial_server.stop()
    result = {
        "label": label,
        "workers": workers,
        "pairs_per_s": len(pairs) / args.seconds,
        "requests_per_s": 2 * len(pairs) / args.seconds,
        "p50": pct(pairs, 0.50),
        "p99": pct(pairs, 0.99),
        "ceiling_per_s": len(trivial) / args.seconds,
        "ceiling_p50": statistics.median(trivial) * 1000,
    }
    result["ratio"] = result["requests_per_s"] / result["ceiling_per_s"]
    return result


def run_engine_wrk(
    label: str,
    env: dict[str, str],
    args: argparse.Namespace,
    workers: int,
    client_id: str,
    secret_ids: list[str],
    tokens: list[str],
) -> dict[str, Any]:
    wrk_env = checkout_wrk_env(client_id, secret_ids, tokens)
    co = wrk_against("api.main:app_from_env", env, workers, "checkout.lua", args, wrk_env)
    if co["errors"]:
        print(
            f"{label} workers={workers}: {co['errors']} requests refused; the vault's log says "
            f"{refusals(env['CUSTODY_DATABASE_URL'])}",
            file=sys.stderr,
        )
    ceiling = wrk_against("bench.trivial_app:app_from_env", env, workers, "row.lua", args)
    assert not ceiling["errors"], f"the ceiling app answered {ceiling['errors']} errors"
    return {
        "label": label,
        "workers": workers,
        "pairs_per_s": co["rps"] / 2,
        "requests_per_s": co["rps"],
        "p50": co["p50"],
        "p99": co["p99"],
        "ceiling_per_s": ceiling["rps"],
        "ceiling_p50": ceiling["p50"],
        "ratio": co["rps"] / ceiling["rps"],
        "latency": "per request",
        "errors": co["errors"],
        "cpu_ms": co["cpu_ms"],
        "ceiling_cpu_ms": ceiling["cpu_ms"],
        "postgres_cpu_ms": co["postgres_cpu_ms"],
        "wrk_cpu_ms": co["wrk_cpu_ms"],
    }


def wrk_against(
    factory: str,
    env: dict[str, str],
    workers: int,
    script: str,
    args: argparse.Namespace,
    wrk_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Serve ``factory`` with uvicorn, warm it up for 2 s, then drive it with wrk for
    ``args.seconds``: wrk's figures (``run_wrk``) and ``cpu_ms``, the server processes' CPU
    per request."""
    server = Server(factory, env, workers)
    try:
        run_wrk(server.url, script, args.clients, 2, wrk_env)  # warm-up
        out, used = measured_wrk(server, script, args.clients, args.seconds, wrk_env)
    finally:
        server.stop()
    requests = out["rps"] * args.seconds
    cpu, postgres, wrk = (1000 * seconds / requests for seconds in used)
    return {**out, "cpu_ms": cpu, "postgres_cpu_ms": postgres, "wrk_cpu_ms": wrk}


def measured_wrk(
    server: Server, script: str, clients: int, seconds: float, wrk_env: dict[str, str] | None
) -> tuple[dict[str, float], tuple[float, ...]]:
    """One wrk run against ``server`` (``run_wrk``'s figures) and the CPU seconds it cost:
    the server processes', PostgreSQL's (when it runs here) and wrk's."""
    before = (server.cpu_seconds(), process_cpu_seconds("postgres"), children_cpu_seconds())
    ticks_before = idle_and_total_ticks()
    out = run_wrk(server.url, script, clients, seconds, wrk_env)
    ticks_after = idle_and_total_ticks()
    after = (server.cpu_seconds(), process_cpu_seconds("postgres"), children_cpu_seconds())
    idle = (ticks_after[0] - ticks_before[0]) / max(1, ticks_after[1] - ticks_before[1])
    return {**out, "idle": idle}, tuple(b - a for a, b in zip(before, after, strict=True))


def refusals(db_url: str) -> dict[str, int]:
    """The refusals the vault recorded (``api.refused`` events), counted by route and error."""
    from collections import Counter

    from sqlalchemy import select

    from vault.db.engine import make_engine
    from vault.db.models import AuditEvent

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(AuditEvent.detail).where(AuditEvent.action == "api.refused")
            ).scalars()
            return dict(Counter(f"{d.get('route')} {d.get('error')}" for d in rows))
    finally:
        engine.dispose()


def process_cpu_seconds(command: str) -> float:
    """User + system CPU time used so far by every process named ``command`` (from /proc):
    PostgreSQL's backends and helpers, when it runs on this machine."""
    return cpu_seconds(lambda _pid, name: name == command)


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's finished children (wrk)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_any(label: str, db_url: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    if args.driver == "httpx":
        return run_engine(label, db_url, args, workers)
    env = server_env(db_url)
    client_id, secret_ids, tokens = setup_vault(db_url, args.clients)
    return run_engine_wrk(label, env, args, workers, client_id, secret_ids, tokens)


@dataclass
class _Target:
    """One server to run in the interleaved mode, and what its slices measured."""

    label: str
    workers: int
    kind: str  # "checkout" or "ceiling"
    factory: str
    env: dict[str, str]
    script: str
    wrk_env: dict[str, str] | None
    #: the checkout it is served from (None: this one)
    tree: Path | None = None
    server: Server | None = None
    slices: list[dict[str, float]] = field(default_factory=list)


def run_interleaved(
    label: str, fresh_db: Callable[[], tuple[str, Callable[[], None]]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every worker count's vault and ceiling, each worker count on a fresh database, served
    at once and driven in turn by ``args.slices`` short wrk runs (``args.slice_seconds`` each),
    the order rotated every slice.

    Run one after the other, two configurations land in different phases of a noisy machine
    (on these VMs the same run's throughput swings by 2x from one minute to the next); in
    slices they share the phases, and the 2-worker/1-worker ratio compares like with like.
    Every slice opens new connections, so a 2-worker server also gets a new split of them over
    its workers each time, as many splits as slices, instead of one per run.

    On PostgreSQL the vaults run their slices first and the ceilings after: the pools of all
    six server processes together would hold more connections than a default server allows
    (100)."""
    worker_counts = args.pg_workers if label == "postgresql" else args.sqlite_workers
    targets: list[_Target] = []
    cleanups: list[Callable[[], None]] = []
    try:
        for workers in worker_counts:
            url, cleanup = fresh_db()
            cleanups.append(cleanup)
            env = server_env(url)
            client_id, secret_ids, tokens = setup_vault(url, args.clients)
            wrk_env = checkout_wrk_env(client_id, secret_ids, tokens)
            targets.append(
                _Target(
                    label,
                    workers,
                    "checkout",
                    "api.main:app_from_env",
                    env,
                    "checkout.lua",
                    wrk_env,
                )
            )
            targets.append(
                _Target(
                    label,
                    workers,
                    "ceiling",
                    "bench.trivial_app:app_from_env",
                    env,
                    "row.lua",
                    None,
                )
            )
        if label == "postgresql":
            groups = [[t for t in targets if t.kind == kind] for kind in ("checkout", "ceiling")]
        else:
            groups = [targets]
        for group in groups:
            _drive_in_turn(group, args)
        results = [_summarise(targets, workers, args.slice_seconds) for workers in worker_counts]
    finally:
        for cleanup in cleanups:
            cleanup()
    return results


def _drive_in_turn(group: list[_Target], args: argparse.Namespace) -> None:
    """Serve every target of ``group`` at once; warm each up, then give each a slice in turn,
    ``args.slices`` times, rotating the order."""
    try:
        for target in group:
            target.server = Server(target.factory, target.env, target.workers, target.tree)
        for target in group:
            run_wrk(_url(target), target.script, args.clients, 2, target.wrk_env)  # warm-up
        for index in range(args.slices):
            shift = index % len(group)
            for target in group[shift:] + group[:shift]:
                target.slices.append(_slice(target, args))
    finally:
        for target in group:
            if target.server is not None:
                target.server.stop()
                target.server = None


def _url(target: _Target) -> str:
    assert target.server is not None
    return target.server.url


def _slice(target: _Target, args: argparse.Namespace) -> dict[str, float]:
    """One wrk run of ``args.slice_seconds`` against ``target``, with the CPU it cost."""
    server = target.server
    assert server is not None
    out, (cpu, postgres, wrk) = measured_wrk(
        server, target.script, args.clients, args.slice_seconds, target.wrk_env
    )
    requests = out["rps"] * int(args.slice_seconds)
    return {**out, "requests": requests, "cpu": cpu, "postgres_cpu": postgres, "wrk_cpu": wrk}


def _summarise(targets: list[_Target], workers: int, slice_seconds: int) -> dict[str, Any]:
    """One worker count's figures over all its slices: throughput from the total of requests
    over the total of seconds, latencies as medians of the slices' percentiles."""
    co, ceiling = (
        next(t for t in targets if (t.workers, t.kind) == (workers, kind))
        for kind in ("checkout", "ceiling")
    )

    def total(target: _Target, key: str) -> float:
        return sum(s[key] for s in target.slices)

    co_requests, ceiling_requests = total(co, "requests"), total(ceiling, "requests")
    seconds = len(co.slices) * slice_seconds
    errors = int(total(co, "errors"))
    if errors:
        print(
            f"{co.label} workers={workers}: {errors} requests refused; the vault's log says "
            f"{refusals(co.env['CUSTODY_DATABASE_URL'])}",
            file=sys.stderr,
        )
    assert not total(ceiling, "errors"), f"the ceiling app answered errors: {ceiling.slices}"
    return {
        "label": co.label,
        "workers": workers,
        "pairs_per_s": co_requests / seconds / 2,
        "requests_per_s": co_requests / seconds,
        "p50": statistics.median(s["p50"] for s in co.slices),
        "p99": statistics.median(s["p99"] for s in co.slices),
        "p99_max": max(s["p99"] for s in co.slices),
        "ceiling_per_s": ceiling_requests / seconds,
        "ceiling_p50": statistics.median(s["p50"] for s in ceiling.slices),
        "ratio": co_requests / ceiling_requests,
        "errors": errors,
        "cpu_ms": 1000 * total(co, "cpu") / co_requests,
        "ceiling_cpu_ms": 1000 * total(ceiling, "cpu") / ceiling_requests,
        "postgres_cpu_ms": 1000 * total(co, "postgres_cpu") / co_requests,
        "wrk_cpu_ms": 1000 * total(co, "wrk_cpu") / co_requests,
        "slice_rps": [s["rps"] for s in co.slices],
        "idle": statistics.mean(s["idle"] for s in co.slices),
    }


def fresh_sqlite() -> tuple[str, Callable[[], None]]:
    """A new SQLite database in a directory of its own, and what removes it."""
    stack = ExitStack()
    root = stack.enter_context(workdir("custody-bench-co-"))
    return f"sqlite:///{root}/custody.db", stack.close


def fresh_pg(admin_url: str) -> tuple[str, Any]:
    import secrets as pysecrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"custody_bench_{pysecrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def _spin(loops: int) -> float:
    """Seconds of pure-Python work: the same loop in every process."""
    start = time.perf_counter()
    total = 0
    for i in range(loops):
        total += i * i % 7
    return time.perf_counter() - start


def machine_scaling(loops: int = 3_000_000, repeats: int = 3) -> float:
    """How much more CPU-bound Python work two processes get done than one, on this machine
    now (median of ``repeats``): the most any second worker could add if it needed nothing
    else of the two cores. Measured in each round, as the machine's speed drifts."""
    import multiprocessing

    ratios = []
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1000, 1000])  # both workers started and warm
        for _ in range(repeats):
            one = _spin(loops)
            start = time.perf_counter()
            pool.map(_spin, [loops, loops], chunksize=1)
            ratios.append(2 * one / (time.perf_counter() - start))
    return statistics.median(ratios)


def main() -> None:
    global WRK_THREADS, CPU_AFFINITY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--sqlite-workers", type=int, nargs="*", default=[1, 2], help="worker counts on SQLite"
    )
    parser.add_argument("--pg-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--driver",
        choices=("wrk", "httpx"),
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator (wrk when installed)",
    )
    parser.add_argument(
        "--pg",
        help="PostgreSQL admin URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every configuration this many times, interleaved (this machine is noisy: "
        "the summary gives medians, and each round's 2-worker/1-worker ratio)",
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=0,
        help="interleaved mode: serve every configuration of an engine at once and drive them in "
        "turn, this many short runs each (the figures of configurations compared then come "
        "from the same phases of the machine)",
    )
    parser.add_argument("--slice-seconds", type=int, default=3, help="length of one slice")
    parser.add_argument(
        "--cpu-affinity",
        choices=["auto", "off"],
        default=CPU_AFFINITY,
        help="the servers' worker CPU affinity (api.server --cpu-affinity)",
    )
    parser.add_argument(
        "--wrk-threads",
        type=int,
        default=WRK_THREADS,
        help="wrk threads sharing the connections (default: one per core)",
    )
    args = parser.parse_args()
    WRK_THREADS, CPU_AFFINITY = args.wrk_threads, args.cpu_affinity
    if args.slices:
        if args.driver != "wrk":
            parser.error("--slices needs wrk")
        main_interleaved(args)
        return
    results = []
    scaling: list[float] = []
    for round_ in range(1, args.rounds + 1):
        scaling.append(machine_scaling())
        for workers in args.sqlite_workers:
            with workdir("custody-bench-co-") as root:
                result = run_any("sqlite", f"sqlite:///{root}/custody.db", args, workers)
                results.append({**result, "round": round_})
        if args.pg:
            for workers in args.pg_workers:
                url, drop = fresh_pg(args.pg)
                try:
                    results.append({**run_any("postgresql", url, args, workers), "round": round_})
                finally:
                    drop()
    print(
        f"# bench_checkout  clients={args.clients} wrk threads={WRK_THREADS} "
        f"cpu affinity={CPU_AFFINITY} "
        f"seconds={args.seconds}  "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}  "
        f"sqlite synchronous={os.environ.get('CUSTODY_SQLITE_SYNCHRONOUS', 'FULL')}  "
        f"driver={args.driver}  latency per {'request' if args.driver == 'wrk' else 'pair'}"
    )
    for r in results:
        print(
            (f"round {r['round']}  " if args.rounds > 1 else "")
            + f"{r['label']:10s} workers={r['workers']}  {r['pairs_per_s']:7.1f} pairs/s "
            + (f"[{r['errors']} refused] " if r.get("errors") else "")
            + f"({r['requests_per_s']:7.1f} req/s)  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms"
            f"  | ceiling {r['ceiling_per_s']:7.1f} req/s (p50 {r['ceiling_p50']:5.1f} ms)"
            f"  -> {100 * r['ratio']:5.1f}% of ceiling"
            + (
                f"  | CPU {r['cpu_ms']:.2f} ms/request (ceiling {r['ceiling_cpu_ms']:.2f})"
                + (
                    f", PostgreSQL {r['postgres_cpu_ms']:.2f}"
                    if r["label"] == "postgresql" and r["postgres_cpu_ms"] > 0
                    else ""
                )
                + f", wrk {r['wrk_cpu_ms']:.2f}"
                if "cpu_ms" in r
                else ""
            )
        )
    for label in ("sqlite", "postgresql"):
        ratios = []
        for round_ in range(1, args.rounds + 1):
            runs = {r["workers"]: r for r in results if (r["label"], r["round"]) == (label, round_)}
            if 1 in runs and 2 in runs:
                ratios.append(runs[2]["pairs_per_s"] / runs[1]["pairs_per_s"])
        if ratios:
            print(
                f"{label} 2 workers / 1 worker: "
                + ", ".join(f"{x:.2f}x" for x in ratios)
                + (f" (median {statistics.median(ratios):.2f}x)" if len(ratios) > 1 else "")
            )
    print(
        "machine: two CPU-bound Python processes / one, at the start of each round: "
        + ", ".join(f"{x:.2f}x" for x in scaling)
        + (f" (median {statistics.median(scaling):.2f}x)" if len(scaling) > 1 else "")
    )
    if args.rounds > 1:
        print("# medians over the rounds")
        for label in ("sqlite", "postgresql"):
            for workers in sorted({r["workers"] for r in results if r["label"] == label}):
                same = [r for r in results if (r["label"], r["workers"]) == (label, workers)]
                med = {
                    k: statistics.median(r[k] for r in same)
                    for k in ("pairs_per_s", "p99", "ratio")
                }
                print(
                    f"{label:10s} workers={workers}  {med['pairs_per_s']:7.1f} pairs/s  "
                    f"p99 {med['p99']:6.1f} ms  {100 * med['ratio']:5.1f}% of ceiling"
                )


def _cpu_ticks() -> list[int]:
    """The machine's CPU time so far, in ticks, by kind: user, nice, system, idle, iowait, irq,
    softirq, steal (/proc/stat)."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def idle_and_total_ticks() -> tuple[int, int]:
    """CPU time nobody used (idle and waiting for I/O) and all CPU time, in ticks."""
    fields = _cpu_ticks()
    return fields[3] + fields[4], sum(fields)


def steal_and_total_ticks() -> tuple[int, int]:
    """CPU time the hypervisor gave to others (steal) and all CPU time, in ticks."""
    fields = _cpu_ticks()
    return fields[7], sum(fields)


def main_interleaved(args: argparse.Namespace) -> None:
    engines: list[tuple[str, Callable[[], tuple[str, Callable[[], None]]]]] = []
    if args.sqlite_workers:
        engines.append(("sqlite", fresh_sqlite))
    if args.pg:
        engines.append(("postgresql", lambda: fresh_pg(args.pg)))
    print(
        f"# bench_checkout interleaved  clients={args.clients}  wrk threads={WRK_THREADS}  "
        f"cpu affinity={CPU_AFFINITY}  "
        f"slices={args.slices} x "
        f"{args.slice_seconds} s per configuration  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
        f"sqlite synchronous={os.environ.get('CUSTODY_SQLITE_SYNCHRONOUS', 'FULL')}  "
        "latency per request (median of the slices' percentiles)"
    )
    for label, fresh_db in engines:
        scaling = machine_scaling()
        steal_before = steal_and_total_ticks()
        results = run_interleaved(label, fresh_db, args)
        steal_after = steal_and_total_ticks()
        steal = (steal_after[0] - steal_before[0]) / max(1, steal_after[1] - steal_before[1])
        for r in results:
            print(
                f"{label:10s} workers={r['workers']}  {r['pairs_per_s']:7.1f} pairs/s "
                + (f"[{r['errors']} refused] " if r["errors"] else "")
                + f"({r['requests_per_s']:7.1f} req/s)  p50 {r['p50']:6.1f} ms  "
                f"p99 {r['p99']:6.1f} ms (worst slice {r['p99_max']:.1f})"
                f"  | ceiling {r['ceiling_per_s']:7.1f} req/s (p50 {r['ceiling_p50']:5.1f} ms)"
                f"  -> {100 * r['ratio']:5.1f}% of ceiling"
                f"  | CPU {r['cpu_ms']:.2f} ms/request (ceiling {r['ceiling_cpu_ms']:.2f})"
                + (f", PostgreSQL {r['postgres_cpu_ms']:.2f}" if label == "postgresql" else "")
                + f", wrk {r['wrk_cpu_ms']:.2f}; machine idle {100 * r['idle']:.0f}%"
            )
        by_workers = {r["workers"]: r for r in results}
        if 1 in by_workers and 2 in by_workers:
            one, two = by_workers[1], by_workers[2]
            pairs = [b / a for a, b in zip(one["slice_rps"], two["slice_rps"], strict=True)]
            print(
                f"{label} 2 workers / 1 worker: {two['pairs_per_s'] / one['pairs_per_s']:.2f}x "
                f"(slice by slice: median {statistics.median(pairs):.2f}x, "
                f"{min(pairs):.2f}x-{max(pairs):.2f}x); the ceiling app's own: "
                f"{two['ceiling_per_s'] / one['ceiling_per_s']:.2f}x"
            )
        print(
            f"machine: two CPU-bound Python processes / one {scaling:.2f}x; "
            f"CPU stolen by the hypervisor during the {label} slices {100 * steal:.1f}%"
        )


if __name__ == "__main__":
    main()
