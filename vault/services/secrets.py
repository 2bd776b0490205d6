"""Secrets with full version history.

A secret's searchable metadata (title, kind, url, tags, policy flags) is plain; its value,
username and notes are sealed per version with the client's field key. Updating any sealed
field writes a new immutable version; earlier versions stay readable for history and export.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from sqlalchemy import insert, or_, select

from vault.crypto.fields import FieldCipher, FieldLocation
from vault.db.models import Client, Secret, SecretLink, SecretVersion, new_id, utcnow
from vault.errors import Conflict, InvalidInput, NotFound
from vault.services import Context, audit
from vault.services.clients import get_client
from vault.services.validation import (
    MAX_TITLE,
    MAX_VALUE_BYTES,
    choice,
    clean_name,
    clean_tags,
    name_key,
    optional_text,
)

KINDS = ("login", "api-key", "totp", "ssh-key", "license", "note")
GENERATE_CHARSETS = ("alnum", "full", "hex", "digits")
SEALED_FIELDS = ("value", "username", "notes")
#: the longest lease a secret's policy may allow (``max_lease_seconds``)
LONGEST_LEASE_SECONDS = 7 * 86400


@dataclass(frozen=True)
class RevealedSecret:
    """A decrypted version. ``repr`` shows metadata only, so it is safe in logs and tracebacks."""

    secret: Secret
    version: int
    created_at: datetime
    created_by: str
    value: str = field(repr=False)
    username: str | None = field(repr=False, default=None)
    notes: str | None = field(repr=False, default=None)

    def __repr__(self) -> str:
        return (
            f"RevealedSecret(title={self.secret.title!r}, version={self.version}, <value hidden>)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The revealed version as plain data - including the value: only for its reader."""
        return {
            "title": self.secret.title,
            "kind": self.secret.kind,
            "version": self.version,
            "username": self.username,
            "url": self.secret.url,
            "value": self.value,
            "notes": self.notes,
        }


def describe(s: Secret) -> dict[str, Any]:
    """A secret's metadata as plain data: never its value, username or notes."""
    return {
        "id": s.id,
        "client_id": s.client_id,
        "title": s.title,
        "kind": s.kind,
        "url": s.url,
        "tags": s.tags,
        "version": s.current_version,
        "exclusive": s.exclusive,
        "sensitive": s.sensitive,
        "rotate_after_use": s.rotate_after_use,
        "needs_rotation": bool(s.needs_rotation),
        "held_until": s.held_until,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def _where(client: Client, secret: Secret, field_name: str, version: int) -> FieldLocation:
    return FieldLocation(client.id, "secret", secret.id, field_name, version)


def _check_value(kind: str, value: str) -> str:
    if value is None or value == "":
        raise InvalidInput("the secret value must not be empty", field="value")
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise InvalidInput(
            f"the secret value is larger than {MAX_VALUE_BYTES} bytes", field="value"
        )
    if kind == "totp":
        _check_totp_seed(value)
    return value


def _check_totp_seed(value: str) -> None:
    """A TOTP seed is base32 or an otpauth:// URI. The message never repeats the seed.

    We accept 80-bit seeds: many vendors still issue them, and an escrow vault must keep
    whatever the vendor handed out (pyotp refuses under 112 bits, so we check ourselves)."""
    key, _, _, _ = parse_totp_seed(value)
    if len(key) < 10:
        raise InvalidInput("a TOTP seed must be at least 80 bits", field="value")


TotpHash = hashes.SHA1 | hashes.SHA256 | hashes.SHA512
_TOTP_ALGORITHMS: dict[str, type[TotpHash]] = {
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA512": hashes.SHA512,
}


def parse_totp_seed(stored: str) -> tuple[bytes, int, int, TotpHash]:
    """(key, digits, period, algorithm) from a base32 seed or an otpauth:// URI; raises
    InvalidInput (naming the field, never the seed) when it is neither."""
    from urllib.parse import parse_qs, urlsplit

    text, digits, period, algorithm = stored.strip(), 6, 30, "SHA1"
    if text.startswith("otpauth://"):
        parts = urlsplit(text)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.netloc not in ("totp", "hotp") or "secret" not in query:
            raise InvalidInput(
                "the otpauth:// URI needs type totp or hotp and a secret", field="value"
            )
        text = query["secret"]
        try:
            digits = int(query.get("digits", 6))
            period = int(query.get("period", 30))
        except ValueError:
            raise InvalidInput(
                "the otpauth:// URI has bad digits or period", field="value"
            ) from None
        algorithm = query.get("algorithm", "SHA1").upper()
    if digits not in (6, 7, 8) or not 1 <= period <= 300 or algorithm not in _TOTP_ALGORITHMS:
        raise InvalidInput("these TOTP parameters are not supported", field="value")
    compact = text.replace(" ", "").upper()
    try:
        key = base64.b32decode(compact + "=" * (-len(compact) % 8))
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "a TOTP seed must be base32 (A-Z, 2-7) or an otpauth:// URI", field="value"
        ) from None
    return key, digits, period, _TOTP_ALGORITHMS[algorithm]()


