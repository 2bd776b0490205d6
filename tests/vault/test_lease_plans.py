"""How each engine finds leases once the history of ended ones is long.

A vault keeps every lease that ever ended (the record of who held what). The queries that run
all the time - the lease sweep in every server process, the overdue list, a consultant's open
leases, a check-in - must cost what the leases open now cost, not what the history costs. These
tests read the plans the engines choose (EXPLAIN), with a history the planner can see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql

from tests.conftest import Vault
from vault.db.models import Lease, User, new_id, utcnow
from vault.services import checkout, clients, secrets, users

ENDED = 3000
PW = "a long enough password"


def _plan(conn: Connection, statement: Any) -> str:
    """The plan ``conn``'s engine picks for a Core statement, with the values bound in it."""
    compiled = statement.compile(dialect=conn.dialect)
    if conn.dialect.name == "sqlite":
        params: Any = tuple(compiled.params[name] for name in compiled.positiontup or ())
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params).all()
        return "\n".join(str(row[-1]) for row in rows)
    rows = conn.exec_driver_sql("EXPLAIN " + compiled.string, dict(compiled.params)).all()
    return "\n".join(str(row[0]) for row in rows)


@pytest.fixture
def history(vault: Vault) -> dict[str, str]:
    """One client, one secret, two consultants; carol has ENDED ended leases and two open ones
    (one overdue), dave one open lease; statistics gathered, as autovacuum would."""
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        for name in ("carol", "dave"):
            users.create_user(ctx, name, role="consultant", password=PW)
            users.grant(ctx, name, "Acme")
        secret = secrets.add_secret(ctx, "Acme", title="Router", value="r0uter-pass")
        ids = {"secret": secret.id, "client": secret.client_id}
    with vault.store.session() as s:
        ids.update({u.username: u.id for u in s.scalars(select(User))})
    now = utcnow()

    def lease(user: str, expires: timedelta, ended: bool) -> dict[str, Any]:
        return {
            "id": new_id(),
            "secret_id": ids["secret"],
            "client_id": ids["client"],
            "user_id": ids[user],
            "holder": user,
            "version": 1,
            "exclusive": False,
            "created_at": now + expires - timedelta(hours=1),
            "expires_at": now + expires,
            "released_at": now + expires - timedelta(minutes=30) if ended else None,
            "release_kind": "checkin" if ended else None,
        }

    rows = [lease("carol", -timedelta(minutes=i + 1), ended=True) for i in range(ENDED)]
    rows += [
        lease("carol", -timedelta(minutes=5), ended=False),
        lease("carol", timedelta(minutes=30), ended=False),
        lease("dave", timedelta(minutes=40), ended=False),
    ]
    with vault.store.engine.begin() as conn:
        conn.execute(Lease.__table__.insert(), rows)  # type: ignore[attr-defined]
    with vault.store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return ids


def test_the_sweep_and_open_lease_lists_read_only_open_leases(
    vault: Vault, history: dict[str, str]
) -> None:
    """With 3,000 ended leases, the sweep's query, the overdue list's and a consultant's open
    leases all go through the index of open leases - no scan of the table, and not the
    user's index, which holds every lease they ever had. Fails with the full index on
    expires_at that migration 0008 replaced (the sweep then reads the whole history)."""
    now = utcnow()
    queries = {
        "sweep": checkout.open_leases(expired_by=now),
        "mine": checkout.open_leases(user_id=history["carol"]),
        "mine overdue": checkout.open_leases(expired_by=now, user_id=history["carol"]),
    }
    with vault.store.engine.connect() as conn:
        for name, query in queries.items():
            plan = _plan(conn, query)
            assert "ix_leases_open_expiry" in plan, f"{name}: {plan}"
            assert "ix_leases_user_id" not in plan, f"{name}: {plan}"


def test_the_services_answer_from_the_open_leases(vault: Vault, history: dict[str, str]) -> None:
    """What the plans above serve: the sweep ends exactly the one overdue open lease, and the
    lists hold the open leases only."""
    with vault.store.session() as s:
        carol = users.principal_for(s, s.get(User, history["carol"]))
    with vault.store.context(carol, vault.keys) as ctx:
        assert len(checkout.list_leases(ctx)) == 2
        assert len(checkout.list_leases(ctx, overdue=True)) == 1
    with vault.ctx() as ctx:
        assert checkout.expire_leases(ctx) == 1
        assert len(checkout.list_leases(ctx)) == 2  # the operator sees carol's and dave's
    with vault.store.context(carol, vault.keys) as ctx:
        assert checkout.list_leases(ctx, overdue=True) == []


def test_a_check_in_finds_its_lease_by_primary_key_before_any_statistics(vault: Vault) -> None:
    """The plain check-in's statement looks its lease up by primary key. On PostgreSQL it is
    planned generically (as psycopg's prepared statements are from their fifth run) while the
    leases table is empty and never analysed - a new vault. Written plainly (``released_at IS
    NULL``, ``user_id = $n``), that plan took the index of open leases or the user's index
    instead, and kept it as the table grew, until autovacuum's first ANALYZE."""
    statement = checkout._END_OWN_LEASE.statement
    with vault.store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = _plan(conn, statement)
            assert "USING INDEX sqlite_autoindex_leases_1 (id=?)" in plan, plan
            return
        compiled = statement.compile(dialect=postgresql.dialect(paramstyle="numeric_dollar"))
        values = {
            **compiled.params,
            "lease_id": "no such lease",
            "user_id": "some user",
            "released_at": "2026-01-01 00:00:00+00",
        }
        arguments = ", ".join(f"'{values[name]}'" for name in compiled.positiontup or ())
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE end_own_lease AS {compiled.string}")
        plan = "\n".join(
            str(row[0])
            for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE end_own_lease({arguments})")
        )
        conn.rollback()
    assert "Index Scan using pk_leases on leases" in plan, plan
