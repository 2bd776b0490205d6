"""Vendors, domains and assets: the things a client's IT is made of, and who holds them.

All three share one shape: searchable plain fields, an *owner of record* (the client, the
consultancy, or a named third party), and a sealed JSON object of sensitive fields (account
numbers, recovery email/phone, notes) versioned by ``revision`` for its associated data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from vault.crypto.fields import FieldLocation
from vault.db.models import OWNER_KINDS, Asset, Client, Domain, Secret, SecretLink, Vendor
from vault.errors import Conflict, InvalidInput, NotFound
from vault.services import Context, audit
from vault.services.clients import get_client
from vault.services.validation import (
    MAX_TITLE,
    choice,
    clean_name,
    name_key,
    optional_text,
    parse_date,
)

VENDOR_CATEGORIES = (
    "registrar",
    "web-host",
    "dns",
    "email",
    "isp",
    "saas",
    "software",
    "telecom",
    "hardware",
    "support",
    "cloud",
    "payment",
    "other",
)
TWOFA_LOCATIONS = ("vault", "client-device", "consultant-device", "vendor-sms", "none", "unknown")
ASSET_KINDS = (
    "router",
    "firewall",
    "switch",
    "access-point",
    "printer",
    "print-server",
    "server",
    "nas",
    "phone-system",
    "ups",
    "workstation",
    "camera",
    "other",
)


@dataclass(frozen=True)
class Kind:
    name: str
    model: Any
    private_fields: tuple[str, ...]


VENDOR = Kind("vendor", Vendor, ("account_number", "recovery_email", "recovery_phone", "notes"))
DOMAIN = Kind("domain", Domain, ("notes",))
ASSET = Kind("asset", Asset, ("notes",))
KINDS = {k.name: k for k in (VENDOR, DOMAIN, ASSET)}


@dataclass
class InventoryRecord:
    """A record with its sensitive fields opened (``private`` is hidden from repr)."""

    kind: str
    row: Any
    private: dict[str, str] = field(repr=False, default_factory=dict)
    created_vendors: list[str] = field(default_factory=list)


def _location(client: Client, kind: Kind, row: Any) -> FieldLocation:
    return FieldLocation(client.id, kind.name, row.id, "private", row.revision)


def _find(ctx: Context, kind: Kind, client: Client, name: str) -> Any:
    row = ctx.session.scalars(
        select(kind.model).where(
            kind.model.client_id == client.id, kind.model.name_key == name_key(name)
        )
    ).first()
    if row is None:
        raise NotFound(f"client {client.name!r} has no {kind.name} named {name!r}", field="name")
    return row


def _owner(values: dict[str, Any], row: Any) -> None:
    if "owner" in values and values["owner"] is not None:
        row.owner_kind = choice(values["owner"], "owner", OWNER_KINDS)
    if "owner_name" in values:
        row.owner_name = optional_text(values["owner_name"], "owner_name", max_length=300)
    if row.owner_kind == "third-party" and not row.owner_name:
        raise InvalidInput(
            "an owner of record that is a third party needs owner_name", field="owner_name"
        )


def _vendor_ref(
    ctx: Context, client: Client, name: str | None, category: str, created: list[str]
) -> str | None:
    """Resolve a vendor by name, creating it (with ``category``) when it is new."""
    if name is None or not name.strip():
        return None
    found = ctx.session.scalars(
        select(Vendor).where(Vendor.client_id == client.id, Vendor.name_key == name_key(name))
    ).first()
    if found is not None:
        return str(found.id)
    record = add_record(ctx, "vendor", client.name, name=name, category=category)
    created.append(record.row.name)
    return str(record.row.id)


def _apply(
    ctx: Context, kind: Kind, client: Client, row: Any, values: dict[str, Any], created: list[str]
) -> None:
    if "name" in values and values["name"] is not None:
        row.name = clean_name(values["name"], "name", max_length=MAX_TITLE)
        row.name_key = name_key(row.name)
    if kind is VENDOR:
        if "category" in values or row.category is None:
            row.category = choice(
                values.get("category"),
                "category",
                VENDOR_CATEGORIES,
                default=row.category or "other",
            )
        if "website" in values:
            row.website = optional_text(values["website"], "website")
        if "renewal_date" in values:
            row.renewal_date = parse_date(values["renewal_date"], "renewal_date")
        if "twofa_location" in values or row.twofa_location is None:
            row.twofa_location = choice(
                values.get("twofa_location"),
                "twofa_location",
                TWOFA_LOCATIONS,
                default=row.twofa_location or "unknown",
            )
        if "support_contacts" in values:
            row.support_contacts = _contacts(values["support_contacts"])
    elif kind is DOMAIN:
        if "registrar" in values:
            row.registrar_id = _vendor_ref(ctx, client, values["registrar"], "registrar", created)
        if "dns_host" in values:
            row.dns_host_id = _vendor_ref(ctx, client, values["dns_host"], "dns", created)
        if "registrant" in values:
            row.registrant = optional_text(values["registrant"], "registrant", max_length=300)
        if "expires_on" in values:
            row.expires_on = parse_date(values["expires_on"], "expires_on")
    else:
        if "kind" in values or row.kind is None:
            row.kind = choice(values.get("kind"), "kind", ASSET_KINDS, default=row.kind or "other")
        for name, limit in (("location", 300), ("serial", 200), ("address", 300)):
            if name in values:
                setattr(row, name, optional_text(values[name], name, max_length=limit))
        if "managing_vendor" in values:
            row.managing_vendor_id = _vendor_ref(
                ctx, client, values["managing_vendor"], "support", created
            )
    _owner(values, row)


def _contacts(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("support_contacts must be a list", field="support_contacts")
    out = []
    for item in value:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise InvalidInput(
                "each support contact is a name or an object", field="support_contacts"
            )
        out.append(
            {
                k: str(v)[:300]
                for k, v in item.items()
                if k in ("name", "email", "phone", "hours", "notes") and v
            }
        )
    return out


def _private_values(kind: Kind, values: dict[str, Any], old: dict[str, str]) -> dict[str, str]:
    merged = dict(old)
    for name in kind.private_fields:
        if name in values:
            text = optional_text(values[name], name)
            if text is None:
                merged.pop(name, None)
            else:
                merged[name] = text
    return merged


def _open_private(ctx: Context, kind: Kind, client: Client, row: Any) -> dict[str, str]:
    if row.private_ct is None:
        return {}
    cipher = ctx.keyring().cipher(client)
    data: dict[str, str] = json.loads(cipher.open(row.private_ct, _location(client, kind, row)))
    return data


def _seal_private(
    ctx: Context, kind: Kind, client: Client, row: Any, private: dict[str, str]
) -> None:
    if not private:
        row.private_ct = None
        return
    cipher = ctx.sealing_cipher(client)
    payload = json.dumps(private, sort_keys=True, ensure_ascii=False).encode("utf-8")
    row.private_ct = cipher.seal(payload, _location(client, kind, row))


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise InvalidInput(f"record kind must be one of {', '.join(KINDS)}", field="kind") from None


def add_record(ctx: Context, kind_name: str, client_name: str, **values: Any) -> InventoryRecord:
    ctx.require("admin", "consultant")
    kind = _kind(kind_name)
    client = get_client(ctx, client_name)
    name = clean_name(values.get("name"), "name", max_length=MAX_TITLE)
    if ctx.session.scalars(
        select(kind.model.id).where(
            kind.model.client_id == client.id, kind.model.name_key == name_key(name)
        )
    ).first():
        raise Conflict(
            f"client {client.name!r} already has a {kind.name} named {name!r}", field="name"
        )
    row = kind.model(
        client_id=client.id, name=name, name_key=name_key(name), revision=1, owner_kind="unknown"
    )
    created: list[str] = []
    _apply(ctx, kind, client, row, values, created)
    ctx.session.add(row)
    ctx.session.flush()
    private = _private_values(kind, values, {})
    _seal_private(ctx, kind, client, row, private)
    audit.record(
        ctx,
        f"{kind.name}.add",
        client_id=client.id,
        subject_kind=kind.name,
        subject_id=row.id,
        name=row.name,
    )
    return InventoryRecord(kind.name, row, private, created)


def update_record(
    ctx: Context, kind_name: str, client_name: str, name: str, **values: Any
) -> InventoryRecord:
    ctx.require("admin", "consultant")
    kind = _kind(kind_name)
    client = get_client(ctx, client_name)
    row = _find(ctx, kind, client, name)
    if "new_name" in values:
        new_name = clean_name(values.pop("new_name"), "name", max_length=MAX_TITLE)
        if (
            name_key(new_name) != row.name_key
            and ctx.session.scalars(
                select(kind.model.id).where(
                    kind.model.client_id == client.id, kind.model.name_key == name_key(new_name)
                )
            ).first()
        ):
            raise Conflict(
                f"client {client.name!r} already has a {kind.name} named {new_name!r}", field="name"
            )
        values["name"] = new_name
    if not values:
        raise InvalidInput("nothing to update: give at least one field to change")
    created: list[str] = []
    _apply(ctx, kind, client, row, values, created)
    private = _open_private(ctx, kind, client, row)
    if any(f in values for f in kind.private_fields):
        private = _private_values(kind, values, private)
        row.revision += 1
        _seal_private(ctx, kind, client, row, private)
    ctx.session.flush()
    audit.record(
        ctx,
        f"{kind.name}.update",
        client_id=client.id,
        subject_kind=kind.name,
        subject_id=row.id,
        name=row.name,
        fields=sorted(values),
    )
    return InventoryRecord(kind.name, row, private, created)


def list_records(
    ctx: Context, kind_name: str, client_name: str, query: str | None = None
) -> list[Any]:
    ctx.require("admin", "consultant", "client")
    kind = _kind(kind_name)
    client = get_client(ctx, client_name)
    rows = list(
        ctx.session.scalars(
            select(kind.model)
            .where(kind.model.client_id == client.id)
            .order_by(kind.model.name_key)
        )
    )
    if query:
        rows = [r for r in rows if name_key(query) in r.name_key]
    return rows


def show_record(ctx: Context, kind_name: str, client_name: str, name: str) -> InventoryRecord:
    """Open a record with its sensitive fields; the read is recorded."""
    ctx.require("admin", "consultant", "client")
    kind = _kind(kind_name)
    client = get_client(ctx, client_name)
    row = _find(ctx, kind, client, name)
    private = _open_private(ctx, kind, client, row)
    audit.record(
        ctx,
        f"{kind.name}.read",
        client_id=client.id,
        subject_kind=kind.name,
        subject_id=row.id,
        name=row.name,
    )
    return InventoryRecord(kind.name, row, private)


def describe(
    kind: str,
    row: Any,
    vendor_name: Callable[[str | None], str | None],
    private: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A record as plain data (what the API, the CLI and recovery show): its plain fields,
    vendor references by name, and its sealed fields when they were opened."""
    data: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "owner": row.owner_kind,
        "owner_name": row.owner_name,
        "updated_at": row.updated_at,
    }
    if kind == "vendor":
        data.update(
            category=row.category,
            website=row.website,
            renewal_date=row.renewal_date,
            twofa_location=row.twofa_location,
            support_contacts=row.support_contacts,
        )
    elif kind == "domain":
        data.update(
            registrar=vendor_name(row.registrar_id),
            registrant=row.registrant,
            expires_on=row.expires_on,
            dns_host=vendor_name(row.dns_host_id),
        )
    else:
        data.update(
            kind=row.kind,
            location=row.location,
            serial=row.serial,
            address=row.address,
            managing_vendor=vendor_name(row.managing_vendor_id),
        )
    if private:
        data.update(private)
    return data