def _seal_version(
    cipher: FieldCipher,
    client: Client,
    secret: Secret,
    version: int,
    actor: str,
    value: str,
    username: str | None,
    notes: str | None,
) -> SecretVersion:
    def seal(name: str, text: str | None) -> bytes | None:
        if text is None:
            return None
        return cipher.seal_text(text, _where(client, secret, name, version))

    return SecretVersion(
        secret_id=secret.id,
        version=version,
        created_by=actor,
        value_ct=seal("value", value),
        username_ct=seal("username", username),
        notes_ct=seal("notes", notes),
    )


def get_secret_record(ctx: Context, client: Client, title: str) -> Secret:
    """A client's secret by title, or by id."""
    secret = ctx.session.scalars(
        select(Secret).where(
            Secret.client_id == client.id,
            or_(Secret.id == title, Secret.title_key == name_key(title)),
        )
    ).first()
    if secret is None:
        raise NotFound(f"client {client.name!r} has no secret titled {title!r}", field="title")
    return secret


@dataclass(frozen=True)
class NewSecret:
    """A secret to add; validated by :func:`add_secrets`. ``repr`` hides the sealed fields."""

    title: str
    value: str = field(repr=False)
    kind: str = "login"
    username: str | None = field(default=None, repr=False)
    url: str | None = None
    notes: str | None = field(default=None, repr=False)
    tags: list[str] | None = None
    exclusive: bool = False
    sensitive: bool = False
    rotate_after_use: bool = False
    max_lease_seconds: int | None = None
    generate_length: int | None = None
    generate_charset: str | None = None


def add_secret(ctx: Context, client_name: str, **fields: Any) -> Secret:
    """Add one secret (see :class:`NewSecret` for the fields)."""
    return add_secrets(ctx, client_name, [NewSecret(**fields)])[0]


