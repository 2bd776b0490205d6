"""Import a client's records from another tool's file (the items the readers in
``vault.formats`` produce): plan first, then write in batches.

:func:`plan_import` decides, for every item, what an import would do and why, without writing:

- ``create``: a new secret (with its earlier versions and its links);
- ``present``: skipped, an identical secret is already there: same title, or same username,
  URL and value under another title (titles, usernames and URLs compare case-insensitively;
  values exactly) - this is what makes importing the same file twice create nothing;
- ``skip``: not imported, with the reason (invalid value, a different secret has that title,
  the title is given twice in the file).

Links: an item's explicit ``vendor``/``domains``/``assets`` (files written by Custody, CSV
columns) are matched by name or created. Without them, a URL's registrable host (last two
labels) links to the client's domain of that name if there is one, else to the vendor with that
name or website host, else to a new vendor named after the host. Records with no secret
(IT Glue domains and configurations, Hudu assets and websites) are matched or created.

:func:`run_import` writes the ``create`` items, ``batch_size`` per transaction: each batch writes
whole records only (a secret with all its versions and links, or nothing). At the end it
records **one** audit event, ``secret.import``, with the counts (no titles, no values) - the
per-record events of the bulk paths are folded into it. If a batch fails, the batches before it
stay, the event says ``outcome: error`` with the counts so far, and the error is raised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, select

from vault.crypto.fields import FieldLocation
from vault.db.models import (
    Asset,
    Client,
    Domain,
    Secret,
    SecretLink,
    SecretVersion,
    Vendor,
    new_id,
    utcnow,
)
from vault.errors import Conflict, CustodyError, InvalidInput
from vault.formats.common import host_of, registrable
from vault.formats.items import PortableItem, PortableRecord
from vault.keys import KeyRing
from vault.services import Context, Principal, audit, inventory
from vault.services import secrets as secrets_service
from vault.services.clients import get_client
from vault.services.secrets import NewSecret, reveal_version
from vault.services.validation import (
    MAX_TITLE,
    choice,
    clean_name,
    name_key,
    optional_text,
)

DEFAULT_BATCH = 500
SOURCES = ("bitwarden", "keepass", "pass", "csv")
_MODELS: dict[str, Any] = {"vendor": Vendor, "domain": Domain, "asset": Asset}


@dataclass
class PlannedItem:
    """What the import does with one item. ``reason`` never holds a value."""

    item: PortableItem = field(repr=False)
    action: str  # create | present | skip
    reason: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.item.origin,
            "title": self.item.title,
            "kind": self.item.kind,
            "action": self.action,
            "reason": self.reason,
            "links": [{"kind": k, "name": n} for k, n in self.links],
        }


@dataclass
class PlannedRecord:
    kind: str
    name: str
    action: str  # create | match
    fields: dict[str, str] = field(default_factory=dict)
    origin: str = ""


@dataclass
class ImportPlan:
    client: str
    client_id: str
    entries: list[PlannedItem] = field(default_factory=list)
    records: dict[tuple[str, str], PlannedRecord] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"entries": len(self.entries), "create": 0, "present": 0, "skip": 0}
        for entry in self.entries:
            out[entry.action] += 1
        for kind in ("vendor", "domain", "asset"):
            for action in ("create", "match"):
                out[f"{kind}s_{action}"] = sum(
                    1 for r in self.records.values() if r.kind == kind and r.action == action
                )
        out["links"] = sum(len(e.links) for e in self.entries if e.action == "create")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "counts": self.counts(),
            "entries": [e.as_dict() for e in self.entries],
            "records": [
                {"kind": r.kind, "name": r.name, "action": r.action, "origin": r.origin}
                for r in self.records.values()
            ],
        }


def _fold(text: str | None) -> str:
    return (text or "").strip().casefold()


def _fingerprint(kind: str, username: str | None, url: str | None, value: str) -> str:
    digest = hashlib.sha256()
    if kind == "totp":  # a base32 seed and the otpauth:// URI around it are the same secret
        try:
            key, digits, period, algorithm = secrets_service.parse_totp_seed(value)
            value = f"{key.hex()}/{digits}/{period}/{algorithm.name}"
        except InvalidInput:
            pass
    for part in (kind, _fold(username), _fold(url), value):
        digest.update(part.encode("utf-8") + b"\x00")
    return digest.hexdigest()


def _new_secret(item: PortableItem) -> NewSecret:
    return NewSecret(
        title=item.title,
        value=item.value,
        kind=item.kind,
        username=item.username,
        url=item.url,
        notes=item.notes,
        tags=list(item.tags),
    )


def plan_import(
    ctx: Context,
    client_name: str,
    items: Sequence[PortableItem],
    records: Sequence[PortableRecord] = (),
) -> ImportPlan:
    """What importing ``items`` (and ``records``) into the client would do; writes nothing."""
    ctx.require("admin")
    client = get_client(ctx, client_name)
    plan = ImportPlan(client=client.name, client_id=client.id)
    by_title, by_identity = _existing_secrets(ctx, client)
    known = _existing_records(ctx, client)
    websites = {
        registrable(host_of(website)): name
        for website, name in ctx.session.execute(
            select(Vendor.website, Vendor.name).where(
                Vendor.client_id == client.id, Vendor.website.is_not(None)
            )
        )
    }

    def record(kind: str, name: str, origin: str, fields: dict[str, str] | None = None) -> str:
        key = (kind, name_key(name))
        if key not in plan.records:
            found = known.get(key)
            plan.records[key] = PlannedRecord(
                kind,
                found or name,
                "match" if found else "create",
                dict(fields or {}),
                origin,
            )
            if kind == "domain" and fields and fields.get("registrar"):
                record("vendor", fields["registrar"], origin, {"category": "registrar"})
            if kind == "asset" and fields and fields.get("managing_vendor"):
                record("vendor", fields["managing_vendor"], origin, {"category": "support"})
        return plan.records[key].name

    for rec in records:
        if rec.kind in _MODELS and rec.name.strip():
            record(rec.kind, rec.name.strip(), rec.origin, dict(rec.fields))

    seen: dict[str, str] = {}
    for item in items:
        try:
            cleaned = secrets_service._validate_new(_new_secret(item))
        except InvalidInput as exc:
            plan.entries.append(PlannedItem(item, "skip", f"invalid: {exc.message}"))
            continue
        item = replace(
            item,
            title=cleaned.title,
            username=cleaned.username,
            url=cleaned.url,
            notes=cleaned.notes,
            kind=cleaned.kind,
            tags=tuple(cleaned.tags or ()),
        )
        key = name_key(item.title)
        fingerprint = _fingerprint(item.kind, item.username, item.url, item.value)
        identity = _fingerprint("", item.username, item.url, item.value)
        if key in seen:
            if seen[key] == fingerprint:
                plan.entries.append(PlannedItem(item, "present", "given twice in the file"))
            else:
                plan.entries.append(
                    PlannedItem(item, "skip", "the title is given twice in the file")
                )
            continue
        seen[key] = fingerprint
        if key in by_title:
            if by_title[key] == fingerprint:
                plan.entries.append(PlannedItem(item, "present", "already present"))
            else:
                plan.entries.append(
                    PlannedItem(item, "skip", "a different secret already has this title")
                )
            continue
        if item.value and identity in by_identity:
            plan.entries.append(
                PlannedItem(item, "present", f"already present as {by_identity[identity]!r}")
            )
            continue
        links: list[tuple[str, str]] = []
        if item.vendor or item.domains or item.assets:
            if item.vendor:
                links.append(("vendor", record("vendor", item.vendor, item.origin)))
            links += [("domain", record("domain", d, item.origin)) for d in item.domains]
            links += [("asset", record("asset", a, item.origin)) for a in item.assets]
        else:
            host = registrable(host_of(item.url))
            if host:
                if ("domain", name_key(host)) in known or (
                    "domain",
                    name_key(host),
                ) in plan.records:
                    links.append(("domain", record("domain", host, item.origin)))
                elif host in websites:
                    links.append(("vendor", record("vendor", websites[host], item.origin)))
                else:
                    links.append(
                        (
                            "vendor",
                            record(
                                "vendor",
                                host,
                                item.origin,
                                {"website": f"https://{host_of(item.url)}"},
                            ),
                        )
                    )
        unique = list(dict.fromkeys((k, name_key(n)) for k, n in links))
        named = {(k, name_key(n)): n for k, n in links}
        plan.entries.append(
            PlannedItem(item, "create", "", [(k, named[(k, n)]) for k, n in unique])
        )
    return plan


def _existing_secrets(ctx: Context, client: Client) -> tuple[dict[str, str], dict[str, str]]:
    """Fingerprints of the client's current secrets: by title key, and by (username, url,
    value). Values are opened in memory to compare and never leave this function."""
    rows = ctx.session.execute(
        select(Secret, SecretVersion)
        .join(
            SecretVersion,
            (SecretVersion.secret_id == Secret.id)
            & (SecretVersion.version == Secret.current_version),
        )
        .where(Secret.client_id == client.id)
    ).all()
    by_title: dict[str, str] = {}
    by_identity: dict[str, str] = {}
    if not rows:
        return by_title, by_identity
    cipher = ctx.keyring().cipher(client)
    for secret, version in rows:
        opened = reveal_version(cipher, client, secret, version)
        by_title[secret.title_key] = _fingerprint(
            secret.kind, opened.username, secret.url, opened.value
        )
        by_identity.setdefault(
            _fingerprint("", opened.username, secret.url, opened.value), secret.title
        )
    return by_title, by_identity


def _existing_records(ctx: Context, client: Client) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for kind, model in _MODELS.items():
        for key, name in ctx.session.execute(
            select(model.name_key, model.name).where(model.client_id == client.id)
        ):
            out[(kind, key)] = name
    return out


# --- writing ---------------------------------------------------------------------------------


@dataclass
class ImportResult:
    plan: ImportPlan
    created: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {**self.plan.counts(), "created": self.created}

    def as_dict(self) -> dict[str, Any]:
        return {**self.plan.as_dict(), "counts": self.counts(), "errors": self.errors}


def _quiet(ctx: Context) -> Context:
    """The same transaction, with the per-record audit events of the bulk services dropped:
    the import records one event of its own with the counts."""
    return replace(ctx, pending_events=[])


def apply_plan(
    ctx: Context,
    plan: ImportPlan,
    entries: Sequence[PlannedItem],
    records: Sequence[PlannedRecord],
    ids: dict[tuple[str, str], str],
) -> int:
    """Write ``records`` and the ``entries`` to create, in the caller's transaction."""
    quiet = _quiet(ctx)
    _insert_vendors(ctx, plan, [r for r in records if r.kind == "vendor"], ids)
    for rec in records:
        key = (rec.kind, name_key(rec.name))
        if key in ids:
            continue
        model = _MODELS[rec.kind]
        found = ctx.session.scalars(
            select(model.id).where(model.client_id == plan.client_id, model.name_key == key[1])
        ).first()
        if found is not None:
            ids[key] = found
            continue
        values: dict[str, Any] = {"name": rec.name}
        allowed = {
            "vendor": ("category", "website"),
            "domain": ("registrar", "expires_on", "registrant"),
            "asset": ("kind", "serial", "address", "location", "managing_vendor"),
        }[rec.kind]
        values.update({k: v for k, v in rec.fields.items() if k in allowed and v})
        try:
            made = inventory.add_record(quiet, rec.kind, plan.client_id, **values)
        except InvalidInput:  # a field it cannot take (a bad date, say): the record without it
            try:
                made = inventory.add_record(quiet, rec.kind, plan.client_id, name=rec.name)
            except InvalidInput:
                continue  # an unusable name: no record, and no links to it
        ids[key] = made.row.id
    todo = [e for e in entries if e.action == "create"]
    if not todo:
        return 0
    added = _insert_secrets(ctx, plan, [e.item for e in todo])
    links: list[dict[str, Any]] = []
    for secret_id, entry in zip(added, todo, strict=True):
        for kind, name in entry.links:
            target = ids.get((kind, name_key(name)))
            if target is not None:
                links.append({"id": new_id(), "secret_id": secret_id, f"{kind}_id": target})
    for kind in ("vendor", "domain", "asset"):
        rows = [
            {"vendor_id": None, "domain_id": None, "asset_id": None, **link}
            for link in links
            if f"{kind}_id" in link
        ]
        if rows:
            ctx.session.connection().execute(insert(_table(SecretLink)), rows)
    return len(added)


