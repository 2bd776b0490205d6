"""Crash consistency: kill a real uvicorn server with SIGKILL in the middle of concurrent
check-outs, check-ins and secret updates, restart it, and check the store after every kill.

    python -m tests.reliability.crash --engine sqlite --kills 20
    python -m tests.reliability.crash --engine postgresql --kills 20 [--pg-url URL]

After each restart:

* every acknowledged write is there (each update's version row with its value, each check-out's
  lease, each check-in's release), with exactly one audit event each;
* no half-written record: every secret's versions run 1..current_version, every lease points
  at a version that exists, every exclusive hold at an open lease, the log's events are
  numbered 0..n-1 and its head says n;
* ``custody audit export`` of the whole log verifies offline (vault.log.verify);
* the log grew by exactly the acknowledged events plus those requests in flight at the kill
  that committed anyway (their answer was lost): reported as "unacknowledged, committed: k".
  Every request carries a unique id in its audit event (the check-out reason, the updated
  title, the lease of a check-in), so an event appearing twice, or one nobody asked for, fails.

SIGKILL ends the process, not the machine: what the OS already had is kept, so this shows the
transactions are atomic and the server holds nothing it has not committed; it says nothing
about power loss (that is SQLite's ``synchronous=FULL`` and PostgreSQL's fsync).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets as pysecrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.reliability.seed import Seeded, seed, settings_for
from tests.server import free_port
from vault.db.models import AuditEvent, Client, Lease, LogState, Secret, SecretVersion
from vault.log.verify import verify_export_file
from vault.services.secrets import reveal_version

OUR_ACTIONS = {"secret.update", "secret.checkout", "secret.checkin"}


@dataclass
class Op:
    kind: str  # update | checkout | checkin
    marker: str  # the unique id carried into the audit event
    secret_id: str
    lease_id: str | None = None
    version: int | None = None
    value: str | None = None


@dataclass
class Ledger:
    """What the clients know: acknowledged operations, and those whose answer was lost."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: list[Op] = field(default_factory=list)
    unknown: list[Op] = field(default_factory=list)
    open_leases: list[tuple[str, str]] = field(default_factory=list)  # (lease, secret)
    errors: list[str] = field(default_factory=list)


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        self.env.update(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.main:app_from_env",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def worker(
    n: int, url: str, tokens: dict[str, str], vault: Seeded, ledger: Ledger,
    up: threading.Event, stop: threading.Event,
) -> None:  # fmt: skip
    rng = random.Random(n)
    client = vault.ids["client_a"]
    mine = vault.ids[f"secret_a{n}"]  # updates go to this worker's own secret
    shared = [vault.ids[k] for k in vault.ids if k.startswith("secret_a")]
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    consultant = {"Authorization": f"Bearer {tokens['cons_a']}"}
    held: list[tuple[str, str]] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            if not up.wait(0.2):
                continue
            marker = f"w{n}-{pysecrets.token_hex(6)}"
            roll = rng.random()
            if held and roll < 0.35:
                lease_id, secret_id = held.pop()
                op = Op("checkin", marker=lease_id, secret_id=secret_id, lease_id=lease_id)
                call = ("POST", f"/leases/{lease_id}/checkin", consultant, {})
            elif roll < 0.7:
                secret_id = rng.choice(shared)
                op = Op("checkout", marker=marker, secret_id=secret_id)
                call = (
                    "POST", f"/clients/{client}/secrets/{secret_id}/checkout", consultant,
                    {"reason": marker, "ttl_seconds": 3600},
                )  # fmt: skip
            else:
                op = Op("update", marker=marker, secret_id=mine, value=f"value-{marker}")
                call = (
                    "PATCH", f"/clients/{client}/secrets/{mine}", admin,
                    {"title": f"T-{marker}", "value": op.value},
                )  # fmt: skip
            method, path, headers, body = call
            try:
                r = http.request(method, path, headers=headers, json=body)
            except httpx.TransportError:
                with ledger.lock:  # maybe committed, maybe not: never retried
                    ledger.unknown.append(op)
                up.wait(30)
                continue
            if r.status_code >= 300:
                with ledger.lock:
                    ledger.errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
                continue
            data = r.json()
            if op.kind == "checkout":
                op.lease_id = data["lease"]["id"]
                op.version = data["version"]
                held.append((op.lease_id, secret_id))
            elif op.kind == "update":
                op.version = data["version"]
            with ledger.lock:
                ledger.acked.append(op)