def add_secrets(
    ctx: Context,
    client_name: str,
    items: Sequence[NewSecret],
    *,
    roles: Sequence[str] = ("admin", "consultant"),
) -> list[Secret]:
    """Add many secrets to one client in the caller's transaction.

    Everything is validated before anything is written, so one bad item adds nothing. Ids are
    assigned here, so the secrets, their first versions and their audit events go to the
    database in one flush (batched INSERTs) instead of a round trip per row. ``roles`` widens
    who may add, only for a caller that checked a stronger right first (a client contact
    answering a credential request, :mod:`vault.services.requests`)."""
    ctx.require(*roles)
    client = get_client(ctx, client_name)
    cleaned = [_validate_new(item) for item in items]
    now = utcnow()
    keys_seen: set[str] = set()
    for item in cleaned:
        key = name_key(item.title)
        if key in keys_seen:
            raise Conflict(f"the title {item.title!r} is given twice", field="title")
        keys_seen.add(key)
    for chunk in _chunks(sorted(keys_seen), 500):
        taken = ctx.session.scalars(
            select(Secret.title).where(Secret.client_id == client.id, Secret.title_key.in_(chunk))
        ).first()
        if taken is not None:
            raise Conflict(
                f"client {client.name!r} already has a secret titled {taken!r}", field="title"
            )
    cipher = ctx.sealing_cipher(client)
    added: list[Secret] = []
    versions: list[dict[str, Any]] = []
    for item in cleaned:
        secret = Secret(
            id=new_id(),
            client_id=client.id,
            title=item.title,
            title_key=name_key(item.title),
            kind=item.kind,
            url=item.url,
            tags=item.tags or [],
            current_version=1,
            exclusive=item.exclusive,
            sensitive=item.sensitive,
            rotate_after_use=item.rotate_after_use,
            max_lease_seconds=item.max_lease_seconds,
            generate_length=item.generate_length,
            generate_charset=item.generate_charset,
            needs_rotation=False,
            created_at=now,
            updated_at=now,
        )
        added.append(secret)
        version = _seal_version(
            cipher, client, secret, 1, ctx.actor, item.value, item.username, item.notes
        )
        versions.append(_columns(version, created_at=now))
    # Bulk INSERTs (executemany) rather than the unit of work: the rows are new and complete.
    ctx.session.execute(insert(Secret), [_columns(secret) for secret in added])
    ctx.session.execute(insert(SecretVersion), versions)
    audit.record_many(
        ctx,
        [
            audit.event(
                "secret.add",
                client_id=client.id,
                subject_kind="secret",
                subject_id=secret.id,
                title=secret.title,
                version=1,
            )
            for secret in added
        ],
    )
    return added


def _columns(row: Secret | SecretVersion, **extra: Any) -> dict[str, Any]:
    table = type(row).__table__
    data = {c.key: getattr(row, c.key) for c in table.columns if getattr(row, c.key) is not None}
    if "id" not in data:
        data["id"] = new_id()
    return {**data, **extra}


def _validate_new(item: NewSecret) -> NewSecret:
    kind = choice(item.kind, "kind", KINDS, default="login")
    return NewSecret(
        title=clean_name(item.title, "title", max_length=MAX_TITLE),
        value=_check_value(kind, item.value),
        kind=kind,
        username=optional_text(item.username, "username"),
        url=optional_text(item.url, "url"),
        notes=optional_text(item.notes, "notes"),
        tags=clean_tags(item.tags),
        exclusive=bool(item.exclusive),
        sensitive=bool(item.sensitive),
        rotate_after_use=bool(item.rotate_after_use),
        max_lease_seconds=_bounded(
            item.max_lease_seconds, "max_lease_seconds", 60, LONGEST_LEASE_SECONDS
        ),
        generate_length=_bounded(item.generate_length, "generate_length", 8, 256),
        generate_charset=(
            choice(item.generate_charset, "generate_charset", GENERATE_CHARSETS)
            if item.generate_charset
            else None
        ),
    )


def _bounded(value: int | None, field_name: str, low: int, high: int) -> int | None:
    if value is not None and not low <= value <= high:
        raise InvalidInput(f"{field_name} must be between {low} and {high}", field=field_name)
    return value


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _version_row(ctx: Context, secret: Secret, version: int | None) -> SecretVersion:
    wanted = secret.current_version if version is None else version
    row = ctx.session.scalars(
        select(SecretVersion).where(
            SecretVersion.secret_id == secret.id, SecretVersion.version == wanted
        )
    ).first()
    if row is None:
        raise NotFound(f"secret {secret.title!r} has no version {wanted}", field="version")
    return row