def vendor_namer(ctx: Context) -> Callable[[str | None], str | None]:
    return lambda vendor_id: vendor_name(ctx, vendor_id)


def vendor_name(ctx: Context, vendor_id: str | None) -> str | None:
    if vendor_id is None:
        return None
    vendor = ctx.session.get(Vendor, vendor_id)
    return vendor.name if vendor else None


def link_secret(
    ctx: Context, client_name: str, title: str, kind_name: str, name: str
) -> SecretLink:
    """Record that a secret opens a vendor account, a domain or an asset."""
    from vault.services.secrets import get_secret_record

    ctx.require("admin", "consultant")
    kind = _kind(kind_name)
    client = get_client(ctx, client_name)
    secret: Secret = get_secret_record(ctx, client, title)
    target = _find(ctx, kind, client, name)
    column = {
        "vendor": SecretLink.vendor_id,
        "domain": SecretLink.domain_id,
        "asset": SecretLink.asset_id,
    }[kind.name]
    if ctx.session.scalars(
        select(SecretLink.id).where(SecretLink.secret_id == secret.id, column == target.id)
    ).first():
        raise Conflict(f"secret {secret.title!r} is already linked to {kind.name} {target.name!r}")
    link = SecretLink(secret_id=secret.id, **{f"{kind.name}_id": target.id})
    ctx.session.add(link)
    ctx.session.flush()
    audit.record(
        ctx,
        "secret.link",
        client_id=client.id,
        subject_kind="secret",
        subject_id=secret.id,
        target_kind=kind.name,
        target_id=target.id,
    )
    return link
