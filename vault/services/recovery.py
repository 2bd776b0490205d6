"""Offline recovery: a client's records from a database copy and the client's own identity.

No vault passphrase, no server, no write: the database is opened read-only, the client key is
unwrapped with the client's escrow identity (the same age file ``age -d`` opens), and every
record of that one client is decrypted. Other clients' rows are never read, and could not be
decrypted anyway: their keys are wrapped to other recipients.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from vault.crypto import age
from vault.crypto.fields import FieldCipher, FieldLocation
from vault.db import engine as db
from vault.db.models import Asset, Client, Domain, Secret, SecretLink, SecretVersion, Vendor
from vault.errors import NotFound, SchemaError
from vault.keys import unwrap_client_key
from vault.services.inventory import describe
from vault.services.secrets import RevealedSecret, reveal_version
from vault.services.validation import name_key


@dataclass
class RecoveredClient:
    name: str
    client_id: str
    secrets: list[RevealedSecret] = field(default_factory=list, repr=False)
    history: dict[str, list[RevealedSecret]] = field(default_factory=dict, repr=False)
    inventory: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    links: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def open_backup(url: str) -> Engine:
    engine = db.make_engine(url, read_only=True)
    current = db.current_revision(engine)
    head = db.head_revision()
    if current is None:
        raise SchemaError("that database holds no Custody schema")
    if current not in db._known_revisions():
        raise SchemaError(
            f"that database is at schema {current}, newer than this Custody; "
            "use a newer custody to recover it"
        )
    if current != head:
        raise SchemaError(
            f"that copy is at schema {current}, this Custody reads {head}: upgrade a copy of "
            "it first (CUSTODY_DATABASE_URL=sqlite:///COPY custody db upgrade)"
        )
    return engine


def open_client(
    session: Session, client_name: str, identities: Sequence[age.Identity]
) -> tuple[Client, FieldCipher]:
    """``client_name``'s row in a database copy and its field cipher, the client key unwrapped
    with the client's own identity (no vault key involved)."""
    client = session.scalars(select(Client).where(Client.name_key == name_key(client_name))).first()
    if client is None:
        raise NotFound(f"no client named {client_name!r} in that database", field="client")
    return client, FieldCipher(unwrap_client_key(client.wrapped_key, identities, client.id))


def recover_client(
    engine: Engine,
    client_name: str,
    identities: Sequence[age.Identity],
    *,
    with_history: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RecoveredClient:
    """Decrypt every record of one client; ``progress(done, total)`` reports secrets done."""
    with Session(engine) as session:
        client, cipher = open_client(session, client_name, identities)
        out = RecoveredClient(name=client.name, client_id=client.id)
        total = session.scalar(
            select(func.count()).select_from(Secret).where(Secret.client_id == client.id)
        )
        for done, (secret, versions) in enumerate(_secrets(session, client), start=1):
            current = [v for v in versions if v.version == secret.current_version]
            if current:
                out.secrets.append(reveal_version(cipher, client, secret, current[0]))
            if with_history:
                out.history[secret.title] = [
                    reveal_version(cipher, client, secret, v) for v in versions
                ]
            if progress is not None:
                progress(done, total or 0)
        vendors = {
            v.id: v.name
            for v in session.scalars(select(Vendor).where(Vendor.client_id == client.id))
        }
        for kind, model in (("vendor", Vendor), ("domain", Domain), ("asset", Asset)):
            rows = session.scalars(
                select(model).where(model.client_id == client.id).order_by(model.name_key)
            )
            out.inventory[kind] = [_inventory_dict(kind, r, cipher, client, vendors) for r in rows]
        out.links = _links(session, client, vendors)
        return out


def _secrets(session: Session, client: Client) -> Iterator[tuple[Secret, list[SecretVersion]]]:
    secrets = session.scalars(
        select(Secret).where(Secret.client_id == client.id).order_by(Secret.title_key)
    )
    for secret in secrets:
        versions = list(
            session.scalars(
                select(SecretVersion)
                .where(SecretVersion.secret_id == secret.id)
                .order_by(SecretVersion.version)
            )
        )
        yield secret, versions


def _inventory_dict(
    kind: str, row: Any, cipher: FieldCipher, client: Client, vendors: dict[str, str]
) -> dict[str, Any]:
    private = None
    if row.private_ct is not None:
        where = FieldLocation(client.id, kind, row.id, "private", row.revision)
        private = json.loads(cipher.open(row.private_ct, where))
    return describe(kind, row, lambda vendor_id: vendors.get(vendor_id or ""), private)


def _links(
    session: Session, client: Client, vendors: dict[str, str]
) -> dict[str, list[dict[str, str]]]:
    domains = {
        d.id: d.name for d in session.scalars(select(Domain).where(Domain.client_id == client.id))
    }
    assets = {
        a.id: a.name for a in session.scalars(select(Asset).where(Asset.client_id == client.id))
    }
    out: dict[str, list[dict[str, str]]] = {}
    rows = session.execute(
        select(Secret.title, SecretLink)
        .join(SecretLink, SecretLink.secret_id == Secret.id)
        .where(Secret.client_id == client.id)
    )
    for title, link in rows:
        if link.vendor_id:
            target = {"vendor": vendors.get(link.vendor_id, "?")}
        elif link.domain_id:
            target = {"domain": domains.get(link.domain_id, "?")}
        else:
            target = {"asset": assets.get(link.asset_id or "", "?")}
        out.setdefault(title, []).append(target)
    return out
