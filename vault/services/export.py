"""A client's export: every record of one client in one age file, to its escrow recipients only.

docs/export-format.md is the specification; :mod:`vault.formats.bundle` holds the manifest and
the offline verification. This module reads the database and writes the bundle:

* the content is one JSON document (``custody-export/v1``) written **as it is read**: secrets
  are fetched in pages of :data:`BATCH` (keyset pagination on the title), decrypted, encoded and
  pushed into the age STREAM writer, which holds at most one 64 KiB chunk. Memory therefore
  stays flat however many secrets the client has;
* the age file is encrypted to the client's escrow recipients and to nobody else - not the
  vault's key: the vault cannot open what it hands out;
* the manifest (counts, SHA-256 and size of the plaintext, the log checkpoint) is signed with
  the vault's Ed25519 log key - or, for an offline bundle made from a database copy without the
  sealed keys, left unsigned and marked ``offline``.

An online export runs in three steps so that no write lock is held while the bundle is written
(on SQLite that would stop every other writer for the whole export): a short transaction that
authorises the caller and cuts a signed log checkpoint (:func:`prepare`), a read-only session
that writes the bundle (:func:`write`), and a short transaction that records the
``client.export`` event - counts, size and hash, never a value (:func:`record`). Callers hand
the bundle over only after the event is committed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Connection, Engine, and_, func, or_, select
from sqlalchemy.orm import Session

from vault.crypto import age
from vault.crypto.fields import FieldCipher, FieldLocation, RecordLocation
from vault.db.models import (
    Asset,
    Client,
    Domain,
    Secret,
    SecretLink,
    SecretVersion,
    Vendor,
)
from vault.errors import Conflict, InvalidInput, NotFound, Sealed
from vault.formats.bundle import FORMAT, KINDS, Manifest
from vault.formats.items import PortableItem, PortableVersion
from vault.keys import KeyRing, load_meta
from vault.log.errors import LogError
from vault.log.note import Checkpoint
from vault.services import Context, Principal, audit, auditlog
from vault.services.clients import get_client
from vault.services.inventory import describe as describe_record
from vault.services.recovery import open_client

#: secrets fetched, decrypted and written per page
BATCH = 1000
#: plaintext gathered before it is handed to the age writer (fewer, larger writes)
FLUSH_BYTES = 64 * 1024
#: formats a client may ask for; all but age-json are written by vault.formats.writers
FORMATS = ("age-json", "kdbx", "bitwarden-json", "csv")
#: who may export a client (within scope): admins, the client's own contacts, the escrow runner
EXPORTERS = ("admin", "client", "system")
#: groups of a tree-shaped tool (KeePass, Bitwarden folders) per secret kind
KIND_GROUPS = {
    "login": "Logins",
    "api-key": "API keys",
    "totp": "TOTP",
    "ssh-key": "SSH keys",
    "license": "Licenses",
    "note": "Notes",
}
_JSON_OPTIONS = orjson.OPT_UTC_Z

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportPlan:
    """What :func:`prepare` decided: which client, and the log checkpoint the export is cut at."""

    client_id: str
    client_name: str
    vault_id: str
    mode: str = "online"
    checkpoint_note: str | None = None
    verifier_key: str | None = None
    #: the checkpoint was signed for this export and is stored with its event
    checkpoint_fresh: bool = False


@dataclass(frozen=True)
class ExportResult:
    manifest: Manifest
    #: the signed note (online) or the unsigned manifest text (offline)
    manifest_text: str
    #: bytes of the age file
    bundle_bytes: int
    format: str = "age-json"

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "client": {"id": m.client_id, "name": m.client_name},
            "format": self.format,
            "mode": m.mode,
            "created": m.created,
            "history": m.history,
            "counts": dict(m.counts),
            "sha256": m.sha256,
            "size": m.size,
            "bundle_bytes": self.bundle_bytes,
            "checkpoint": (
                {"size": m.checkpoint_size, "root": m.checkpoint_root}
                if m.checkpoint_size is not None
                else None
            ),
            "manifest": self.manifest_text,
        }


# --- the three steps of an online export ---------------------------------------------------------


def prepare(ctx: Context, client_name: str) -> ExportPlan:
    """Authorise the export (admin or the client's contact; another client's is "not found")
    and cut the log checkpoint it carries. Writes nothing: a checkpoint signed now (the log
    grew since the latest) is stored by :func:`record`, with the export's event."""
    ctx.require(*EXPORTERS)
    client = get_client(ctx, client_name)
    if not client.recipients:
        raise Conflict(
            f"client {client.name!r} has no escrow recipient: add one (custody recipient add) "
            "so that the export can be encrypted to it",
            field="recipients",
        )
    note: str | None = None
    fresh = False
    if ctx.keys is not None and ctx.keys.log_signer is not None:
        _, note, latest = auditlog.current_note(ctx.session, ctx.keys)
        fresh = latest is None or latest.note != note
    else:
        latest = auditlog.latest_checkpoint(ctx.session)
        note = latest.note if latest is not None else None
    return ExportPlan(
        client_id=client.id,
        client_name=client.name,
        vault_id=load_meta(ctx.session).vault_id,
        checkpoint_note=note,
        verifier_key=_verifier_key(ctx.session),
        checkpoint_fresh=fresh,
    )


