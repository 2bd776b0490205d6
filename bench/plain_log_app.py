"""The vault's own app with the transparency log turned into a plain audit table.

For bench_log_overhead.py only: the same server, routes and database, the same audit rows,
but no log head, no leaf hashing, no subtrees (``auditlog.PLAIN_TABLE_FOR_BENCHMARKS``). Set
in each uvicorn worker, since each imports this factory.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.main import app_from_env as vault_app
from vault.services import auditlog


def app_from_env() -> FastAPI:
    auditlog.PLAIN_TABLE_FOR_BENCHMARKS = True
    return vault_app()