def _insert_vendors(
    ctx: Context,
    plan: ImportPlan,
    records: Sequence[PlannedRecord],
    ids: dict[tuple[str, str], str],
) -> None:
    """Vendors named by URL hosts can be hundreds: match them in one query and insert the new
    ones as plain rows (validated as ``inventory.add_record`` would; no private fields)."""
    wanted = {name_key(r.name): r for r in records if ("vendor", name_key(r.name)) not in ids}
    if not wanted:
        return
    keys = list(wanted)
    for start in range(0, len(keys), 500):
        for vid, key in ctx.session.execute(
            select(Vendor.id, Vendor.name_key).where(
                Vendor.client_id == plan.client_id, Vendor.name_key.in_(keys[start : start + 500])
            )
        ):
            ids[("vendor", key)] = vid
            wanted.pop(key, None)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for key, rec in wanted.items():
        try:
            name = clean_name(rec.name, "name", max_length=MAX_TITLE)
            category = choice(
                rec.fields.get("category"), "category", inventory.VENDOR_CATEGORIES, "other"
            )
            website = optional_text(rec.fields.get("website"), "website")
        except InvalidInput:
            continue  # an unusable name: no vendor, and no links to it
        vid = new_id()
        rows.append(
            {
                "id": vid,
                "client_id": plan.client_id,
                "name": name,
                "name_key": name_key(name),
                "owner_kind": "unknown",
                "revision": 1,
                "category": category,
                "website": website,
                "support_contacts": [],
                "twofa_location": "unknown",
                "created_at": now,
                "updated_at": now,
            }
        )
        ids[("vendor", key)] = vid
    if rows:
        ctx.session.connection().execute(insert(_table(Vendor)), rows)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _insert_secrets(ctx: Context, plan: ImportPlan, items: Sequence[PortableItem]) -> list[str]:
    """Insert the planned secrets, each with all its versions (earlier values first), as plain
    rows in two batched INSERTs; returns their ids.

    This is :func:`vault.services.secrets.add_secrets` without its per-secret audit events and
    ORM objects (a third of an import's time): :func:`plan_import` already validated every item
    the same way (``_validate_new``), and the titles are checked again here, inside the batch's
    transaction, so a secret added since the plan makes the batch fail rather than collide."""
    client = get_client(ctx, plan.client_id)
    keys = [name_key(item.title) for item in items]
    for start in range(0, len(keys), 500):
        taken = ctx.session.scalars(
            select(Secret.title).where(
                Secret.client_id == client.id, Secret.title_key.in_(keys[start : start + 500])
            )
        ).first()
        if taken is not None:
            raise Conflict(f"client {client.name!r} already has a secret titled {taken!r}")
    cipher = ctx.sealing_cipher(client)
    now = utcnow()
    secret_rows: list[dict[str, Any]] = []
    version_rows: list[dict[str, Any]] = []
    for item, key in zip(items, keys, strict=True):
        sid = new_id()
        values = [old.value for old in item.history] + [item.value]
        secret_rows.append(
            {
                "id": sid,
                "client_id": client.id,
                "title": item.title,
                "title_key": key,
                "kind": item.kind,
                "url": item.url,
                "tags": list(item.tags),
                "current_version": len(values),
                "exclusive": False,
                "sensitive": False,
                "rotate_after_use": False,
                "needs_rotation": False,
                "created_at": now,
                "updated_at": now,
            }
        )
        for number, value in enumerate(values, start=1):

            def seal(
                name: str, text: str | None, number: int = number, sid: str = sid
            ) -> bytes | None:
                if text is None:
                    return None
                return cipher.seal_text(text, FieldLocation(client.id, "secret", sid, name, number))

            version_rows.append(
                {
                    "id": new_id(),
                    "secret_id": sid,
                    "version": number,
                    "created_at": now,
                    "created_by": ctx.actor,
                    "value_ct": seal("value", value),
                    "username_ct": seal("username", item.username),
                    "notes_ct": seal("notes", item.notes),
                }
            )
    # Core INSERTs on the session's connection: plain executemany, no ORM bookkeeping.
    connection = ctx.session.connection()
    connection.execute(insert(_table(Secret)), secret_rows)
    connection.execute(insert(_table(SecretVersion)), version_rows)
    return [row["id"] for row in secret_rows]