def write(
    session: Session,
    keys: KeyRing,
    plan: ExportPlan,
    out: BinaryIO,
    *,
    history: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """Write the bundle of ``plan``'s client to ``out``, and sign its manifest."""
    if keys.log_signer is None:
        raise Sealed("the vault's log key is not unsealed: it signs export manifests")
    client = session.get(Client, plan.client_id)
    if client is None:
        raise NotFound("that client no longer exists", field="client")
    manifest, size = write_bundle(
        session,
        client,
        keys.cipher(client),
        plan,
        out,
        history=history,
        progress=progress,
        now=now,
    )
    return ExportResult(manifest, manifest.sign(keys.log_signer), size)


def record(ctx: Context, plan: ExportPlan, result: ExportResult) -> None:
    """The ``client.export`` event: counts, sizes and the content hash - never a value; and
    the checkpoint the export carries, if it was signed for it."""
    m = result.manifest
    if plan.checkpoint_fresh and plan.checkpoint_note is not None:
        checkpoint = _parse_checkpoint(plan.checkpoint_note)
        assert checkpoint is not None
        auditlog.keep(ctx.session, ctx.keys, checkpoint.size, checkpoint.root, plan.checkpoint_note)
    audit.record(
        ctx,
        "client.export",
        client_id=plan.client_id,
        subject_kind="client",
        subject_id=plan.client_id,
        format=result.format,
        mode=m.mode,
        history=m.history,
        counts=dict(m.counts),
        sha256=m.sha256 or None,
        bytes=result.bundle_bytes,
        checkpoint=m.checkpoint_size,
    )


def export_client(
    store: Any,
    keys: KeyRing,
    actor: str | Principal,
    client_name: str,
    out: BinaryIO,
    *,
    history: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
) -> ExportResult:
    """The three steps (the CLI and the escrow runner): authorise and write in one read-only
    snapshot (so the checkpoint and the records are of the same moment), then record."""
    principal = actor if isinstance(actor, Principal) else Principal.operator(actor)
    with store.read_session() as session, session.begin():
        ctx = Context(
            session=session, actor=principal.name, keys=keys, principal=principal, source=source
        )
        plan = prepare(ctx, client_name)
        result = write(session, keys, plan, out, history=history, progress=progress)
    with store.context(principal, keys, source=source) as ctx:
        record(ctx, plan, result)
    return result


def export_portable(
    store: Any,
    keys: KeyRing,
    actor: str | Principal,
    client_name: str,
    fmt: str,
    out: BinaryIO,
    *,
    history: bool = False,
    passphrase: str | None = None,
    keyfile: bytes | None = None,
    source: str | None = None,
) -> ExportResult:
    """The client's secrets in another tool's format (KDBX, Bitwarden JSON, CSV), written by
    :func:`vault.formats.writers.write`. Such files are protected by the passphrase or key file
    the client gives (KDBX) or not at all (CSV, Bitwarden JSON): they are for moving house."""
    writer = _format_writer(fmt)
    with store.context(actor, keys, source=source) as ctx:
        ctx.require(*EXPORTERS)
        client = get_client(ctx, client_name)
        plan = ExportPlan(client.id, client.name, load_meta(ctx.session).vault_id)
    counts = dict.fromkeys(KINDS, 0)
    with store.read_session() as session, session.begin():
        client = session.get(Client, plan.client_id)
        if client is None:
            raise NotFound("that client no longer exists", field="client")

        def counted() -> Iterator[PortableItem]:
            for item in iter_portable_items(session, client, keys.cipher(client), history=history):
                counts["secrets"] += 1
                counts["versions"] += max(1, len(item.history))
                counts["links"] += (1 if item.vendor else 0) + len(item.domains) + len(item.assets)
                yield item

        writer(fmt, counted(), out, passphrase=passphrase, keyfile=keyfile)
    manifest = Manifest(
        client_name=plan.client_name,
        client_id=plan.client_id,
        created=_timestamp(datetime.now(UTC)),
        mode="online",
        history=history,
        counts=counts,
        sha256="",
        size=0,
    )
    result = ExportResult(manifest, "", 0, format=fmt)
    with store.context(actor, keys, source=source) as ctx:
        record(ctx, plan, result)
    return result


def write_bundle_portable(
    content: dict[str, Any],
    fmt: str,
    out: BinaryIO,
    *,
    passphrase: str | None = None,
    keyfile: bytes | None = None,
) -> int:
    """A decrypted bundle's secrets in another tool's format (``custody takeover convert``):
    what :func:`export_portable` writes from the vault, written from the bundle alone, with
    no vault, passphrase or server - the client moving into KeePass with only its own key.
    Returns the number of entries written."""
    writer = _format_writer(fmt)
    records = content.get("secrets")
    if not isinstance(records, list):
        raise InvalidInput("the bundle holds no list of secrets", field="bundle")
    items = [_bundle_item(index, record) for index, record in enumerate(records)]
    count: int = writer(fmt, items, out, passphrase=passphrase, keyfile=keyfile)
    return count


def _bundle_item(index: int, record: Any) -> PortableItem:
    """One secret record of a bundle (its times as RFC 3339 text) as a PortableItem."""
    try:
        history = [
            {**v, "created_at": _bundle_time(v["created_at"])} for v in record.get("history") or []
        ]
        return portable_item(
            {
                **record,
                "created_at": _bundle_time(record["created_at"]),
                "updated_at": _bundle_time(record["updated_at"]),
                "history": history,
            }
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        # the record's own text is not quoted: it may hold a value
        raise InvalidInput(
            f"secret {index + 1} of the bundle is not a custody-export/v1 record", field="bundle"
        ) from None


def _bundle_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _format_writer(fmt: str) -> Callable[..., Any]:
    """A writer of ``fmt`` to a binary stream: :func:`vault.formats.writers.write` writes a
    private file (pykeepass saves to a path), which is then copied into the stream; a key file
    given as bytes is handed over the same way. The temporary directory is private and gone
    when the export ends. Any format but kdbx, bitwarden-json and csv is refused."""
    if fmt not in FORMATS or fmt == "age-json":
        raise InvalidInput(f"format must be one of {', '.join(FORMATS[1:])}", field="format")
    try:
        from vault.formats import writers  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        raise InvalidInput(
            f"the {fmt} format is not available in this build of Custody (no format writers)",
            field="format",
        ) from None

    def write_to_stream(
        fmt: str,
        items: Iterable[PortableItem],
        out: BinaryIO,
        *,
        passphrase: str | None = None,
        keyfile: bytes | None = None,
    ) -> int:
        with tempfile.TemporaryDirectory(prefix="custody-export-") as tmp:
            target = Path(tmp) / f"export.{fmt}"
            key_path: Path | None = None
            if keyfile is not None:
                key_path = Path(tmp) / "key"
                fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(keyfile)
            count: int = writers.write(
                fmt, list(items), target, passphrase=passphrase, keyfile=key_path
            )
            with target.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
        return count

    return write_to_stream


# --- offline: from a database copy and the client's identity ----------------------------------


def write_offline(
    engine: Engine,
    client_name: str,
    identities: Sequence[age.Identity],
    out: BinaryIO,
    *,
    history: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """The same bundle from a database copy (see :mod:`vault.services.recovery`): the client key
    is unwrapped with the client's own identity, so no vault passphrase and no server are
    needed. The vault's log key stays sealed, so the manifest is unsigned and says
    ``mode offline``; the log checkpoint is the latest one the copy holds (signed as it was)."""
    with Session(engine) as session:
        client, cipher = open_client(session, client_name, identities)
        latest = auditlog.latest_checkpoint(session)
        plan = ExportPlan(
            client_id=client.id,
            client_name=client.name,
            vault_id=load_meta(session).vault_id,
            mode="offline",
            checkpoint_note=latest.note if latest is not None else None,
            verifier_key=_verifier_key(session),
        )
        if not client.recipients:
            raise Conflict(
                f"client {client.name!r} has no escrow recipient in that database", field="client"
            )
        manifest, size = write_bundle(
            session, client, cipher, plan, out, history=history, progress=progress, now=now
        )
    return ExportResult(manifest, manifest.to_text(), size)


def _verifier_key(session: Session) -> str | None:
    try:
        return auditlog.verifier_key(session)
    except LogError:
        return None


# --- the bundle ---------------------------------------------------------------------------------


class _Counter:
    """Counts the bytes of the age file on their way to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.size = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.size += len(data)
        return len(data)


class _Content:
    """The plaintext on its way into the age writer: hashed, counted, written in large pieces."""

    def __init__(self, sink: age.Encryptor) -> None:
        self._sink = sink
        self._parts: list[bytes] = []
        self._pending = 0
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._pending += len(data)
        if self._pending >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        self._pending = 0
        self.sha256.update(data)
        self.size += len(data)
        self._sink.write(data)


def write_bundle(
    session: Session,
    client: Client,
    cipher: FieldCipher,
    plan: ExportPlan,
    out: BinaryIO,
    *,
    history: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> tuple[Manifest, int]:
    """Write the age file (content encrypted to the client's recipients) to ``out``; return its
    (unsigned) manifest and the number of bytes written."""
    recipients = [age.parse_recipient(r.recipient) for r in client.recipients]
    if not recipients:
        raise Conflict(f"client {client.name!r} has no escrow recipient", field="recipients")
    created = _timestamp(now or datetime.now(UTC))
    counter = _Counter(out)
    with age.encrypt_to(counter, recipients) as encryptor:  # type: ignore[arg-type]
        content = _Content(encryptor)
        counts = _write_content(
            content, session, client, cipher, plan, created, history=history, progress=progress
        )
        content.flush()
    checkpoint = _parse_checkpoint(plan.checkpoint_note)
    manifest = Manifest(
        client_name=client.name,
        client_id=client.id,
        created=created,
        mode=plan.mode,
        history=history,
        counts=counts,
        sha256=content.sha256.hexdigest(),
        size=content.size,
        checkpoint_size=checkpoint.size if checkpoint else None,
        checkpoint_root=base64.b64encode(checkpoint.root).decode("ascii") if checkpoint else None,
    )
    return manifest, counter.size


def _parse_checkpoint(note: str | None) -> Checkpoint | None:
    if note is None:
        return None
    text = note[: note.rfind("\n\n") + 1]
    return Checkpoint.parse(text)


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_JSON_OPTIONS)


def _write_content(
    out: _Content,
    session: Session,
    client: Client,
    cipher: FieldCipher,
    plan: ExportPlan,
    created: str,
    *,
    history: bool,
    progress: Progress | None,
) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    contacts = [
        {"name": c.name, "email": c.email, "phone": c.phone, "role": c.role}
        for c in sorted(client.contacts, key=lambda c: (c.name, c.id))
    ]
    counts["contacts"] = len(contacts)
    head = {
        "format": FORMAT,
        "created_at": created,
        "mode": plan.mode,
        "history": history,
        "vault_id": plan.vault_id,
        "client": {
            "id": client.id,
            "name": client.name,
            "created_at": client.created_at,
            "notice_days": client.notice_days,
            "owned_by_client_since": client.owned_at,
            "contacts": contacts,
        },
    }
    out.write(_dumps(head)[:-1])  # the document stays open: more keys follow
    recipients = [
        {"recipient": r.recipient, "kind": r.kind, "label": r.label, "added_at": r.added_at}
        for r in sorted(client.recipients, key=lambda r: (r.added_at, r.id))
    ]
    counts["recipients"] = len(recipients)
    out.write(b',\n"recipients":' + _dumps(recipients))

    names = _inventory_names(session, client)
    for kind, model, key in (
        ("vendor", Vendor, "vendors"),
        ("domain", Domain, "domains"),
        ("asset", Asset, "assets"),
    ):
        out.write(b',\n"' + key.encode() + b'":[')
        rows = session.scalars(
            select(model)
            .where(model.client_id == client.id)
            .order_by(model.name_key, model.id)
            .execution_options(yield_per=BATCH)
        )
        for n, row in enumerate(rows):
            out.write(b"\n" if n == 0 else b",\n")
            out.write(_dumps(_inventory_record(kind, row, cipher, client, names["vendor"])))
            counts[key] += 1
        out.write(b"\n]")

    out.write(b',\n"secrets":[')
    total = _count_secrets(session, client)
    records = iter_secret_records(session, client, cipher, history=history, names=names)
    for done, record in enumerate(records, start=1):
        out.write(b"\n" if done == 1 else b",\n")
        out.write(_dumps(record))
        counts["secrets"] += 1
        counts["versions"] += len(record["history"]) if history else 1
        counts["links"] += len(record["links"])
        if progress is not None and (done % BATCH == 0 or done == total):
            progress(done, total)
    out.write(b"\n]")
    log = {"checkpoint": plan.checkpoint_note, "verifier_key": plan.verifier_key}
    out.write(b',\n"log":' + _dumps(log) + b"\n}\n")
    return counts


def _count_secrets(session: Session, client: Client) -> int:
    total = session.scalar(
        select(func.count()).select_from(Secret).where(Secret.client_id == client.id)
    )
    return int(total or 0)


def _inventory_names(session: Session, client: Client) -> dict[str, dict[str, str]]:
    """id -> name of the client's vendors, domains and assets (for references and links)."""
    names: dict[str, dict[str, str]] = {}
    for kind, model in (("vendor", Vendor), ("domain", Domain), ("asset", Asset)):
        names[kind] = {
            row_id: name
            for row_id, name in session.execute(
                select(model.id, model.name).where(model.client_id == client.id)
            )
        }
    return names


def _inventory_record(
    kind: str, row: Any, cipher: FieldCipher, client: Client, vendors: dict[str, str]
) -> dict[str, Any]:
    private = None
    if row.private_ct is not None:
        where = FieldLocation(client.id, kind, row.id, "private", row.revision)
        private = orjson.loads(cipher.open(row.private_ct, where))
    data = describe_record(kind, row, lambda vendor_id: vendors.get(vendor_id or ""), private)
    data["created_at"] = row.created_at
    return data


_SECRET_COLUMNS = (
    Secret.id,
    Secret.title,
    Secret.title_key,
    Secret.kind,
    Secret.url,
    Secret.tags,
    Secret.current_version,
    Secret.exclusive,
    Secret.sensitive,
    Secret.rotate_after_use,
    Secret.needs_rotation,
    Secret.created_at,
    Secret.updated_at,
)


def iter_secret_records(
    session: Session,
    client: Client,
    cipher: FieldCipher,
    *,
    history: bool = False,
    names: dict[str, dict[str, str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Each secret of ``client`` as its export record (docs/export-format.md), by title.

    Pages of :data:`BATCH` secrets: one query for the page (keyset on the title key, so a page
    costs the same at the end as at the start), one for its versions, one for its links."""
    names = names if names is not None else _inventory_names(session, client)
    conn = session.connection()  # Core rows: these are plain columns, no ORM objects
    after: tuple[str, str] | None = None
    while True:
        query = select(*_SECRET_COLUMNS).where(Secret.client_id == client.id)
        if after is not None:
            query = query.where(
                or_(
                    Secret.title_key > after[0],
                    and_(Secret.title_key == after[0], Secret.id > after[1]),
                )
            )
        page = conn.execute(query.order_by(Secret.title_key, Secret.id).limit(BATCH)).all()
        if not page:
            return
        after = (page[-1].title_key, page[-1].id)
        ids = [row.id for row in page]
        versions = _versions(conn, ids, current_only=not history)
        links = _links(conn, ids, names)
        for row in page:
            where = RecordLocation(client.id, "secret", row.id)
            opened = [_open_version(cipher, where, v) for v in versions.get(row.id, ())]
            current = next((v for v in opened if v["version"] == row.current_version), None)
            record: dict[str, Any] = {
                "id": row.id,
                "title": row.title,
                "kind": row.kind,
                "url": row.url,
                "tags": list(row.tags or []),
                "version": row.current_version,
                "username": current["username"] if current else None,
                "value": current["value"] if current else None,
                "notes": current["notes"] if current else None,
                "exclusive": bool(row.exclusive),
                "sensitive": bool(row.sensitive),
                "rotate_after_use": bool(row.rotate_after_use),
                "needs_rotation": bool(row.needs_rotation),
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "links": links.get(row.id, []),
            }
            if history:
                record["history"] = opened
            yield record


def _versions(conn: Connection, ids: list[str], *, current_only: bool) -> dict[str, list[Any]]:
    query = (
        select(
            SecretVersion.secret_id,
            SecretVersion.version,
            SecretVersion.value_ct,
            SecretVersion.username_ct,
            SecretVersion.notes_ct,
            SecretVersion.created_at,
            SecretVersion.created_by,
        )
        .where(SecretVersion.secret_id.in_(ids))
        .order_by(SecretVersion.secret_id, SecretVersion.version)
    )
    if current_only:
        query = query.join(Secret, Secret.id == SecretVersion.secret_id).where(
            SecretVersion.version == Secret.current_version
        )
    found: dict[str, list[Any]] = {}
    for row in conn.execute(query):
        found.setdefault(row.secret_id, []).append(row)
    return found


def _open_version(cipher: FieldCipher, where: RecordLocation, row: Any) -> dict[str, Any]:
    version = row.version

    def open_(name: str, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        return cipher.open_in(blob, where, name, version).decode("utf-8")

    return {
        "version": version,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "username": open_("username", row.username_ct),
        "value": open_("value", row.value_ct),
        "notes": open_("notes", row.notes_ct),
    }


def _links(
    conn: Connection, ids: list[str], names: dict[str, dict[str, str]]
) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for link in conn.execute(
        select(
            SecretLink.secret_id, SecretLink.vendor_id, SecretLink.domain_id, SecretLink.asset_id
        ).where(SecretLink.secret_id.in_(ids))
    ):
        if link.vendor_id:
            kind, target = "vendor", link.vendor_id
        elif link.domain_id:
            kind, target = "domain", link.domain_id
        else:
            kind, target = "asset", link.asset_id or ""
        found.setdefault(link.secret_id, []).append(
            {"kind": kind, "id": target, "name": names[kind].get(target, "?")}
        )
    for items in found.values():
        items.sort(key=lambda x: (x["kind"], x["name"]))
    return found


# --- other tools' formats -------------------------------------------------------------------------


def iter_portable_items(
    session: Session, client: Client, cipher: FieldCipher, *, history: bool = False
) -> Iterator[PortableItem]:
    """The client's secrets as :class:`PortableItem` values for the format writers, by title.

    A secret that opens a vendor account sits in the group ("Vendors", <vendor>); any other in
    a group named after its kind ("Logins", "TOTP" ...). Links give the vendor, domains and
    assets it opens."""
    for record in iter_secret_records(session, client, cipher, history=history):
        yield portable_item(record)


def portable_item(record: dict[str, Any]) -> PortableItem:
    """One export record (see :func:`iter_secret_records`) as a :class:`PortableItem`."""
    links: list[dict[str, str]] = record["links"]
    vendors = [link["name"] for link in links if link["kind"] == "vendor"]
    vendor = vendors[0] if vendors else None
    group = ("Vendors", vendor) if vendor else (KIND_GROUPS.get(record["kind"], "Other"),)
    older = [v for v in record.get("history") or [] if v["version"] != record["version"]]
    return PortableItem(
        title=record["title"],
        kind=record["kind"],
        username=record["username"],
        value=record["value"] or "",
        url=record["url"],
        notes=record["notes"],
        tags=tuple(record["tags"]),
        group=group,
        vendor=vendor,
        domains=tuple(link["name"] for link in links if link["kind"] == "domain"),
        assets=tuple(link["name"] for link in links if link["kind"] == "asset"),
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        history=tuple(
            PortableVersion(value=v["value"] or "", created_at=v["created_at"]) for v in older
        ),
    )
