"""Shared fixtures: a real store on each engine (SQLite file, PostgreSQL server).

PostgreSQL: the suite creates one fresh database per run (named custody_test_<random>), gives
each test its own schema inside it, and drops only that database at the end. The admin URL is
CUSTODY_TEST_PG_URL (default: the local server, trust auth). If the server cannot be reached
the PostgreSQL half is skipped - unless CUSTODY_TEST_PG_URL is set explicitly (as CI does) or
CUSTODY_REQUIRE_POSTGRES=1, where it fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from vault.config import Settings, sqlite_url
from vault.keys import KeyRing
from vault.services import Context
from vault.store import Store

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TEST_PASSPHRASE = "correct horse battery staple"


def _pg_admin_url() -> str:
    return os.environ.get("CUSTODY_TEST_PG_URL", DEFAULT_PG_ADMIN_URL)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """URL of a fresh PostgreSQL database for this run, or None when unavailable."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = _pg_admin_url()
    name = f"custody_test_{secrets.token_hex(4)}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        if "CUSTODY_TEST_PG_URL" in os.environ or os.environ.get("CUSTODY_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {admin_url}: {exc}")
        yield None
        return
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each engine."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "custody-data" / "custody.db")
        return
    with fresh_pg_schema(request, "t") as url:
        yield url


@contextmanager
def fresh_pg_schema(request: pytest.FixtureRequest, prefix: str) -> Iterator[str]:
    """A URL of a new, empty schema in this run's PostgreSQL database (dropped afterwards);
    skips the test when PostgreSQL is not reachable."""
    base = request.getfixturevalue("pg_database")
    if base is None:
        pytest.skip("PostgreSQL not reachable (set CUSTODY_TEST_PG_URL)")
    from sqlalchemy import create_engine, text

    schema = f"{prefix}_{secrets.token_hex(6)}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "custody-data",
        database_url=database_url,
        unseal_file=None,
        unseal_passphrase_set=False,
        allow_weak_kdf=True,
    )


@dataclass
class Vault:
    store: Store
    keys: KeyRing
    settings: Settings

    def ctx(self, actor: str = "operator:test", keys: bool = True) -> ContextManager[Context]:
        return self.store.context(actor, self.keys if keys else None)


@pytest.fixture
def vault(settings: Settings) -> Iterator[Vault]:
    """An initialised, unsealed vault on each engine."""
    from vault.keys import UnsealSecret
    from vault.store import Store, init_vault

    init_vault(settings, passphrase=TEST_PASSPHRASE, weak_kdf=True, admin=None)
    store = Store.open(settings)
    keys = store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    try:
        yield Vault(store=store, keys=keys, settings=settings)
    finally:
        store.engine.dispose()


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for running `custody` against the test database."""
    env = {
        "CUSTODY_HOME": str(settings.home),
        "CUSTODY_DATABASE_URL": settings.database_url,
        "CUSTODY_ALLOW_WEAK_KDF": "1",
        "CUSTODY_UNSEAL_PASSPHRASE": TEST_PASSPHRASE,
    }
    for key in list(os.environ):
        if key.startswith("CUSTODY_") and key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return env