def check_store(vault: Seeded, ledger: Ledger, baseline: int) -> tuple[int, int, list[str]]:
    """Check the store after a restart; return (events now, unacknowledged committed, problems)."""
    problems: list[str] = []
    keys = vault.keys
    with vault.store.session() as s:
        secrets_ = {x.id: x for x in s.scalars(select(Secret))}
        versions: dict[str, list[int]] = {}
        rows: dict[tuple[str, int], SecretVersion] = {}
        for v in s.scalars(select(SecretVersion)):
            versions.setdefault(v.secret_id, []).append(v.version)
            rows[(v.secret_id, v.version)] = v
        leases = {x.id: x for x in s.scalars(select(Lease))}
        for sid, secret in secrets_.items():
            if sorted(versions.get(sid, [])) != list(range(1, secret.current_version + 1)):
                problems.append(
                    f"secret {sid}: versions {sorted(versions.get(sid, []))} "
                    f"but current_version {secret.current_version}"
                )
            if secret.held_by_lease_id is not None:
                hold = leases.get(secret.held_by_lease_id)
                if hold is None or hold.released_at is not None:
                    problems.append(f"secret {sid} held by a missing or ended lease")
        for lease in leases.values():
            if (lease.secret_id, lease.version) not in rows:
                problems.append(f"lease {lease.id} points at a missing version")
            if (lease.released_at is None) != (lease.release_kind is None):
                problems.append(f"lease {lease.id} half released")
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        size = s.scalar(select(LogState.size))
        count = s.scalar(select(func.count()).select_from(AuditEvent))
        if [e.seq for e in events] != list(range(len(events))) or size != count:
            problems.append(f"log: {count} events, head says {size}, or gaps in seq")
        new = events[baseline:]
        seen: Counter[str] = Counter()
        for e in new:
            if e.action not in OUR_ACTIONS or e.outcome != "ok":
                problems.append(f"unexpected event {e.seq}: {e.action} {e.outcome} {e.detail}")
                continue
            if e.action == "secret.checkout":
                seen[f"checkout:{e.detail.get('reason')}"] += 1
                if e.detail.get("lease_id") not in leases:
                    problems.append(f"check-out event {e.seq} without its lease")
            elif e.action == "secret.checkin":
                seen[f"checkin:{e.detail.get('lease_id')}"] += 1
                lease = leases.get(e.detail.get("lease_id", ""))
                if lease is None or lease.release_kind != "checkin":
                    problems.append(f"check-in event {e.seq} but the lease is not checked in")
            else:
                seen[f"update:{str(e.detail.get('title', ''))[2:]}"] += 1
                if (e.subject_id, e.detail.get("version")) not in rows:
                    problems.append(f"update event {e.seq} without its version row")
        for key, n in seen.items():
            if n > 1:
                problems.append(f"{key} recorded {n} times")
        ours_by_lease_reason = {x.reason for x in leases.values()}
        for op in ledger.acked:
            key = f"{op.kind}:{op.marker}"
            if seen[key] != 1:
                problems.append(f"acknowledged {key} has {seen[key]} events")
            if op.kind == "checkout" and op.marker not in ours_by_lease_reason:
                problems.append(f"acknowledged check-out {op.marker} has no lease")
            if op.kind == "checkin" and leases[op.lease_id or ""].released_at is None:
                problems.append(f"acknowledged check-in {op.lease_id} not released")
            if op.kind == "update":
                row = rows.get((op.secret_id, op.version or 0))
                if row is None:
                    problems.append(f"acknowledged update {op.marker}: version missing")
                else:
                    client = s.get(Client, secrets_[op.secret_id].client_id)
                    assert client is not None
                    value = reveal_version(
                        keys.cipher(client), client, secrets_[op.secret_id], row
                    ).value
                    if value != op.value:
                        problems.append(f"acknowledged update {op.marker}: wrong value")
        committed = sum(1 for op in ledger.unknown if seen[f"{op.kind}:{op.marker}"] == 1)
        if len(new) != len(ledger.acked) + committed:
            problems.append(
                f"log grew by {len(new)}: {len(ledger.acked)} acknowledged + {committed} "
                "unacknowledged committed"
            )
    return len(events), committed, problems