def reveal_version(
    cipher: FieldCipher, client: Client, secret: Secret, row: SecretVersion
) -> RevealedSecret:
    def open_(name: str, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        return cipher.open_text(blob, _where(client, secret, name, row.version))

    value = open_("value", row.value_ct)
    assert value is not None
    return RevealedSecret(
        secret=secret,
        version=row.version,
        created_at=row.created_at,
        created_by=row.created_by,
        value=value,
        username=open_("username", row.username_ct),
        notes=open_("notes", row.notes_ct),
    )


def read_secret(
    ctx: Context,
    client_name: str,
    title: str,
    *,
    version: int | None = None,
    reason: str | None = None,
) -> RevealedSecret:
    """Decrypt a secret for the actor and record the read (the caller commits).

    One query finds client, secret and version together: this is the hottest path of the
    vault (every check-out and every `custody secret get`)."""
    ctx.require()  # the local operator only: everyone else checks secrets out
    reason = optional_text(reason, "reason", max_length=500)
    wanted = Secret.current_version if version is None else version
    found = ctx.session.execute(
        select(Client, Secret, SecretVersion)
        .join(Secret, Secret.client_id == Client.id)
        .outerjoin(
            SecretVersion,
            (SecretVersion.secret_id == Secret.id) & (SecretVersion.version == wanted),
        )
        .where(Client.name_key == name_key(client_name), Secret.title_key == name_key(title))
    ).first()
    if found is None:
        client = get_client(ctx, client_name)  # raises NotFound for an unknown client
        raise NotFound(f"client {client.name!r} has no secret titled {title!r}", field="title")
    client, secret, row = found
    if row is None:
        raise NotFound(f"secret {secret.title!r} has no version {version}", field="version")
    revealed = reveal_version(ctx.keyring().cipher(client), client, secret, row)
    audit.record(
        ctx,
        "secret.read",
        client_id=client.id,
        subject_kind="secret",
        subject_id=secret.id,
        title=secret.title,
        version=row.version,
        reason=reason,
    )
    return revealed


def read_client_secrets(
    ctx: Context, client_name: str, *, reason: str | None = None
) -> list[RevealedSecret]:
    """Decrypt the current version of every secret of a client (one query), recording one
    read event per secret. For exports and bulk hand-overs."""
    reason = optional_text(reason, "reason", max_length=500)
    ctx.require("admin", "client")
    client = get_client(ctx, client_name)
    cipher = ctx.keyring().cipher(client)
    rows = ctx.session.execute(
        select(Secret, SecretVersion)
        .join(
            SecretVersion,
            (SecretVersion.secret_id == Secret.id)
            & (SecretVersion.version == Secret.current_version),
        )
        .where(Secret.client_id == client.id)
        .order_by(Secret.title_key)
    ).all()
    revealed = [reveal_version(cipher, client, secret, row) for secret, row in rows]
    audit.record_many(
        ctx,
        [
            audit.event(
                "secret.read",
                client_id=client.id,
                subject_kind="secret",
                subject_id=item.secret.id,
                title=item.secret.title,
                version=item.version,
                reason=reason,
            )
            for item in revealed
        ],
    )
    return revealed


_UNSET: object = object()


def update_secret(
    ctx: Context,
    client_name: str,
    title: str,
    *,
    value: str | None = None,
    username: str | None | object = _UNSET,
    notes: str | None | object = _UNSET,
    new_title: str | None = None,
    url: str | None | object = _UNSET,
    kind: str | None = None,
    tags: list[str] | None = None,
    exclusive: bool | None = None,
    sensitive: bool | None = None,
    rotate_after_use: bool | None = None,
) -> Secret:
    """Change metadata in place; a change to value, username or notes adds a new version."""
    ctx.require("admin", "consultant")
    client = get_client(ctx, client_name)
    secret = get_secret_record(ctx, client, title)
    # Lock the row (PostgreSQL; SQLite's writer lock already serialises) and re-read it, so two
    # concurrent updates number their new versions one after the other instead of both taking
    # current_version + 1 (one then failed on the unique version constraint as a 500).
    ctx.session.refresh(secret, with_for_update=True)
    changed: list[str] = []
    if new_title is not None:
        new_title = clean_name(new_title, "title", max_length=MAX_TITLE)
        if (
            name_key(new_title) != secret.title_key
            and ctx.session.scalars(
                select(Secret.id).where(
                    Secret.client_id == client.id, Secret.title_key == name_key(new_title)
                )
            ).first()
        ):
            raise Conflict(
                f"client {client.name!r} already has a secret titled {new_title!r}", field="title"
            )
        secret.title, secret.title_key = new_title, name_key(new_title)
        changed.append("title")
    if kind is not None:
        secret.kind = choice(kind, "kind", KINDS)
        changed.append("kind")
    if url is not _UNSET:
        secret.url = optional_text(url, "url")  # type: ignore[arg-type]
        changed.append("url")
    if tags is not None:
        secret.tags = clean_tags(tags)
        changed.append("tags")
    for flag, new in (
        ("exclusive", exclusive),
        ("sensitive", sensitive),
        ("rotate_after_use", rotate_after_use),
    ):
        if new is not None:
            setattr(secret, flag, bool(new))
            changed.append(flag)

    sealed_change = value is not None or username is not _UNSET or notes is not _UNSET
    if sealed_change:
        cipher = ctx.sealing_cipher(client)
        current = reveal_version(cipher, client, secret, _version_row(ctx, secret, None))
        new_value = _check_value(secret.kind, value) if value is not None else current.value
        new_username = (
            current.username
            if username is _UNSET
            else optional_text(cast("str | None", username), "username")
        )
        new_notes = (
            current.notes if notes is _UNSET else optional_text(cast("str | None", notes), "notes")
        )
        version = secret.current_version + 1
        ctx.session.add(
            _seal_version(
                cipher, client, secret, version, ctx.actor, new_value, new_username, new_notes
            )
        )
        secret.current_version = version
        changed += [
            n
            for n, v in (("value", value), ("username", username), ("notes", notes))
            if v is not None and v is not _UNSET
        ]
    if not changed:
        raise InvalidInput("nothing to update: give at least one field to change")
    ctx.session.flush()
    audit.record(
        ctx,
        "secret.update",
        client_id=client.id,
        subject_kind="secret",
        subject_id=secret.id,
        title=secret.title,
        version=secret.current_version,
        fields=sorted(set(changed)),
    )
    return secret


def list_secrets(
    ctx: Context,
    client_name: str,
    *,
    query: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
) -> list[Secret]:
    ctx.require("admin", "consultant", "client")
    client = get_client(ctx, client_name)
    stmt = select(Secret).where(Secret.client_id == client.id).order_by(Secret.title_key)
    if kind:
        stmt = stmt.where(Secret.kind == choice(kind, "kind", KINDS))
    rows = list(ctx.session.scalars(stmt))
    if query:
        needle = name_key(query)
        rows = [
            s
            for s in rows
            if needle in s.title_key
            or needle in (s.url or "").lower()
            or any(needle in t for t in s.tags)
        ]
    if tag:
        rows = [s for s in rows if tag.lower() in s.tags]
    return rows


def history(ctx: Context, client_name: str, title: str) -> list[SecretVersion]:
    ctx.require("admin", "consultant", "client")
    client = get_client(ctx, client_name)
    secret = get_secret_record(ctx, client, title)
    return list(
        ctx.session.scalars(
            select(SecretVersion)
            .where(SecretVersion.secret_id == secret.id)
            .order_by(SecretVersion.version)
        )
    )


def links_of(ctx: Context, secret: Secret) -> list[SecretLink]:
    return list(ctx.session.scalars(select(SecretLink).where(SecretLink.secret_id == secret.id)))
