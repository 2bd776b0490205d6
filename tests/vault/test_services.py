"""Clients, recipients, secrets and inventory on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from tests.conftest import Vault
from vault.crypto import age
from vault.db.models import AuditEvent, Client, Secret, SecretVersion, Vendor
from vault.errors import (
    Conflict,
    DecryptionError,
    InvalidInput,
    MalformedRecipient,
    NotFound,
    Sealed,
)
from vault.keys import unwrap_client_key
from vault.services import clients, inventory, secrets


def _count(vault: Vault, model: type) -> int:
    with vault.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_client_key_is_wrapped_to_vault_and_escrow(vault: Vault) -> None:
    escrow = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        client = clients.add_client(ctx, "Acme Dental", recipients=[str(escrow.recipient)])
        client_id, wrapped = client.id, client.wrapped_key
    by_escrow = unwrap_client_key(wrapped, [escrow], client_id)
    by_vault = unwrap_client_key(wrapped, [vault.keys.identity], client_id)
    assert by_escrow == by_vault and len(by_escrow) == 32
    with pytest.raises(DecryptionError):
        unwrap_client_key(wrapped, [age.X25519Identity.generate()], client_id)


def test_duplicate_client_name_case_insensitive(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    with pytest.raises(Conflict), vault.ctx() as ctx:
        clients.add_client(ctx, "ACME")
    assert _count(vault, Client) == 1


def test_malformed_recipient_writes_nothing(vault: Vault) -> None:
    with pytest.raises(MalformedRecipient) as err, vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=["age1notarecipient"])
    assert err.value.field is None or err.value.field == "recipient"
    assert _count(vault, Client) == 0
    assert _count(vault, AuditEvent) == 0


def test_add_and_remove_recipient_rewraps_key_only(vault: Vault) -> None:
    first, second = age.X25519Identity.generate(), age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(first.recipient)])
        secrets.add_secret(ctx, "Acme", title="Router", value="s3cret")
    with vault.store.session() as s:
        before = s.scalars(select(SecretVersion.value_ct)).one()
    with vault.ctx() as ctx:
        clients.add_recipient(ctx, "Acme", str(second.recipient), label="owner laptop")
    with vault.ctx() as ctx, pytest.raises(Conflict):
        clients.add_recipient(ctx, "acme", str(second.recipient))
    with vault.ctx() as ctx:
        clients.remove_recipient(ctx, "Acme", str(first.recipient))
    with vault.store.session() as s:
        client = s.scalars(select(Client)).one()
        assert s.scalars(select(SecretVersion.value_ct)).one() == before  # data untouched
        assert [r.recipient for r in client.recipients] == [str(second.recipient)]
        unwrap_client_key(client.wrapped_key, [second], client.id)
        with pytest.raises(DecryptionError):  # the removed recipient no longer opens new wraps
            unwrap_client_key(client.wrapped_key, [first], client.id)
    with vault.ctx() as ctx, pytest.raises(NotFound):
        clients.remove_recipient(ctx, "Acme", str(first.recipient))


def test_ssh_ed25519_recipient_accepted(vault: Vault) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    line = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        row = clients.add_recipient(ctx, "Acme", line + " owner@laptop")
        assert row.kind == "ssh-ed25519"


def test_secret_versions_and_history(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(
            ctx,
            "Acme",
            title="Registrar",
            value="v1",
            username="admin",
            url="https://registrar.example",
            notes="old notes",
            tags=["dns"],
        )
    with vault.ctx() as ctx:
        secrets.update_secret(ctx, "Acme", "registrar", value="v2")
    with vault.ctx() as ctx:
        secrets.update_secret(ctx, "Acme", "registrar", notes="new notes")
    with vault.ctx() as ctx:
        current = secrets.read_secret(ctx, "Acme", "REGISTRAR")
        assert (current.version, current.value, current.username, current.notes) == (
            3,
            "v2",
            "admin",
            "new notes",
        )
        first = secrets.read_secret(ctx, "Acme", "Registrar", version=1)
        assert (first.value, first.notes) == ("v1", "old notes")
        assert [v.version for v in secrets.history(ctx, "Acme", "Registrar")] == [1, 2, 3]
        with pytest.raises(NotFound):
            secrets.read_secret(ctx, "Acme", "Registrar", version=9)


def test_secret_errors_write_nothing(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="x")
    events = _count(vault, AuditEvent)
    cases = [
        (Conflict, dict(title="router", value="y")),
        (InvalidInput, dict(title="   ", value="y")),
        (InvalidInput, dict(title="T", value="")),
        (InvalidInput, dict(title="T", value="y", kind="password-ish")),
        (InvalidInput, dict(title="TOTP", value="not base32 !!", kind="totp")),
    ]
    for exc, kwargs in cases:
        with pytest.raises(exc), vault.ctx() as ctx:
            secrets.add_secret(ctx, "Acme", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(NotFound), vault.ctx() as ctx:
        secrets.add_secret(ctx, "Nobody", title="T", value="y")
    assert _count(vault, Secret) == 1 and _count(vault, AuditEvent) == events


def test_totp_seed_accepts_base32_and_uri(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="M365 2FA", kind="totp", value="JBSW Y3DP EHPK 3PXP")
        secrets.add_secret(
            ctx,
            "Acme",
            title="Registrar 2FA",
            kind="totp",
            value="otpauth://totp/Reg:admin?secret=JBSWY3DPEHPK3PXP&issuer=Reg",
        )


def test_reading_needs_unsealed_vault(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="x")
    with vault.ctx(keys=False) as ctx:
        assert [s.title for s in secrets.list_secrets(ctx, "Acme")] == ["Router"]
        with pytest.raises(Sealed):
            secrets.read_secret(ctx, "Acme", "Router")


def test_corrupted_ciphertext_is_one_clear_error(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="hunter2")
    with vault.store.session() as s, s.begin():
        blob = bytearray(s.scalars(select(SecretVersion.value_ct)).one())
        blob[-1] ^= 0xFF
        s.execute(update(SecretVersion).values(value_ct=bytes(blob)))
    with pytest.raises(DecryptionError) as err, vault.ctx() as ctx:
        secrets.read_secret(ctx, "Acme", "Router")
    assert "hunter2" not in str(err.value)


def test_ciphertext_moved_between_secrets_fails(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="A", value="value-of-a")
        secrets.add_secret(ctx, "Acme", title="B", value="value-of-b")
    with vault.store.session() as s, s.begin():
        rows = {sec.title: sec.id for sec in s.scalars(select(Secret))}
        a_ct = s.scalars(
            select(SecretVersion.value_ct).where(SecretVersion.secret_id == rows["A"])
        ).one()
        s.execute(
            update(SecretVersion).where(SecretVersion.secret_id == rows["B"]).values(value_ct=a_ct)
        )
    with vault.ctx() as ctx:
        assert secrets.read_secret(ctx, "Acme", "A").value == "value-of-a"
        with pytest.raises(DecryptionError):
            secrets.read_secret(ctx, "Acme", "B")


def test_client_key_swapped_between_clients_is_refused(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        clients.add_client(ctx, "Globex")
    with vault.store.session() as s, s.begin():
        acme = s.scalars(select(Client).where(Client.name == "Acme")).one()
        s.execute(
            update(Client)
            .where(Client.name == "Globex")
            .values(wrapped_key=acme.wrapped_key, key_mac=acme.key_mac)
        )
    with pytest.raises(DecryptionError, match="not written by this vault"), vault.ctx() as ctx:
        secrets.add_secret(ctx, "Globex", title="T", value="v")


def test_forged_client_key_file_is_refused(vault: Vault) -> None:
    """Someone who can write the database plants a key file of their own, to the (public)
    vault recipient and naming the right client: the vault must not seal new values with it."""
    from vault.keys import wrap_client_key

    with vault.ctx() as ctx:
        client_id = clients.add_client(ctx, "Acme").id
    attacker_key = bytes(32)
    forged = wrap_client_key(client_id, attacker_key, [vault.keys.recipient])
    for mac in (None, b"\x00" * 32):
        with vault.store.session() as s, s.begin():
            s.execute(update(Client).values(wrapped_key=forged, key_mac=mac))
        with pytest.raises(DecryptionError, match="not written by this vault"):
            with vault.ctx() as ctx:
                secrets.add_secret(ctx, "Acme", title="T", value="new secret")


def test_inventory_records_with_owner_and_sealed_fields(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        v = inventory.add_record(
            ctx,
            "vendor",
            "Acme",
            name="Gandi",
            category="registrar",
            account_number="ACC-991",
            recovery_email="owner@acme.example",
            twofa_location="consultant-device",
            owner="consultancy",
            renewal_date="2027-03-01",
        )
        assert v.row.private_ct is not None and b"ACC-991" not in v.row.private_ct
        d = inventory.add_record(
            ctx,
            "domain",
            "Acme",
            name="acme.example",
            registrar="Gandi",
            dns_host="Cloudflare",
            expires_on="2027-01-31",
            registrant="Acme Ltd",
            owner="client",
        )
        assert d.created_vendors == ["Cloudflare"]
        inventory.add_record(
            ctx,
            "asset",
            "Acme",
            name="Front office printer",
            kind="printer",
            location="Reception",
            serial="XJ-42",
            managing_vendor="PrintCo",
            owner="third-party",
            owner_name="PrintCo Leasing",
        )
        secrets.add_secret(ctx, "Acme", title="Gandi login", value="pw")
        inventory.link_secret(ctx, "Acme", "Gandi login", "vendor", "Gandi")
        with pytest.raises(Conflict):
            inventory.link_secret(ctx, "Acme", "Gandi login", "vendor", "gandi")
    with vault.ctx() as ctx:
        shown = inventory.show_record(ctx, "vendor", "Acme", "gandi")
        assert shown.private == {
            "account_number": "ACC-991",
            "recovery_email": "owner@acme.example",
        }
        assert "ACC-991" not in repr(shown)
        updated = inventory.update_record(ctx, "vendor", "Acme", "Gandi", recovery_phone="+1 555")
        assert updated.row.revision == 2 and updated.private["account_number"] == "ACC-991"
        assert {r.name for r in inventory.list_records(ctx, "vendor", "Acme")} == {
            "Gandi",
            "Cloudflare",
            "PrintCo",
        }
    with pytest.raises(InvalidInput, match="owner_name"), vault.ctx() as ctx:
        inventory.add_record(ctx, "asset", "Acme", name="UPS", kind="ups", owner="third-party")
    with pytest.raises(InvalidInput, match="kind"), vault.ctx() as ctx:
        inventory.add_record(ctx, "asset", "Acme", name="UPS", kind="toaster")
    with pytest.raises(InvalidInput, match="expires_on"), vault.ctx() as ctx:
        inventory.add_record(ctx, "domain", "Acme", name="x.example", expires_on="31/01/2027")
    assert _count(vault, Vendor) == 3


def test_every_change_and_read_is_audited(vault: Vault) -> None:
    with vault.ctx(actor="operator:alice") as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="hunter2")
    with vault.ctx(actor="operator:bob") as ctx:
        secrets.read_secret(ctx, "Acme", "Router", reason="ticket 42")
    with vault.store.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [(e.actor, e.action) for e in events] == [
        ("operator:alice", "client.add"),
        ("operator:alice", "secret.add"),
        ("operator:bob", "secret.read"),
    ]
    assert events[-1].detail["reason"] == "ticket 42"
    assert all("hunter2" not in str(e.detail) for e in events)
