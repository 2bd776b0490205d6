"""Key rotation: a client key, the vault identity, the log key.

* **Client key.** A new random client key; every value sealed under the old one (secret
  versions, inventory private fields, escrow-drop tokens) is opened and sealed again under the
  new one, and the new key is wrapped to the vault and the client's current escrow recipients
  only. This is what makes removing an escrow recipient final: a recipient removed earlier can
  still open old copies of the key file (in old backups), but nothing written from now on.
* **Vault identity.** A new X25519 identity; every client key is re-wrapped to it (the client
  keys themselves do not change, so no field is re-sealed). The old identity is retired.
* **Log key.** A new Ed25519 key under the same name (the log's origin). The handover is a
  checkpoint signed by both the old and the new key, so a verifier that pinned the old key
  can follow the log to the new one (docs/audit-log.md, "Key rotation").

Each rotation is one transaction: it commits whole or not at all, and it is one audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from vault.crypto import age
from vault.crypto.fields import FieldCipher, FieldLocation
from vault.db.models import (
    Asset,
    Client,
    Domain,
    EscrowDestination,
    LogCheckpoint,
    Secret,
    SecretVersion,
    VaultKey,
    Vendor,
    new_id,
)
from vault.errors import Sealed
from vault.keys import new_client_key, wrap_client_key
from vault.log.note import Checkpoint, Signer, generate_signer, sign_note
from vault.services import Context, audit, auditlog
from vault.services.clients import get_client

BATCH = 1000
_INVENTORY = ((Vendor, "vendor"), (Domain, "domain"), (Asset, "asset"))


@dataclass(frozen=True)
class RotationResult:
    what: str
    client: str | None
    resealed: int
    rewrapped: int
    key_id: str | None = None
    public: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "client": self.client,
            "resealed": self.resealed,
            "rewrapped": self.rewrapped,
            "key_id": self.key_id,
            "public": self.public,
        }


def list_keys(session: Session) -> list[dict[str, Any]]:
    """The vault identity and log keys, current and retired, oldest first: public parts only.
    (Callers check the role: the API admits admins; the CLI runs on the host.)"""
    rows = session.scalars(select(VaultKey).order_by(VaultKey.created_at)).all()
    return [
        {
            "id": k.id,
            "purpose": k.purpose,
            "public": k.public,
            "created_at": k.created_at,
            "retired_at": k.retired_at,
        }
        for k in rows
    ]


def _reseal(
    old: FieldCipher, new: FieldCipher, blob: bytes | None, where: FieldLocation
) -> bytes | None:
    return None if blob is None else new.seal(old.open(blob, where), where)


def rotate_client_key(ctx: Context, client_name: str) -> RotationResult:
    """Give ``client_name`` a new client key and re-seal everything under it."""
    ctx.require("admin")
    keys = ctx.keyring()
    client = get_client(ctx, client_name)
    ctx.lock_client_key(client, exclusive=True)
    old = keys.cipher(client)
    key = new_client_key()
    new = FieldCipher(key)
    resealed = 0

    versions = (
        select(
            SecretVersion.id,
            SecretVersion.secret_id,
            SecretVersion.version,
            SecretVersion.value_ct,
            SecretVersion.username_ct,
            SecretVersion.notes_ct,
        )
        .join(Secret, Secret.id == SecretVersion.secret_id)
        .where(Secret.client_id == client.id)
        .order_by(SecretVersion.id)
    )
    # Read everything first, then write in batches (one executemany per batch).
    updates: list[dict[str, Any]] = []
    for row in ctx.session.execute(versions).all():
        places = {
            name: FieldLocation(client.id, "secret", row.secret_id, name, row.version)
            for name in ("value", "username", "notes")
        }
        updates.append(
            {
                "row_id": row.id,
                "value_ct": _reseal(old, new, row.value_ct, places["value"]),
                "username_ct": _reseal(old, new, row.username_ct, places["username"]),
                "notes_ct": _reseal(old, new, row.notes_ct, places["notes"]),
            }
        )
    statement = (
        update(SecretVersion)
        .where(SecretVersion.id == bindparam("row_id"))
        .values(
            value_ct=bindparam("value_ct"),
            username_ct=bindparam("username_ct"),
            notes_ct=bindparam("notes_ct"),
        )
    )
    connection = ctx.session.connection()
    for start in range(0, len(updates), BATCH):
        connection.execute(statement, updates[start : start + BATCH])
    resealed += len(updates)

    for model, kind in _INVENTORY:
        records = select(model.id, model.revision, model.private_ct).where(
            model.client_id == client.id, model.private_ct.is_not(None)
        )
        changes = [
            {
                "row_id": row.id,
                "private_ct": _reseal(
                    old,
                    new,
                    row.private_ct,
                    FieldLocation(client.id, kind, row.id, "private", row.revision),
                ),
            }
            for row in ctx.session.execute(records).all()
        ]
        if changes:
            connection.execute(
                update(model)
                .where(model.id == bindparam("row_id"))
                .values(private_ct=bindparam("private_ct")),
                changes,
            )
        resealed += len(changes)

    tokens = ctx.session.scalars(
        select(EscrowDestination).where(
            EscrowDestination.client_id == client.id, EscrowDestination.token_ct.is_not(None)
        )
    ).all()
    for destination in tokens:
        location = FieldLocation(client.id, "escrow", destination.id, "token", 1)
        destination.token_ct = _reseal(old, new, destination.token_ct, location)
        resealed += 1

    recipients: list[age.Recipient] = [keys.recipient]
    recipients += [age.parse_recipient(r.recipient) for r in client.recipients]
    client.wrapped_key = wrap_client_key(client.id, key, recipients)
    client.key_mac = keys.key_file_mac(client.id, client.wrapped_key)
    ctx.session.flush()
    audit.record(
        ctx,
        "key.rotate.client",
        client_id=client.id,
        subject_kind="client",
        subject_id=client.id,
        resealed=resealed,
        recipients=len(client.recipients),
    )
    return RotationResult("client-key", client.name, resealed, 1)


def rotate_vault_identity(ctx: Context) -> RotationResult:
    """A new vault identity; every client key re-wrapped to it; the old one retired."""
    ctx.require("admin")
    keys = ctx.keyring()
    current = ctx.session.get(VaultKey, keys.identity_key_id)
    if current is None or current.retired_at is not None:
        raise Sealed("this process holds an old vault identity: unseal again and retry")
    identity = age.X25519Identity.generate()
    key_id = new_id()
    row = VaultKey(
        id=key_id,
        purpose="identity",
        public=str(identity.recipient),
        sealed_private=keys.seal_vault_key("identity", key_id, str(identity).encode("ascii")),
    )
    rewrapped = 0
    clients = ctx.session.scalars(select(Client).order_by(Client.id)).all()
    for client in clients:
        ctx.lock_client_key(client, exclusive=True)
        key = keys.client_key(client)
        recipients: list[age.Recipient] = [identity.recipient]
        recipients += [age.parse_recipient(r.recipient) for r in client.recipients]
        client.wrapped_key = wrap_client_key(client.id, key, recipients)
        client.key_mac = keys.key_file_mac(client.id, client.wrapped_key)
        rewrapped += 1
    current.retired_at = datetime.now(UTC)
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(
        ctx,
        "key.rotate.identity",
        subject_kind="vault-key",
        subject_id=key_id,
        recipient=str(identity.recipient),
        clients=rewrapped,
    )
    # The caller refreshes its key ring after the commit (Store.refresh_keys); other
    # processes catch up on their first client key that only the new identity opens.
    return RotationResult("vault-identity", None, 0, rewrapped, key_id, str(identity.recipient))


def rotate_log_key(ctx: Context) -> RotationResult:
    """A new log key. The handover checkpoint, at the log's size after this rotation's own
    event, is signed by the old key and the new one."""
    ctx.require("admin")
    keys = ctx.keyring()
    old_signer = keys.log_signer
    current = ctx.session.get(VaultKey, keys.log_key_id) if keys.log_key_id else None
    if old_signer is None or current is None or current.retired_at is not None:
        raise Sealed("this process holds an old log key: unseal again and retry")
    state = auditlog.head(ctx.session)
    skey, vkey = generate_signer(state.origin)
    signer = Signer.parse(skey)
    key_id = new_id()
    row = VaultKey(
        id=key_id,
        purpose="log",
        public=vkey,
        sealed_private=keys.seal_vault_key("log", key_id, skey.encode("ascii")),
    )
    current.retired_at = datetime.now(UTC)
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(
        ctx,
        "key.rotate.log",
        subject_kind="vault-key",
        subject_id=key_id,
        old_key=old_signer.verifier.key_string(),
        new_key=vkey,
    )
    # The handover must cover the rotation event itself: append now rather than at commit.
    if ctx.pending_events:
        auditlog.append(ctx.session, ctx.pending_events)
        ctx.pending_events.clear()
    now = auditlog.head(ctx.session)
    checkpoint = Checkpoint(origin=now.origin, size=now.size, root=now.root)
    note = sign_note(checkpoint.to_text(), [old_signer, signer])
    # No checkpoint can exist at this size yet: the rotation's own event just made it.
    ctx.session.add(
        LogCheckpoint(
            size=now.size, root=now.root, note=note, key_id=key_id, signed_at=datetime.now(UTC)
        )
    )
    ctx.session.flush()
    # As for the identity: the caller refreshes its key ring after the commit, and a process
    # still holding the old key refuses to sign with it (auditlog.sign).
    return RotationResult("log-key", None, 0, 0, key_id, vkey)
