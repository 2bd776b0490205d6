"""Secrets stay secret: a canary value planted in every sealed field never shows up in log
output (at DEBUG, SQL parameters included), exception text, reprs, audit events, or the
database file itself."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Vault
from vault.crypto import age
from vault.db.models import AuditEvent
from vault.errors import CustodyError
from vault.services import clients, export, inventory, secrets

CANARY = "CANARY-7f3a9c-do-not-leak"


def _plant(vault: Vault) -> list[object]:
    seen: list[object] = []
    with vault.ctx() as ctx:
        seen.append(
            clients.add_client(
                ctx, "Acme", recipients=[str(age.X25519Identity.generate().recipient)]
            )
        )
        seen.append(
            secrets.add_secret(
                ctx,
                "Acme",
                title="Router",
                value=CANARY + "-value",
                username=CANARY + "-user",
                notes=CANARY + "-notes",
            )
        )
        for kind, extra in (
            (
                "vendor",
                {
                    "account_number": CANARY + "-acct",
                    "recovery_email": CANARY + "@example.com",
                    "recovery_phone": CANARY + "-phone",
                },
            ),
            ("domain", {}),
            ("asset", {}),
        ):
            seen.append(
                inventory.add_record(
                    ctx, kind, "Acme", name=f"{kind}-1", notes=CANARY + f"-{kind}-notes", **extra
                )
            )
    with vault.ctx() as ctx:
        seen.append(secrets.update_secret(ctx, "Acme", "Router", value=CANARY + "-value2"))
        seen.append(secrets.read_secret(ctx, "Acme", "Router"))
        seen.append(secrets.read_secret(ctx, "Acme", "Router", version=1))
        for kind in ("vendor", "domain", "asset"):
            seen.append(inventory.show_record(ctx, kind, "Acme", f"{kind}-1"))
    # a full export decrypts every field; its result, manifest and event carry no value
    bundle = io.BytesIO()
    seen.append(export.export_client(vault.store, vault.keys, "operator:test", "Acme", bundle))
    seen.append(
        export.export_client(vault.store, vault.keys, "operator:test", "Acme", bundle, history=True)
    )
    return seen


def _failures(vault: Vault) -> list[CustodyError]:
    errors: list[CustodyError] = []
    attempts = [
        lambda ctx: secrets.add_secret(ctx, "Acme", title="Router", value=CANARY),
        lambda ctx: secrets.add_secret(ctx, "Acme", title="T", value=CANARY, kind="totp"),
        lambda ctx: secrets.add_secret(ctx, "Acme", title="T", value=CANARY * 10_000),
        lambda ctx: secrets.add_secret(ctx, "Nobody", title="T", value=CANARY),
        lambda ctx: clients.add_recipient(ctx, "Acme", "age1" + CANARY),
        lambda ctx: clients.add_recipient(ctx, "Acme", CANARY),
        lambda ctx: inventory.add_record(ctx, "domain", "Acme", name="d", expires_on=CANARY),
        lambda ctx: age.parse_identities("AGE-SECRET-KEY-1" + CANARY),
    ]
    for attempt in attempts:
        with pytest.raises(CustodyError) as err, vault.ctx() as ctx:
            attempt(ctx)
        errors.append(err.value)
    return errors


def test_canary_never_leaks(vault: Vault, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy.engine", "sqlalchemy.pool"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        objects = _plant(vault)
        errors = _failures(vault)
    finally:
        for name in ("sqlalchemy.engine", "sqlalchemy.pool"):
            logging.getLogger(name).setLevel(logging.WARNING)

    assert any("INSERT" in r.getMessage() for r in caplog.records), "SQL logging was not captured"
    assert CANARY not in caplog.text
    for obj in objects:
        assert CANARY not in repr(obj)
    for err in errors:
        assert CANARY not in str(err) and CANARY not in repr(err)
        assert CANARY not in str(err.__cause__ or "") and err.__suppress_context__ in (True, False)
    with vault.store.session() as s:
        for event in s.scalars(select(AuditEvent)):
            assert CANARY not in repr(event.detail)
    # the sealed values round-trip, so the canary really was stored (sealed)
    with vault.ctx() as ctx:
        assert secrets.read_secret(ctx, "Acme", "Router").value == CANARY + "-value2"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_canary_not_in_database_file(vault: Vault) -> None:
    _plant(vault)
    vault.store.engine.dispose()
    db_dir = Path(vault.settings.database_url.split("///", 1)[1]).parent
    for path in db_dir.iterdir():  # the main file, and any -wal / -shm beside it
        data = path.read_bytes()
        assert CANARY.encode() not in data, path.name
        assert CANARY.encode("utf-16-le") not in data, path.name
