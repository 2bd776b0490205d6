"""Regression tests for two races found while building the crash check (PostgreSQL; SQLite's
single writer already serialised them): concurrent updates of one secret both took
current_version + 1 (one failed on the unique version constraint: a 500), and concurrent
check-ins of one lease all released it (one audit event each - the log said it happened
twice)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from tests.conftest import Vault
from vault.db.models import AuditEvent, Client, SecretVersion, User
from vault.errors import Conflict, StorageError
from vault.services import checkout, clients, secrets, users
from vault.services.users import principal_for
from vault.store import Store

PW = "a long enough password"


def _together(jobs: list[Callable[[], None]]) -> list[str]:
    """Run ``jobs`` in threads started at once; return the names of the exceptions raised."""
    barrier = threading.Barrier(len(jobs))
    errors: list[str] = []

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def _setup(vault: Vault) -> tuple[str, object]:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secret_id = secrets.add_secret(ctx, "Acme", title="Router", value="r0uter-first").id
        users.create_user(ctx, "cons", role="consultant", password=PW)
        users.grant(ctx, "cons", "Acme")
    with vault.store.session() as s:
        principal = principal_for(s, s.scalars(select(User).where(User.username == "cons")).one())
    return secret_id, principal


def test_regression_concurrent_updates_number_versions_in_turn(vault: Vault) -> None:
    secret_id, _ = _setup(vault)

    def update(i: int) -> Callable[[], None]:
        def job() -> None:
            with vault.ctx() as ctx:
                secrets.update_secret(ctx, "Acme", secret_id, value=f"Value number {i} x9!")

        return job

    assert _together([update(i) for i in range(8)]) == []
    with vault.store.session() as s:
        versions = s.scalars(
            select(SecretVersion.version).where(SecretVersion.secret_id == secret_id)
        ).all()
    assert sorted(versions) == list(range(1, 10))


def test_regression_concurrent_checkins_release_once(vault: Vault) -> None:
    secret_id, principal = _setup(vault)
    with vault.store.context(principal, vault.keys) as ctx:  # type: ignore[arg-type]
        lease_id = checkout.checkout(ctx, "Acme", secret_id, reason="race").lease.id

    def checkin(i: int) -> Callable[[], None]:
        def job() -> None:
            with vault.store.context(principal, vault.keys) as ctx:  # type: ignore[arg-type]
                value = f"Rotated value {i} q7#" if i % 2 else None
                checkout.checkin(ctx, lease_id, new_value=value)

        return job

    errors = _together([checkin(i) for i in range(6)])
    assert Counter(errors) == {Conflict.__name__: 5}, errors
    with vault.store.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "secret.checkin")).all()
    assert [e.detail["lease_id"] for e in events] == [lease_id]


# PostgreSQL only: on SQLite one process writes at a time (the writer's flock), no deadlock.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_deadlock_between_two_processes_is_a_storage_error(vault: Vault) -> None:
    """Two server processes' transactions that lock the same rows in opposite orders (on
    PostgreSQL; SQLite's processes write one at a time): the database breaks the deadlock by
    undoing one. That one fails as a StorageError - the 503 "try again" of the API, not a
    driver error escaping as a 500 - and keeps none of its writes; the other commits."""
    with vault.ctx() as ctx:
        ids = [clients.add_client(ctx, name).id for name in ("North", "South")]
    other = Store.open(vault.settings)  # a second process's store: its own group commit
    stores = [vault.store, other]
    barrier = threading.Barrier(2)
    outcome: dict[int, str] = {}

    def rename_both(i: int) -> None:
        first, second = ids if i == 0 else ids[::-1]
        try:
            with stores[i].context("operator:test") as ctx:
                rename = update(Client).values(name=f"{i}-{first}").where(Client.id == first)
                ctx.session.execute(rename)
                barrier.wait(10)  # each holds its first row now
                rename = update(Client).values(name=f"{i}-{second}").where(Client.id == second)
                ctx.session.execute(rename)
            outcome[i] = "committed"
        except StorageError as exc:
            outcome[i] = f"StorageError: {exc.message}"

    threads = [threading.Thread(target=rename_both, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    other.engine.dispose()
    assert sorted(outcome) == [0, 1]
    winner = next(i for i, said in outcome.items() if said == "committed")
    loser = 1 - winner
    assert outcome[loser].startswith("StorageError: this change ran into another one")
    with vault.store.session() as s:
        names = {c.id: c.name for c in s.scalars(select(Client).where(Client.id.in_(ids)))}
    assert names == {ids[0]: f"{winner}-{ids[0]}", ids[1]: f"{winner}-{ids[1]}"}
