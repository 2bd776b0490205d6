"""Migrations: models and migrations never drift apart, and upgrades keep the data."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from vault.db import engine as db
from vault.db.models import Base, Lease, utcnow
from vault.services import checkout


def test_models_match_migrations(database_url: str) -> None:
    engine = db.make_engine(database_url, create_dirs=True)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], "models changed without a migration (alembic revision --autogenerate)"
    finally:
        engine.dispose()


def test_upgrade_from_first_revision_keeps_data(database_url: str) -> None:
    engine = db.make_engine(database_url, create_dirs=True)
    try:
        command.upgrade(db._alembic_config(engine), "0001")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO clients (id, name, name_key, created_at, updated_at, wrapped_key) "
                    "VALUES ('c1', 'Acme', 'acme', '2026-01-01 00:00:00+00:00', "
                    "'2026-01-01 00:00:00+00:00', :k)"
                ),
                {"k": b"blob"},
            )
            conn.execute(
                text(
                    "INSERT INTO secrets (id, client_id, title, title_key, kind, tags, "
                    "current_version, exclusive, sensitive, rotate_after_use, created_at, "
                    "updated_at) VALUES ('s1', 'c1', 'Router', 'router', 'login', '[]', 1, "
                    "false, false, false, '2026-01-01 00:00:00+00:00', "
                    "'2026-01-01 00:00:00+00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO secret_versions (id, secret_id, version, value_ct, created_at, "
                    "created_by) VALUES ('v1', 's1', 1, :ct, '2026-01-01 00:00:00+00:00', 'op')"
                ),
                {"ct": b"sealed"},
            )
            conn.execute(
                text(
                    "INSERT INTO vendors (id, client_id, name, name_key, owner_kind, revision, "
                    "created_at, updated_at, category, support_contacts, twofa_location) VALUES "
                    "('vd1', 'c1', 'Gandi', 'gandi', 'client', 1, '2026-01-01 00:00:00+00:00', "
                    "'2026-01-01 00:00:00+00:00', 'registrar', '[]', 'vault')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO secret_links (id, secret_id, vendor_id) VALUES ('l1', 's1', 'vd1')"
                )
            )
        before, after = db.upgrade(engine)
        assert (before, after) == ("0001", db.head_revision())
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT title, needs_rotation, held_by_lease_id FROM secrets")
            ).one()
            versions = conn.execute(text("SELECT count(*) FROM secret_versions")).scalar()
            links = conn.execute(text("SELECT count(*) FROM secret_links")).scalar()
        assert row[0] == "Router" and not row[1] and row[2] is None
        # regression: the SQLite table rebuild once cascade-deleted every version and link
        assert (versions, links) == (1, 1)
        db.check_schema(engine)
        with engine.connect() as conn:  # enforcement is back on after the migration
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def _insert_lease(conn: Connection, lease_id: str, secret_id: str, client_id: str) -> None:
    conn.execute(
        text(
            "INSERT INTO leases (id, secret_id, client_id, holder, version, exclusive, "
            "created_at, expires_at) VALUES (:id, :s, :c, 'carol', 1, false, "
            "'2026-01-01 00:00:00+00:00', '2026-01-01 01:00:00+00:00')"
        ),
        {"id": lease_id, "s": secret_id, "c": client_id},
    )


def _insert_client(conn: Connection, client_id: str) -> None:
    """A client row as revisions 0002 and later store it."""
    conn.execute(
        text(
            "INSERT INTO clients (id, name, name_key, created_at, updated_at, "
            "wrapped_key) VALUES (:id, :id, :id, '2026-01-01 00:00:00+00:00', "
            "'2026-01-01 00:00:00+00:00', :k)"
        ),
        {"id": client_id, "k": b"blob"},
    )


def _insert_secret(conn: Connection, secret_id: str, client_id: str) -> None:
    """A secret row as revisions 0002 and later store it."""
    conn.execute(
        text(
            "INSERT INTO secrets (id, client_id, title, title_key, kind, tags, "
            "current_version, exclusive, sensitive, rotate_after_use, "
            "needs_rotation, created_at, updated_at) VALUES (:id, :c, :id, :id, "
            "'login', '[]', 1, false, false, false, false, "
            "'2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
        ),
        {"id": secret_id, "c": client_id},
    )


def test_a_lease_refers_to_its_secret_and_that_secrets_client_together(database_url: str) -> None:
    """0007: leases made before it are kept; a lease whose client is not its secret's is
    refused; deleting the secret deletes its leases; the downgrade gives the two keys back."""
    engine = db.make_engine(database_url, create_dirs=True)
    try:
        command.upgrade(db._alembic_config(engine), "0006")
        with engine.begin() as conn:
            for client in ("c1", "c2"):
                _insert_client(conn, client)
            for secret in ("s1", "s2"):
                _insert_secret(conn, secret, "c1")
            _insert_lease(conn, "l1", "s1", "c1")
            _insert_lease(conn, "l2", "s2", "c1")
        assert db.upgrade(engine) == ("0006", db.head_revision())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM leases ORDER BY id")).scalars().all() == [
                "l1",
                "l2",
            ]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _insert_lease(conn, "l3", "s1", "c2")  # s1 belongs to c1
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM secrets WHERE id = 's1'"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM leases")).scalars().all() == ["l2"]
        command.downgrade(db._alembic_config(engine), "0006")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT id FROM leases")).scalars().all() == ["l2"]
            conn.execute(text("DELETE FROM clients WHERE id = 'c1'"))  # cascades again
            assert conn.execute(text("SELECT count(*) FROM leases")).scalar() == 0
    finally:
        engine.dispose()


def _lease_indexes(engine: Engine) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes("leases") if index["name"]}


def test_open_leases_get_an_index_of_their_own(database_url: str) -> None:
    """0008: the full index on expires_at gives way to one of open leases only; leases made
    before it are kept, and open ones are found through it; the downgrade gives the full index
    back."""
    engine = db.make_engine(database_url, create_dirs=True)
    try:
        command.upgrade(db._alembic_config(engine), "0007")
        with engine.begin() as conn:
            _insert_client(conn, "c1")
            _insert_secret(conn, "s1", "c1")
            _insert_lease(conn, "open", "s1", "c1")
            _insert_lease(conn, "ended", "s1", "c1")
            conn.execute(text("UPDATE leases SET released_at = expires_at WHERE id = 'ended'"))
        assert "ix_leases_expires_at" in _lease_indexes(engine)
        assert db.upgrade(engine) == ("0007", db.head_revision())
        indexes = _lease_indexes(engine)
        assert "ix_leases_open_expiry" in indexes and "ix_leases_expires_at" not in indexes
        with engine.connect() as conn:
            swept = conn.execute(
                checkout.open_leases(expired_by=utcnow()).with_only_columns(Lease.id)
            )
            assert swept.scalars().all() == ["open"]
        command.downgrade(db._alembic_config(engine), "0007")
        indexes = _lease_indexes(engine)
        assert "ix_leases_expires_at" in indexes and "ix_leases_open_expiry" not in indexes
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM leases")).scalar() == 2
    finally:
        engine.dispose()


def test_the_known_head_is_the_scripts_head() -> None:
    """Opening a store compares the database with HEAD_REVISION without importing Alembic: a new
    migration must move it."""
    assert db.scripts_head_revision() == db.HEAD_REVISION


def test_current_revision_reads_the_version_table(database_url: str) -> None:
    engine = db.make_engine(database_url, create_dirs=True)
    try:
        assert db.current_revision(engine) is None
        db.upgrade(engine)
        assert db.current_revision(engine) == db.HEAD_REVISION
        db.check_schema(engine)
    finally:
        engine.dispose()
