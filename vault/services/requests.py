"""Credential requests: a one-time, expiring link asking a client for one credential.

A consultant (granted to the client) or an admin names the record to be created - a new
secret's title and kind, optionally its vendor - and gets a link ``/ui/r/<token>`` to send
the client. A signed-in contact *of that client* opens it and types the value; it is stored
encrypted as a new secret of that client, through :mod:`vault.services.secrets`. No more
passwords sent by e-mail.

The token is 32 random bytes (base64url); only its SHA-256 is stored, so a database reader
cannot use a pending link. A link is dead once used, revoked or past its expiry (default 72
hours, at most 14 days): it then answers :class:`Gone`. Using it is one conditional UPDATE,
so two submissions racing for one link cannot both store a value.

Audit events: ``request.create``, ``request.fulfil`` and ``request.revoke`` - titles and ids,
never the value (nor the token).
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from vault.db.models import CredentialRequest, Secret, utcnow
from vault.errors import Conflict, Gone, InvalidInput, NotFound
from vault.services import Context, audit
from vault.services.clients import get_client
from vault.services.validation import choice, clean_name, name_key, optional_text

DEFAULT_TTL = timedelta(hours=72)
MAX_TTL = timedelta(days=14)
TOKEN_BYTES = 32
#: who may ask for a credential (within their client scope)
REQUESTERS = ("admin", "consultant")
#: who may see a client's pending requests
READERS = ("admin", "consultant", "client")
MAX_TOKEN_LENGTH = 100


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Created:
    request: CredentialRequest
    #: the link token, shown once to the requester; only its hash is kept
    token: str


def state_of(row: CredentialRequest, now: datetime | None = None) -> str:
    now = now or utcnow()
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at <= now:
        return "expired"
    return "pending"


def describe(row: CredentialRequest, vendor_name: str | None = None) -> dict[str, object]:
    return {
        "id": row.id,
        "client_id": row.client_id,
        "title": row.title,
        "kind": row.kind,
        "vendor": vendor_name,
        "note": row.note,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "used_at": row.used_at,
        "used_by": row.used_by,
        "revoked_at": row.revoked_at,
        "secret_id": row.secret_id,
        "state": state_of(row),
    }


def create(
    ctx: Context,
    client_name: str,
    *,
    title: str,
    kind: str = "login",
    vendor: str | None = None,
    note: str | None = None,
    ttl: timedelta | None = None,
) -> Created:
    from vault.services import inventory
    from vault.services.secrets import KINDS

    ctx.require(*REQUESTERS)
    client = get_client(ctx, client_name)
    title = clean_name(title, "title")
    kind = choice(kind, "kind", KINDS, default="login")
    ttl = DEFAULT_TTL if ttl is None else ttl
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise InvalidInput("a request link lives between 1 second and 14 days", field="ttl")
    _check_title_free(ctx, client.id, title)
    vendor_id = None
    if vendor:
        vendor_id = inventory.show_record(ctx, "vendor", client.id, vendor).row.id
    raw = pysecrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    row = CredentialRequest(
        client_id=client.id,
        token_hash=hash_token(raw),
        title=title,
        kind=kind,
        vendor_id=vendor_id,
        note=optional_text(note, "note", max_length=1000),
        created_by=ctx.actor,
        created_at=now,
        expires_at=now + ttl,
    )
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(
        ctx,
        "request.create",
        client_id=client.id,
        subject_kind="request",
        subject_id=row.id,
        title=title,
        kind=kind,
        expires_at=row.expires_at.isoformat(),
    )
    return Created(request=row, token=raw)


def _check_title_free(ctx: Context, client_id: str, title: str) -> None:
    taken = ctx.session.scalars(
        select(Secret.id).where(Secret.client_id == client_id, Secret.title_key == name_key(title))
    ).first()
    if taken is not None:
        raise Conflict(f"the client already has a secret titled {title!r}", field="title")


def list_requests(ctx: Context, client_name: str) -> list[CredentialRequest]:
    ctx.require(*READERS)
    client = get_client(ctx, client_name)
    return list(
        ctx.session.scalars(
            select(CredentialRequest)
            .where(CredentialRequest.client_id == client.id)
            .order_by(CredentialRequest.created_at.desc())
        )
    )


def revoke(ctx: Context, client_name: str, request_id: str) -> CredentialRequest:
    ctx.require(*REQUESTERS)
    client = get_client(ctx, client_name)
    row = ctx.session.get(CredentialRequest, request_id)
    if row is None or row.client_id != client.id:
        raise NotFound("no such request", field="request")
    if row.revoked_at is None and row.used_at is None:
        row.revoked_at = utcnow()
    audit.record(
        ctx, "request.revoke", client_id=client.id, subject_kind="request", subject_id=row.id
    )
    return row


def open_request(ctx: Context, raw: str) -> CredentialRequest:
    """The live request behind a link, for a contact of its client. A used, revoked or
    expired link is :class:`Gone`; an unknown one, or one of another client, NotFound."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        raise NotFound("no such request link", field="token")
    row = ctx.session.scalars(
        select(CredentialRequest).where(CredentialRequest.token_hash == hash_token(raw))
    ).first()
    if row is None:
        raise NotFound("no such request link", field="token")
    if state_of(row) != "pending":
        raise Gone("this request link has been used, revoked or has expired")
    ctx.require("client")
    if ctx.principal.role == "client" and not ctx.principal.sees(row.client_id):
        raise NotFound("no such request link", field="token")
    return row


def fulfil(ctx: Context, raw: str, *, value: str, username: str | None = None) -> Secret:
    """Store the value as the requested secret and kill the link, in one transaction."""
    from vault.services.secrets import NewSecret, add_secrets

    row = open_request(ctx, raw)
    if not value:
        raise InvalidInput("type the credential", field="value")
    used = ctx.session.execute(
        update(CredentialRequest)
        .where(CredentialRequest.id == row.id, CredentialRequest.used_at.is_(None))
        .values(used_at=utcnow(), used_by=ctx.actor)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise Gone("this request link has been used, revoked or has expired")
    secret = add_secrets(
        ctx,
        row.client_id,
        [NewSecret(title=row.title, value=value, kind=row.kind, username=username)],
        roles=("client", "admin"),
    )[0]
    ctx.session.execute(
        update(CredentialRequest)
        .where(CredentialRequest.id == row.id)
        .values(secret_id=secret.id)
        .execution_options(synchronize_session=False)
    )
    if row.vendor_id is not None:
        from vault.db.models import SecretLink

        ctx.session.add(SecretLink(secret_id=secret.id, vendor_id=row.vendor_id))
    audit.record(
        ctx,
        "request.fulfil",
        client_id=row.client_id,
        subject_kind="request",
        subject_id=row.id,
        secret_id=secret.id,
        title=row.title,
    )
    return secret


def link_is_dead(session: object, raw: str) -> bool:
    """True if ``raw`` names a used, revoked or expired request (before anyone signs in, so
    a dead link answers 410 at once). Says nothing about live or unknown links."""
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return False
    row = session.scalars(
        select(CredentialRequest).where(CredentialRequest.token_hash == hash_token(raw))
    ).first()
    return row is not None and state_of(row) != "pending"
