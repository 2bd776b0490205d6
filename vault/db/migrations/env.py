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
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
