"""The ASGI entry point: ``uvicorn --factory api.main:app_from_env``.

Settings come from the environment (vault/config.py). The server unseals at start when an
unseal source is present - CUSTODY_UNSEAL_FILE, CUSTODY_UNSEAL_PASSPHRASE, or the raw secret
``custody serve`` hands its worker processes in CUSTODY_UNSEAL_SECRET (base64) - and otherwise
starts sealed, waiting for POST /sys/unseal.
"""

from __future__ import annotations

import base64
import gc
import logging
import os

from fastapi import FastAPI

from api.app import create_app
from api.state import ServerState
from vault.config import Settings
from vault.keys import UnsealSecret
from vault.store import Store, unseal_secret_from

log = logging.getLogger("custody.api")


def app_from_env() -> FastAPI:
    settings = Settings.from_env()
    store = Store.open(settings)
    state = ServerState(store=store, require_totp=os.environ.get("CUSTODY_INSECURE_NO_TOTP") != "1")
    raw = os.environ.get("CUSTODY_UNSEAL_SECRET")
    if raw:
        state.keys = store.unseal(UnsealSecret(base64.b64decode(raw)))
    elif settings.unseal_file is not None or os.environ.get("CUSTODY_UNSEAL_PASSPHRASE"):
        secret = unseal_secret_from(store.meta(), settings, env=dict(os.environ), prompt=None)
        state.keys = store.unseal(secret)
    if state.sealed:
        log.warning("Custody started SEALED: POST /sys/unseal to open it")
    app = create_app(state)
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """Keep the garbage collector's full collections off everything made at start-up.

    What a server process has made by now - the app, its routes and schemas, SQLAlchemy's
    tables and mappers, the libraries - lives as long as the process. Each full collection
    would walk all of it again: about 60 ms on our 2-core machines, during which no request
    moves, and the main part of the slowest 1% of check-outs (docs/benchmarks.md, section 3).
    Frozen objects are never scanned; collecting first leaves no garbage among them. (Only
    in the server process: a test process making many apps must not freeze each one.)
    """
    gc.collect()
    gc.freeze()
