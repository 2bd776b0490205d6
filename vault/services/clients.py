"""Clients (tenants), their contacts and their escrow recipients."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select

from vault.crypto import age
from vault.db.models import Asset, Client, Contact, Domain, Recipient, Secret, Vendor
from vault.errors import Conflict, InvalidInput, NotFound
from vault.keys import new_client_key, wrap_client_key
from vault.services import Context, audit
from vault.services.validation import clean_name, name_key, optional_text

RECIPIENT_KINDS = {"age1": "x25519", "ssh-ed25519": "ssh-ed25519"}


def get_client(ctx: Context, name: str) -> Client:
    """A client by name, or by id (ids are UUIDs; the API addresses clients by id)."""
    client = ctx.session.scalars(
        select(Client)
        .where(or_(Client.id == name, Client.name_key == name_key(name)))
        .order_by((Client.id == name).desc())  # an exact id match wins
    ).first()
    # Out of scope reads exactly like unknown: a client's existence does not leak.
    if client is None or not ctx.principal.sees(client.id):
        raise NotFound(f"no client named {name!r}", field="client")
    return client


def parse_recipient(text: str) -> tuple[age.Recipient, str, str]:
    """Returns (recipient, canonical text, kind); raises MalformedRecipient."""
    recipient = age.parse_recipient(text.strip())
    canonical = str(recipient)
    kind = "ssh-ed25519" if canonical.startswith("ssh-ed25519") else "x25519"
    return recipient, canonical, kind


def _rewrap(ctx: Context, client: Client, key: bytes | None = None) -> None:
    """Wrap the client key anew to the vault and the client's current escrow recipients.

    Only the small client-key file changes: field ciphertexts stay as they are."""
    keys = ctx.keyring()
    if client.wrapped_key:  # an existing client: no write may seal under a key we replace
        ctx.lock_client_key(client, exclusive=True)
    key = keys.client_key(client) if key is None else key
    recipients: list[age.Recipient] = [keys.recipient]
    recipients += [age.parse_recipient(r.recipient) for r in client.recipients]
    client.wrapped_key = wrap_client_key(client.id, key, recipients)
    client.key_mac = keys.key_file_mac(client.id, client.wrapped_key)


def add_client(ctx: Context, name: str, *, recipients: list[str] | None = None) -> Client:
    ctx.require("admin")
    name = clean_name(name, "name")
    key_ = name_key(name)
    if ctx.session.scalars(select(Client.id).where(Client.name_key == key_)).first():
        raise Conflict(f"a client named {name!r} already exists", field="name")
    parsed: list[tuple[str, str]] = []
    for text in recipients or []:
        _, canonical, kind = parse_recipient(text)
        if any(c == canonical for c, _ in parsed):
            raise Conflict("the same recipient was given twice", field="recipient")
        parsed.append((canonical, kind))
    client = Client(name=name, name_key=key_, wrapped_key=b"")
    ctx.session.add(client)
    ctx.session.flush()  # assigns the id the wrapped key is bound to
    client.recipients = [Recipient(recipient=c, kind=k) for c, k in parsed]
    _rewrap(ctx, client, new_client_key())
    audit.record(
        ctx,
        "client.add",
        client_id=client.id,
        subject_kind="client",
        subject_id=client.id,
        name=name,
        recipients=len(parsed),
    )
    return client


def list_clients(ctx: Context) -> list[Client]:
    ctx.require("admin", "consultant", "client")
    rows = ctx.session.scalars(select(Client).order_by(Client.name_key))
    return [c for c in rows if ctx.principal.sees(c.id)]


@dataclass(frozen=True)
class ClientSummary:
    client: Client
    counts: dict[str, int]


def summarize(ctx: Context, client: Client) -> ClientSummary:
    counts = {}
    for label, model in (
        ("secrets", Secret),
        ("vendors", Vendor),
        ("domains", Domain),
        ("assets", Asset),
    ):
        counts[label] = (
            ctx.session.scalar(
                select(func.count()).select_from(model).where(model.client_id == client.id)
            )
            or 0
        )
    counts["recipients"] = len(client.recipients)
    counts["contacts"] = len(client.contacts)
    return ClientSummary(client=client, counts=counts)


def describe_recipient(r: Recipient) -> dict[str, Any]:
    return {
        "id": r.id,
        "recipient": r.recipient,
        "kind": r.kind,
        "label": r.label,
        "added_at": r.added_at,
    }


def describe(ctx: Context, client: Client) -> dict[str, Any]:
    """A client as plain data (what the API and the CLI show): counts, escrow recipients,
    contacts - no key material."""
    return {
        "id": client.id,
        "name": client.name,
        "created_at": client.created_at,
        "counts": summarize(ctx, client).counts,
        "recipients": [describe_recipient(r) for r in client.recipients],
        "contacts": [
            {"id": p.id, "name": p.name, "email": p.email, "phone": p.phone, "role": p.role}
            for p in client.contacts
        ],
    }


def add_recipient(
    ctx: Context, client_name: str, text: str, *, label: str | None = None
) -> Recipient:
    ctx.require("admin", "client")
    client = get_client(ctx, client_name)
    _, canonical, kind = parse_recipient(text)
    if any(r.recipient == canonical for r in client.recipients):
        raise Conflict(f"client {client.name!r} already has this recipient", field="recipient")
    recipient = Recipient(recipient=canonical, kind=kind, label=optional_text(label, "label"))
    client.recipients.append(recipient)
    _rewrap(ctx, client)
    ctx.session.flush()
    audit.record(
        ctx,
        "recipient.add",
        client_id=client.id,
        subject_kind="recipient",
        subject_id=recipient.id,
        recipient=canonical,
    )
    return recipient


def remove_recipient(ctx: Context, client_name: str, text: str) -> Recipient:
    ctx.require("admin", "client")
    client = get_client(ctx, client_name)
    wanted = text.strip()
    with contextlib.suppress(InvalidInput):  # not a key: it may be an id or a label
        _, wanted, _ = parse_recipient(wanted)
    match = [r for r in client.recipients if wanted in (r.recipient, r.id, r.label)]
    if not match:
        raise NotFound(f"client {client.name!r} has no such recipient", field="recipient")
    if len(match) > 1:
        raise Conflict(
            "that label names several recipients; give the recipient itself", field="recipient"
        )
    recipient = match[0]
    client.recipients.remove(recipient)
    _rewrap(ctx, client)
    audit.record(
        ctx,
        "recipient.remove",
        client_id=client.id,
        subject_kind="recipient",
        subject_id=recipient.id,
        recipient=recipient.recipient,
    )
    return recipient


def add_contact(
    ctx: Context,
    client_name: str,
    name: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    role: str | None = None,
) -> Contact:
    ctx.require("admin", "consultant")
    client = get_client(ctx, client_name)
    contact = Contact(
        name=clean_name(name, "name"),
        email=optional_text(email, "email", max_length=320),
        phone=optional_text(phone, "phone", max_length=64),
        role=optional_text(role, "role", max_length=200),
    )
    if contact.email is not None and "@" not in contact.email:
        raise InvalidInput("email must be an address like name@example.com", field="email")
    client.contacts.append(contact)
    ctx.session.flush()
    audit.record(
        ctx, "contact.add", client_id=client.id, subject_kind="contact", subject_id=contact.id
    )
    return contact
