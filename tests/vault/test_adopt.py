"""Export completeness: a client's bundle, adopted by a fresh vault, gives the same records.

Every record kind - the client's contacts and escrow recipients, vendors with their sealed
account numbers and recovery contacts, domains, assets, every secret with all its versions in
order, and the links between them - exported again from the new vault, equals the original
export but for ids and timestamps (which belong to the vault that made them)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import TEST_PASSPHRASE, Vault
from vault.config import sqlite_url
from vault.crypto import age
from vault.db.models import AuditEvent
from vault.errors import Conflict, InvalidInput
from vault.keys import UnsealSecret
from vault.services import adopt, clients, export, inventory, secrets
from vault.store import Store, init_vault

VOLATILE = {"id", "created_at", "updated_at", "created_by", "added_at"}


def _normal(value: Any) -> Any:
    """The content without what belongs to the vault that wrote it (ids, times, authors)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _content(vault: Vault | Any, keys: Any, store: Any, name: str, identity: Any) -> Any:
    out = io.BytesIO()
    export.export_client(store, keys, "operator:test", name, out, history=True)
    return json.loads(age.decrypt(out.getvalue(), [identity]))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Store, Any]]:
    """Another vault, on another host: a new SQLite file, its own keys."""
    from vault.config import Settings

    settings = Settings.from_env()
    settings = dataclasses.replace(
        settings,
        home=tmp_path / "new-host",
        database_url=sqlite_url(tmp_path / "new-host" / "custody.db"),
        allow_weak_kdf=True,
    )
    init_vault(settings, passphrase=TEST_PASSPHRASE, weak_kdf=True, admin=None)
    store = Store.open(settings)
    try:
        yield store, store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    finally:
        store.engine.dispose()


def _populate(vault: Vault, identity: age.X25519Identity) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(identity.recipient)])
        clients.add_contact(ctx, "Acme", "Ann Owner", email="ann@acme.example", role="CEO")
        inventory.add_record(
            ctx,
            "vendor",
            "Acme",
            name="Gandi",
            category="registrar",
            website="https://gandi.net",
            renewal_date="2027-01-31",
            twofa_location="client-device",
            support_contacts=[{"name": "Support", "email": "help@gandi.example"}],
            account_number="ACCT-4411",
            recovery_email="it@acme.example",
            owner="client",
            notes="billing on the CEO's card",
        )
        inventory.add_record(ctx, "vendor", "Acme", name="Cloudflare", category="dns")
        inventory.add_record(
            ctx,
            "domain",
            "Acme",
            name="acme.example",
            registrar="Gandi",
            dns_host="Cloudflare",
            registrant="Acme Dental Ltd",
            expires_on="2027-03-01",
            owner="consultancy",
        )
        inventory.add_record(
            ctx,
            "asset",
            "Acme",
            name="Front router",
            kind="router",
            location="Server cupboard",
            serial="SN-1",
            address="10.0.0.1",
            managing_vendor="Gandi",
            owner="third-party",
            owner_name="ISP Ltd",
        )
        secrets.add_secret(
            ctx,
            "Acme",
            title="Gandi login",
            value="first-Zq8#",
            username="ops",
            url="https://gandi.net",
            notes="shared mailbox",
            tags=["dns", "billing"],
            exclusive=True,
        )
        secrets.add_secret(ctx, "Acme", title="Gandi 2FA", kind="totp", value="JBSWY3DPEHPK3PXP")
        secrets.add_secret(
            ctx, "Acme", title="Router admin", value="r0uter-Zq8#", rotate_after_use=True
        )
        secrets.update_secret(ctx, "Acme", "Gandi login", value="second-Zq8#")
        secrets.update_secret(ctx, "Acme", "Gandi login", value="third-Zq8#", username="ops2")
        for title in ("Gandi login", "Gandi 2FA"):
            inventory.link_secret(ctx, "Acme", title, "vendor", "Gandi")
        inventory.link_secret(ctx, "Acme", "Gandi login", "domain", "acme.example")
        inventory.link_secret(ctx, "Acme", "Router admin", "asset", "Front router")


def test_adopted_client_exports_the_same_records(vault: Vault, fresh: tuple[Store, Any]) -> None:
    identity = age.X25519Identity.generate()
    _populate(vault, identity)
    original = _content(vault, vault.keys, vault.store, "Acme", identity)

    store, keys = fresh
    with store.context("operator:test", keys) as ctx:
        result = adopt.adopt_client(ctx, original)
    assert result.counts == {
        "contacts": 1,
        "recipients": 1,
        "vendors": 2,
        "domains": 1,
        "assets": 1,
        "secrets": 3,
        "versions": 5,
        "links": 4,
    }
    again = _content(None, keys, store, "Acme", identity)
    for part in ("client", "recipients", "vendors", "domains", "assets", "secrets"):
        assert _normal(again[part]) == _normal(original[part]), part
    assert again["vault_id"] != original["vault_id"]
    # (not a vacuous comparison: sealed fields and the whole history came across)
    assert [v.get("account_number") for v in again["vendors"]] == [None, "ACCT-4411"]
    gandi = next(s for s in again["secrets"] if s["title"] == "Gandi login")
    assert [v["value"] for v in gandi["history"]] == ["first-Zq8#", "second-Zq8#", "third-Zq8#"]
    with store.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "client.adopt")).one()
    assert event.detail["secrets"] == 3 and "third-Zq8#" not in str(event.detail)

    # A second adoption of the same client is refused and writes nothing.
    with pytest.raises(Conflict), store.context("operator:test", keys) as ctx:
        adopt.adopt_client(ctx, original)
    with pytest.raises(InvalidInput), store.context("operator:test", keys) as ctx:
        adopt.adopt_client(ctx, {"format": "something else"})
