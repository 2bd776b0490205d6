"""The framework's ceiling for bench_checkout.py: a FastAPI endpoint that reads one row.

Same stack as Custody (uvicorn, FastAPI, SQLAlchemy, the same database) minus everything that
is Custody: no auth, no crypto, no audit.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from sqlalchemy import text

from api.app import NO_TELEMETRY
from vault.db.engine import READ_ONLY_OPTION, make_engine
from vault.process import freeze_startup_heap


def app_from_env() -> FastAPI:
    # Read-only transactions, as Custody's own reads (no write lock on SQLite).
    engine = make_engine(os.environ["CUSTODY_DATABASE_URL"]).execution_options(
        **{READ_ONLY_OPTION: True}
    )
    app = FastAPI(telemetry=NO_TELEMETRY)  # FastAPI's OpenTelemetry off, as in the vault's app

    @app.get("/row")
    def row() -> dict[str, object]:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT id, name FROM clients LIMIT 1")).first()
        return {"id": value[0] if value else None}

    # As the vault's server process does: the ceiling is the framework at its best, not slowed
    # by full collections the vault does not pay.
    freeze_startup_heap()
    return app
