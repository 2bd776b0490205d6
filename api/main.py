"""The ASGI entry point: ``uvicorn --factory api.main:app_from_env``.

Settings come from the environment (vault/config.py). The server unseals at start when an
unseal source is present - CUSTODY_UNSEAL_FILE, CUSTODY_UNSEAL_PASSPHRASE, or the raw secret
``custody serve`` hands its worker processes in CUSTODY_UNSEAL_SECRET (base64) - and otherwise
starts sealed, waiting for POST /sys/unseal.
"""

from __future__ import annotations

import base64
import logging
import os

from fastapi import FastAPI

from api.app import create_app
from api.state import ServerState
from vault.config import Settings
from vault.keys import UnsealSecret
from vault.process import freeze_startup_heap
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
