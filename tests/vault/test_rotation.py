"""Key rotation loses nothing: a client key with 10,000 secrets, the vault identity, the log key.

After each rotation every value reads back; the keys it replaced no longer open what is
written from then on; a second process that unsealed before the rotation catches up by itself.
"""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from sqlalchemy import select

from tests.conftest import TEST_PASSPHRASE, Vault
from vault.crypto import age
from vault.crypto.fields import FieldCipher, FieldLocation
from vault.crypto.sealing import open_with_root, vault_key_aad
from vault.db.models import AuditEvent, Client, LogCheckpoint, SecretVersion, VaultKey
from vault.errors import AgeError, DecryptionError
from vault.keys import UnsealSecret, unwrap_client_key
from vault.log.note import Checkpoint, Signer, Verifier, open_note, sign_checkpoint
from vault.log.verify import LogVerificationError, verify_export
from vault.services import auditlog, clients, escrow, inventory, rotation, secrets
from vault.services.recovery import recover_client
from vault.store import Store

N = 10_000


def _fill(vault: Vault, name: str, n: int) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, name)
        secrets.add_secrets(
            ctx,
            name,
            [
                secrets.NewSecret(
                    title=f"Account {i}",
                    value=f"value-{i}-Zq8#",
                    username=f"user{i}" if i % 2 else None,
                    notes=f"note {i}" if i % 3 == 0 else None,
                )
                for i in range(n)
            ],
        )
        inventory.add_record(ctx, "vendor", name, name="Gandi", account_number="ACC-991")


def _read_all(vault: Vault, name: str) -> dict[str, tuple[str, str | None, str | None]]:
    with vault.ctx() as ctx:
        revealed = secrets.read_client_secrets(ctx, name)
        return {s.secret.title: (s.value, s.username, s.notes) for s in revealed}


def _expected(n: int) -> dict[str, tuple[str, str | None, str | None]]:
    return {
        f"Account {i}": (
            f"value-{i}-Zq8#",
            f"user{i}" if i % 2 else None,
            f"note {i}" if i % 3 == 0 else None,
        )
        for i in range(n)
    }


def _client(vault: Vault, name: str) -> Client:
    with vault.store.session() as session:
        client = session.scalars(select(Client).where(Client.name == name)).one()
        session.expunge(client)
        return client


def test_client_key_rotation_with_10000_secrets_loses_nothing(vault: Vault) -> None:
    _fill(vault, "Acme", N)
    escrow_identity = age.X25519Identity.generate()
    removed_identity = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_recipient(ctx, "Acme", str(escrow_identity.recipient))
        clients.add_recipient(ctx, "Acme", str(removed_identity.recipient))
    backed_up = _client(vault, "Acme").wrapped_key  # an old backup holds this key file
    with vault.ctx() as ctx:
        clients.remove_recipient(ctx, "Acme", str(removed_identity.recipient))
        secrets.update_secret(ctx, "Acme", "Account 7", value="second-value-7!x")
    before = _client(vault, "Acme")
    old_key = vault.keys.client_key(before)
    # Removing a recipient re-wraps the same client key: the old backup still opens it.
    assert unwrap_client_key(backed_up, [removed_identity], before.id) == old_key

    with vault.ctx() as ctx:
        result = rotation.rotate_client_key(ctx, "Acme")
    assert result.resealed >= N + 2  # every version (and its history) and the vendor record

    expected = _expected(N)
    expected["Account 7"] = ("second-value-7!x", "user7", None)
    assert _read_all(vault, "Acme") == expected
    with vault.ctx() as ctx:
        assert inventory.show_record(ctx, "vendor", "Acme", "Gandi").private == {
            "account_number": "ACC-991"
        }
        old_version = secrets.read_secret(ctx, "Acme", "Account 7", version=1)
        assert old_version.value == "value-7-Zq8#"

    after = _client(vault, "Acme")
    new_key = vault.keys.client_key(after)
    assert new_key != old_key
    # The client's own escrow identity opens the new key file; the removed one does not.
    assert unwrap_client_key(after.wrapped_key, [escrow_identity], after.id) == new_key
    with pytest.raises(DecryptionError):
        unwrap_client_key(after.wrapped_key, [removed_identity], after.id)
    # The old key no longer opens what is stored.
    with vault.store.session() as session:
        row = session.scalars(select(SecretVersion).limit(1)).one()
        secret_id, version, blob = row.secret_id, row.version, row.value_ct
    where = FieldLocation(after.id, "secret", secret_id, "value", version)
    with pytest.raises(DecryptionError):
        FieldCipher(old_key).open(blob, where)
    assert FieldCipher(new_key).open(blob, where)

    # The client's way out still works: a copy of the database and its own identity.
    recovered = recover_client(vault.store.engine, "Acme", [escrow_identity])
    assert {s.secret.title: s.value for s in recovered.secrets}["Account 9999"] == "value-9999-Zq8#"

    with vault.store.session() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "key.rotate.client")
        ).one()
    assert event.detail["resealed"] == result.resealed
    assert "value-" not in str(event.detail)


