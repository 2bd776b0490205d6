"""Backup while writes go on, restore onto a fresh SQLite file and a fresh PostgreSQL schema,
and every refusal a restore owes: newer schema, non-empty target, a backup whose log was
edited (which restores nothing)."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import TEST_PASSPHRASE, Vault, fresh_pg_schema
from vault.config import sqlite_url
from vault.crypto import age
from vault.db.engine import make_engine
from vault.db.models import AuditEvent
from vault.errors import Conflict, SchemaError
from vault.keys import UnsealSecret
from vault.log.errors import LogError
from vault.services import backup, clients, secrets
from vault.services.recovery import recover_client
from vault.store import Store


@pytest.fixture
def pg_target(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty schema in this run's PostgreSQL database (skipped without PostgreSQL)."""
    with fresh_pg_schema(request, "r") as url:
        yield url


def _open(vault: Vault, url: str) -> tuple[Store, object]:
    store = Store.open(dataclasses.replace(vault.settings, database_url=url))
    return store, store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))


def test_backup_while_writing_then_restore_on_both_engines(
    vault: Vault, tmp_path: Path, pg_target: str
) -> None:
    identity = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(identity.recipient)])
        secrets.add_secrets(
            ctx, "Acme", [secrets.NewSecret(title=f"S{i}", value=f"v{i}-Zq8#") for i in range(200)]
        )
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            with vault.ctx() as ctx:
                secrets.add_secret(ctx, "Acme", title=f"During {i}", value=f"d{i}-Zq8#")
            written.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:
            threading.Event().wait(0.01)
        out = tmp_path / "backups" / "custody-backup.db"
        out.parent.mkdir()
        info = backup.backup(vault.settings.database_url, out)
    finally:
        stop.set()
        thread.join(30)
    assert out.stat().st_mode & 0o777 == 0o600
    assert info.events > 200

    # The backup is one consistent snapshot: its log verifies and counts every event in it.
    conn = sqlite3.connect(out)
    (events,) = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    during = conn.execute("SELECT count(*) FROM secrets WHERE title LIKE 'During %'").fetchone()
    conn.close()
    assert events == info.events and during[0] >= 5

    # The client's way out works on the backup itself.
    recovered = recover_client(
        make_engine(sqlite_url(out), read_only=True),
        "Acme",
        [identity],
    )
    assert len(recovered.secrets) == 200 + during[0]

    for target in (sqlite_url(tmp_path / "fresh-host" / "custody.db"), pg_target):
        result = backup.restore(out, target)
        assert result.log.size == events and result.vault_id == info.vault_id
        store, keys = _open(vault, target)
        try:
            with store.context("operator:test", keys) as ctx:  # type: ignore[arg-type]
                values = {s.secret.title: s.value for s in secrets.read_client_secrets(ctx, "Acme")}
                # and the restored vault takes new writes (sequences moved past restored ids)
                secrets.add_secret(ctx, "Acme", title="After restore", value="a-1!Zq8#")
            assert values["S199"] == "v199-Zq8#" and len(values) == 200 + during[0]
            with store.read_session() as session, session.begin():
                assert backup.check_log(session).size > events
        finally:
            store.engine.dispose()


def test_restore_refusals(vault: Vault, tmp_path: Path) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    good = tmp_path / "good.db"
    backup.backup(vault.settings.database_url, good)
    with pytest.raises(Conflict, match="exists"):
        backup.backup(vault.settings.database_url, good)

    # into a database that already holds a vault
    with pytest.raises(Conflict, match="already holds"):
        backup.restore(good, vault.settings.database_url)

    # from a newer schema
    newer = tmp_path / "newer.db"
    newer.write_bytes(good.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_from_the_future'")
    target = tmp_path / "t1" / "custody.db"
    with pytest.raises(SchemaError, match="newer"):
        backup.restore(newer, sqlite_url(target))
    assert not target.exists()

    # a backup whose log was edited restores nothing
    edited = tmp_path / "edited.db"
    edited.write_bytes(good.read_bytes())
    with sqlite3.connect(edited) as conn:
        conn.execute("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 0")
    with pytest.raises(LogError, match="event 0"):
        backup.restore(edited, sqlite_url(target))
    assert not target.exists()
    assert not list(target.parent.glob("*")) if target.parent.exists() else True

    # not a backup at all
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database")
    with pytest.raises(Exception, match="not a Custody backup"):
        backup.restore(junk, sqlite_url(target))


def test_check_log_finds_a_deleted_event(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        clients.add_client(ctx, "Globex")
    with vault.store.session() as session, session.begin():
        assert backup.check_log(session).size >= 2
        last = session.scalar(select(func.max(AuditEvent.seq)))
        session.execute(AuditEvent.__table__.delete().where(AuditEvent.seq == 0))
        with pytest.raises(LogError, match="event 0 is missing"):
            backup.check_log(session)
        session.rollback()
    assert last is not None
