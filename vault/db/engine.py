"""Engines, sessions and the schema-revision guard.

SQLite is the embedded default: WAL journal (readers never block the writer), foreign keys
on, and a busy timeout so a second process waits instead of failing. PostgreSQL is reached
through ``postgresql+psycopg://``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text

from vault.db.direct import run_sql
from vault.errors import NotInitialized, SchemaError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
READ_ONLY_OPTION = "custody_read_only"
#: key in an SQLite connection's ``info``: whether PRAGMA query_only is on
_QUERY_ONLY = "custody_query_only"
#: pooled SQLite connections per process (above the server's worker threads)
SQLITE_POOL_SIZE = 24
#: pooled PostgreSQL connections per process (the server's worker threads, 16 by default)
SERVER_POOL_SIZE = 16


def make_engine(url: str, *, create_dirs: bool = False, read_only: bool = False) -> Engine:
    # A database error's message must not carry the values bound to the statement: they can be
    # a secret's sealed value, a user's TOTP seed or free text a user typed (principle 3).
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            if create_dirs:
                Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            elif not Path(path).exists():
                raise NotInitialized(f"no database at {path}: run `custody init` first")
            if read_only:
                # URI form opens the file read-only: recovery must never change a backup. A
                # copy with no -wal file beside it is opened immutable, so SQLite needs to
                # create nothing next to it (a backup on read-only media still opens).
                extra = "" if Path(path + "-wal").exists() else "&immutable=1"
                url = f"sqlite:///file:{path}?mode=ro{extra}&uri=true"
        if path and path != ":memory:":
            # Enough pooled connections for every worker thread: a connection closed and
            # reopened under load costs a schema read and four PRAGMAs each time.
            kwargs.update(pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_SIZE)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, read_only=read_only)
        return engine
    # A pool as large as the server's worker threads: overflow connections are closed when
    # returned, and a new PostgreSQL connection costs milliseconds (a backend process).
    # No pre-ping (a round trip per checkout, two per request): a connection that died with
    # a server restart fails one statement, and SQLAlchemy then invalidates the whole pool.
    # Last in, first out: a request's short read takes the connection returned last, so a
    # process keeps a few backends busy and warm instead of waking each of its pooled ones in
    # turn (less of PostgreSQL's CPU per request; docs/benchmarks.md, session 12).
    kwargs.update(pool_size=SERVER_POOL_SIZE, max_overflow=8, pool_recycle=3600, pool_use_lifo=True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, *, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (pysqlite's own transaction handling defers it
        # and breaks SAVEPOINTs); BEGIN IMMEDIATE below takes the write lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit is fsynced, so an acknowledged write survives power loss,
            # not only a crash of the process (NORMAL). Override: CUSTODY_SQLITE_SYNCHRONOUS.
            cur.execute(f"PRAGMA synchronous={_sqlite_synchronous()}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE: a writer takes the lock at BEGIN, so two processes never both read and
        # then fail to upgrade to a write lock (SQLITE_BUSY mid-transaction). Transactions
        # marked read-only (Store.read_session) take no lock: WAL readers never wait.
        readonly = read_only or conn.get_execution_options().get(READ_ONLY_OPTION, False)
        if not read_only and conn.info.get(_QUERY_ONLY, False) != readonly:
            # A read-only transaction refuses writes (which would otherwise try to take the
            # write lock midway); the pooled connection serves writers too, so the mode is
            # set again whenever the kind of transaction changes.
            run_sql(conn, f"PRAGMA query_only={int(readonly)}")
            conn.info[_QUERY_ONLY] = readonly
        # On the driver: every write batch begins here, and exec_driver_sql would cost it
        # more Python than the BEGIN itself.
        run_sql(conn, "BEGIN" if readonly else "BEGIN IMMEDIATE")


def sqlite_lock_path(engine: Engine) -> str | None:
    """The lock file beside an SQLite database that its writers queue on (None in memory)."""
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path + "-writer"


def _sqlite_synchronous() -> str:
    value = os.environ.get("CUSTODY_SQLITE_SYNCHRONOUS", "FULL").upper()
    return value if value in ("FULL", "NORMAL", "EXTRA") else "FULL"


# --- migrations ------------------------------------------------------------------------


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


#: The newest migration's revision. Known here so that opening a store reads one row instead of
#: importing Alembic and its scripts (about 0.3 s on every CLI command);
#: tests/vault/test_migrations.py checks it against the migration scripts.
HEAD_REVISION = "0008"


def head_revision() -> str:
    return HEAD_REVISION


def scripts_head_revision() -> str:
    """The head revision as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (Alembic's version table), None for no schema."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(revisions) > 1:
        raise SchemaError(f"the database has several schema heads: {', '.join(revisions)}")
    return revisions[0] if revisions else None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to head; returns (before, after)."""
    from alembic import command

    before = current_revision(engine)
    known = _known_revisions()
    if before is not None and before not in known:
        raise SchemaError(
            f"database schema revision {before} is newer than this Custody knows; "
            "upgrade Custody instead of the database"
        )
    command.upgrade(_alembic_config(engine), "head")
    return before, head_revision()


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


def check_schema(engine: Engine) -> None:
    """Refuse to run on a database that is not exactly at our head revision."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaError("the database has no Custody schema: run `custody db upgrade`")
    if current in _known_revisions():
        raise SchemaError(
            f"the database schema is at {current}, this Custody needs {head}: "
            "run `custody db upgrade`"
        )
    raise SchemaError(
        f"the database schema revision {current} is newer than this Custody ({head}); "
        "upgrade Custody"
    )