def run_import(
    open_context: Callable[[], Any],
    client_name: str,
    items: Sequence[PortableItem],
    records: Sequence[PortableRecord] = (),
    *,
    source: str = "",
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Plan, then write in batches of ``batch_size`` entries, each in a transaction of its own
    opened by ``open_context()`` (a context manager yielding a :class:`Context`, e.g.
    ``lambda: store.context(actor, keys)``). Records one ``secret.import`` audit event."""
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1", field="batch_size")
    with open_context() as ctx:
        plan = plan_import(ctx, client_name, items, records)
    result = ImportResult(plan=plan)
    todo = [e for e in plan.entries if e.action == "create"]
    pending_records = list(plan.records.values())
    ids: dict[tuple[str, str], str] = {}
    total = len(todo)
    if progress:
        progress(0, total)
    failure: CustodyError | None = None
    for start in range(0, max(total, 1), batch_size):
        chunk = todo[start : start + batch_size]
        wanted = {(k, name_key(n)) for e in chunk for k, n in e.links}
        batch_records = [
            r for r in pending_records if start == 0 or (r.kind, name_key(r.name)) in wanted
        ]
        known_before = dict(ids)
        try:
            with open_context() as ctx:
                result.created += apply_plan(ctx, plan, chunk, batch_records, ids)
                last = start + batch_size >= total
                if last:
                    _record_event(ctx, plan, result, source, "ok")
        except CustodyError as exc:
            ids.clear()
            ids.update(known_before)  # records made in the failed batch were rolled back
            result.errors.append(f"entries {start + 1}-{start + len(chunk)}: {exc.message}")
            failure = exc
            break
        result.batches += 1
        if progress:
            progress(min(start + batch_size, total), total)
    if failure is not None:
        with open_context() as ctx:
            _record_event(ctx, plan, result, source, "error")
        raise failure
    return result


def import_file(
    store: Any,
    keys: KeyRing,
    actor: str | Principal,
    client_name: str,
    source: str,
    path: Path,
    *,
    dry_run: bool = False,
    passphrase: str | None = None,
    keyfile: Path | None = None,
    mapping: Path | None = None,
    preset: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Read ``path`` as ``source`` and plan (``dry_run``) or run its import into the client as
    ``actor`` on ``store`` (a :class:`vault.store.Store`) with the unsealed ``keys``: for the
    CLI on a local store and for the running vault's agent alike. A dry run reads in a
    read-only transaction (it holds up no writer); the import writes in batches
    (:func:`run_import`). Answers the report (:meth:`ImportResult.as_dict`) - never a value."""
    from vault.formats.readers import read_source

    items, records = read_source(
        source, path, passphrase=passphrase, keyfile=keyfile, mapping=mapping, preset=preset
    )
    if dry_run:
        with store.read_context(actor, keys) as ctx:
            return plan_import(ctx, client_name, items, records).as_dict()
    result = run_import(
        lambda: store.context(actor, keys),
        client_name,
        items,
        records,
        source=source,
        batch_size=batch_size,
        progress=progress,
    )
    return result.as_dict()


def _record_event(
    ctx: Context, plan: ImportPlan, result: ImportResult, source: str, outcome: str
) -> None:
    audit.record(
        ctx,
        "secret.import",
        client_id=plan.client_id,
        subject_kind="client",
        subject_id=plan.client_id,
        outcome=outcome,
        source_format=source,
        **result.counts(),
    )