def test_escrow_token_survives_client_key_rotation(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_ESCROW_ALLOW_PRIVATE", "1")
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        row = escrow.add_destination(
            ctx, "Acme", url="https://127.0.0.1:9/in", token="bearer-canary-2a", every_hours=24
        )
        destination_id = row.id
    with vault.ctx() as ctx:
        rotation.rotate_client_key(ctx, "Acme")
    client = _client(vault, "Acme")
    with vault.store.session() as session:
        from vault.db.models import EscrowDestination

        stored = session.get(EscrowDestination, destination_id)
        assert stored is not None and stored.token_ct is not None
        where = FieldLocation(client.id, "escrow", destination_id, "token", 1)
        assert vault.keys.cipher(client).open_text(stored.token_ct, where) == "bearer-canary-2a"


def test_vault_identity_rotation_and_a_process_that_unsealed_before(vault: Vault) -> None:
    _fill(vault, "Acme", 300)
    _fill(vault, "Globex", 50)
    # A second server process, unsealed before the rotation.
    other_store = Store.open(vault.settings)
    other_keys = other_store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    old_identity = vault.keys.identity
    try:
        with vault.ctx() as ctx:
            result = rotation.rotate_vault_identity(ctx)
        assert result.rewrapped == 2
        assert vault.store.refresh_keys(vault.keys)
        assert str(vault.keys.recipient) == result.public != str(old_identity.recipient)

        assert _read_all(vault, "Acme") == _expected(300)
        # The other process catches up by itself on its first client key.
        with other_store.context("operator:other", other_keys) as ctx:
            assert len(secrets.read_client_secrets(ctx, "Globex")) == 50
        assert other_keys.identity_key_id == result.key_id
        # The old identity opens none of the new key files.
        for name in ("Acme", "Globex"):
            client = _client(vault, name)
            with pytest.raises(AgeError):
                age.decrypt(client.wrapped_key, [old_identity])
        with vault.store.session() as session:
            retired = session.scalars(
                select(VaultKey).where(
                    VaultKey.purpose == "identity", VaultKey.retired_at.is_not(None)
                )
            ).all()
        assert [k.public for k in retired] == [str(old_identity.recipient)]
        # A fresh unseal finds the new identity.
        fresh = vault.store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
        assert fresh.identity_key_id == result.key_id
    finally:
        other_store.engine.dispose()


def test_log_key_rotation_hands_over_with_a_cross_signed_checkpoint(vault: Vault) -> None:
    _fill(vault, "Acme", 5)
    with vault.store.session() as session, session.begin():
        auditlog.sign(session, vault.keys)
        old_key = auditlog.verifier_key(session)
    other_store = Store.open(vault.settings)
    other_keys = other_store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    try:
        with vault.ctx() as ctx:
            result = rotation.rotate_log_key(ctx)
        vault.store.refresh_keys(vault.keys)
        assert result.public is not None
        with vault.store.session() as session:
            assert auditlog.verifier_key(session) == result.public
            handover = auditlog.latest_checkpoint(session)
            assert handover is not None
            note = handover.note
        _, signed_by = open_note(note, [Verifier.parse(old_key), Verifier.parse(result.public)])
        assert len(signed_by) == 2
        # More events, then a checkpoint by the process that still held the old key: it
        # loads the new key instead of signing with the retired one.
        _fill(vault, "Globex", 3)
        with other_store.session() as session, session.begin():
            later = auditlog.sign(session, other_keys)
            later_note, later_size = later.note, later.size
        assert other_keys.log_key_id == result.key_id
        _, signed_by = open_note(later_note, [Verifier.parse(result.public)])
        assert signed_by and later_size > handover.size
        with vault.store.session() as session:
            sizes = session.scalars(select(LogCheckpoint.size)).all()
        assert sorted(sizes)[-1] == later_size

        # The whole log verifies offline whichever key the verifier pinned.
        export = io.BytesIO()
        with vault.ctx() as ctx:
            auditlog.export_jsonl(ctx, export, auditlog.EventFilter())
        lines = export.getvalue().splitlines(keepends=True)
        assert json.loads(lines[0])["log_keys"] == [old_key, result.public]
        for pinned in (old_key, result.public):
            report = verify_export(lines, key=Verifier.parse(pinned))
            assert report.size == later_size and report.checkpoints >= 3
        # Without the handover, a key the verifier never pinned is not trusted.
        stripped = [
            ln
            for ln in lines
            if not (b'"checkpoint"' in ln and json.loads(ln)["note"] == handover.note)
        ]
        assert len(stripped) == len(lines) - 1
        with pytest.raises(LogVerificationError, match="handed over"):
            verify_export(stripped, key=Verifier.parse(old_key))
        # The retired key signs nothing past the handover: a checkpoint it signed later is
        # refused even though its signature is good.
        retired_signer = _old_signer(vault, old_key)
        forged = sign_checkpoint(
            Checkpoint(origin=handover_origin(lines), size=later_size, root=b"\x00" * 32),
            retired_signer,
        )
        tampered = list(lines)
        idx = max(i for i, ln in enumerate(tampered) if b'"type":"checkpoint"' in ln)
        tampered[idx] = json.dumps({"type": "checkpoint", "note": forged}).encode() + b"\n"
        with pytest.raises(LogVerificationError, match="retired"):
            verify_export(tampered, key=Verifier.parse(old_key))
    finally:
        other_store.engine.dispose()


def handover_origin(lines: list[bytes]) -> str:
    return str(json.loads(lines[0])["origin"])


def _old_signer(vault: Vault, public: str) -> Signer:
    """The retired log key's signer, opened from the database with the root key (a thief
    who stole the old key could do this)."""
    with vault.store.session() as session:
        row = session.scalars(select(VaultKey).where(VaultKey.public == public)).one()
        raw = open_with_root(
            vault.keys._root_key,
            row.sealed_private,
            vault_key_aad(vault.keys.vault_id, "log", row.id),
        )
    return Signer.parse(raw.decode("ascii"))


def test_a_write_waits_for_a_client_key_rotation(vault: Vault) -> None:
    """The writer takes the client key row's shared lock before sealing; the rotation holds
    it exclusively. Whichever goes first, nothing ends up sealed under a replaced key."""
    _fill(vault, "Acme", 20)
    started = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            started.wait(10)
            with vault.ctx() as ctx:
                secrets.add_secret(ctx, "Acme", title="Written during rotation", value="w-1!aZ")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    with vault.ctx() as ctx:
        client = clients.get_client(ctx, "Acme")
        ctx.lock_client_key(client, exclusive=True)
        started.set()
        time.sleep(0.3)  # the writer is now blocked on the lock (or on the SQLite writer lock)
        rotation.rotate_client_key(ctx, "Acme")
    thread.join(30)
    assert not errors
    values = _read_all(vault, "Acme")
    assert values["Written during rotation"][0] == "w-1!aZ"
    assert len(values) == 21