def export_and_verify(vault: Seeded, workdir: Path, round_: int) -> int:
    """``custody audit export`` of the whole log (the CLI's own code, run in this process to
    spare a start-up), then the offline verifier over the file."""
    from cli.app import run as cli

    out = workdir / f"export-{round_}.jsonl"
    saved = {k: v for k, v in os.environ.items() if k.startswith("CUSTODY_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update(vault.env())
        status = cli(["audit", "export", "--out", str(out)])
    finally:
        for k in vault.env():
            os.environ.pop(k, None)
        os.environ.update(saved)
    if status != 0:
        raise RuntimeError(f"custody audit export exited {status}")
    report = verify_export_file(out, jobs=1)
    out.unlink()
    return report.events


def run(
    engine: str, kills: int, *, pg_url: str | None, seed_value: int, quiet: bool
) -> dict[str, Any]:
    rng = random.Random(seed_value)
    with tempfile.TemporaryDirectory(prefix="custody-crash-") as tmp:
        workdir = Path(tmp)
        db_url, drop = None, None
        if engine == "postgresql":
            db_url, drop = _pg_database(pg_url)
        vault = seed(settings_for(workdir / "custody-data", db_url), secrets_per_client=6)
        try:
            return _rounds(vault, workdir, kills, rng, quiet)
        finally:
            vault.store.engine.dispose()
            if drop is not None:
                drop()


def _rounds(
    vault: Seeded, workdir: Path, kills: int, rng: random.Random, quiet: bool
) -> dict[str, Any]:
    tokens = {name: vault.token(name) for name in ("admin", "cons_a")}
    with vault.store.session() as s:
        baseline = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
    server = Server(vault.env(CUSTODY_RATE_LIMIT="0", CUSTODY_CHECKPOINT_SECONDS="0.5"))
    server.start()
    ledger = Ledger()
    up, stop = threading.Event(), threading.Event()
    up.set()
    threads = [
        threading.Thread(target=worker, args=(n, server.url, tokens, vault, ledger, up, stop))
        for n in range(6)
    ]
    for t in threads:
        t.start()
    totals = Counter[str]()
    problems: list[str] = []
    try:
        for round_ in range(1, kills + 1):
            deadline = time.monotonic() + 20
            while len(ledger.acked) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)  # some traffic first, then a kill at a random moment
            time.sleep(rng.uniform(0.0, 2.0))
            up.clear()
            server.kill()
            time.sleep(0.3)  # let every worker see its connection fail
            t0 = time.monotonic()
            server.start()
            t1 = time.monotonic()
            with ledger.lock:
                size, committed, found = check_store(vault, ledger, baseline)
                exported = export_and_verify(vault, workdir, round_)
                if exported != size:
                    found.append(f"export has {exported} events, the store {size}")
                line = (
                    f"kill {round_}: {len(ledger.acked)} acknowledged, "
                    f"{len(ledger.unknown)} unacknowledged, committed: {committed}; "
                    f"log {size} events verified (restart {t1 - t0:.1f} s, "
                    f"checks {time.monotonic() - t1:.1f} s)"
                )
                if not quiet:
                    print(line, flush=True)
                totals["acknowledged"] += len(ledger.acked)
                totals["unacknowledged"] += len(ledger.unknown)
                totals["committed"] += committed
                problems += [f"kill {round_}: {p}" for p in found + ledger.errors]
                ledger.acked.clear()
                ledger.unknown.clear()
                ledger.errors.clear()
                baseline = size
            if problems:
                break
            up.set()
    finally:
        stop.set()
        up.set()
        for t in threads:
            t.join(60)
        server.stop()
    return {"kills": kills, "problems": problems, **totals}


def _pg_database(admin_url: str | None) -> tuple[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = admin_url or os.environ.get(
        "CUSTODY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"custody_crash_{pysecrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = :n AND pid <> pg_backend_pid()"),
                {"n": name},
            )  # fmt: skip
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    result = run(args.engine, args.kills, pg_url=args.pg_url, seed_value=args.seed, quiet=False)
    print(
        f"{args.engine}: {result['kills']} kills; {result.get('acknowledged', 0)} acknowledged "
        f"writes present; unacknowledged {result.get('unacknowledged', 0)}, committed: "
        f"{result.get('committed', 0)}; seed {args.seed}"
    )
    for p in result["problems"]:
        print("PROBLEM:", p)
    sys.exit(1 if result["problems"] else 0)


if __name__ == "__main__":
    main()
