"""Alembic environment: runs on the engine handed in by ``vault.db.engine.upgrade``."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from vault.db.models import Base, UTCDateTime


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations must not import our models: render the UTC column type as its plain base.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


config = context.config
engine = config.attributes.get("engine")
if engine is None:  # the plain `alembic` command line, for developers writing migrations
    from sqlalchemy import create_engine

    from vault.config import Settings

    engine = create_engine(Settings.from_env().database_url)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    # SQLite migrations rebuild tables (copy, drop, rename). With foreign keys enforced, dropping
    # the old table would cascade-delete every row that refers to it - secret versions, links -
    # so enforcement is off while migrating, and the result is checked before it is turned back
    # on. The pragma only works outside a transaction: set it on the raw connection first.
    raw = connection.connection.driver_connection if sqlite else None
    if raw is not None:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
            if raw is not None:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} dangling references")
        connection.commit()
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")
