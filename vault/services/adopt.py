"""Adopt a client from its export bundle: the same records, in another (or a new) vault.

The other half of "the client can always leave": the bundle a client takes away
(docs/export-format.md) is enough to set the client up again in any Custody vault - a new
consultancy's, or one the client runs itself - with every record kind as it was: the client
and its contacts and escrow recipients, vendors (with their account numbers and recovery
contacts), domains, assets, every secret with its versions in order, and the links between
them. Ids and timestamps are the new vault's own; the history of who did what stays in the
old vault's log, whose last checkpoint the bundle carries.

Everything goes through the ordinary services (the same validation and sealing as any
write), in the caller's one transaction, and the adoption is one audit event with counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vault.errors import InvalidInput
from vault.formats.bundle import FORMAT
from vault.services import Context, audit, clients, inventory, secrets

_VENDOR_FIELDS = (
    "category",
    "website",
    "renewal_date",
    "twofa_location",
    "support_contacts",
    "account_number",
    "recovery_email",
    "recovery_phone",
)
_DOMAIN_FIELDS = ("registrant", "expires_on")
_ASSET_FIELDS = ("kind", "location", "serial", "address")
_COMMON_FIELDS = ("owner", "owner_name", "notes")


@dataclass(frozen=True)
class Adopted:
    client: str
    client_id: str
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"client": {"name": self.client, "id": self.client_id}, "counts": self.counts}


def _pick(record: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {n: record[n] for n in names if record.get(n) not in (None, "", [])}


def adopt_client(ctx: Context, content: dict[str, Any], *, name: str | None = None) -> Adopted:
    """Create the bundle's client (named ``name``, or as in the bundle) with all its records.

    ``content`` is the decrypted, verified bundle content (``custody-export/v1``). The client
    must not exist yet in this vault (a Conflict, and nothing is written, if it does)."""
    ctx.require("admin")
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise InvalidInput(f"not a {FORMAT} export", field="bundle")
    source = content["client"]
    client_name = name or source["name"]
    recipients = [r["recipient"] for r in content.get("recipients", [])]
    client = clients.add_client(ctx, client_name, recipients=recipients)
    for contact in source.get("contacts", []):
        clients.add_contact(
            ctx,
            client_name,
            contact["name"],
            email=contact.get("email"),
            phone=contact.get("phone"),
            role=contact.get("role"),
        )
    counts = {"contacts": len(source.get("contacts", [])), "recipients": len(recipients)}

    # Vendors first: domains and assets name them (registrar, DNS host, managing vendor).
    for vendor in content.get("vendors", []):
        fields = _pick(vendor, _VENDOR_FIELDS + _COMMON_FIELDS)
        inventory.add_record(ctx, "vendor", client_name, name=vendor["name"], **fields)
    for domain in content.get("domains", []):
        fields = _pick(domain, _DOMAIN_FIELDS + _COMMON_FIELDS)
        for ref in ("registrar", "dns_host"):
            if domain.get(ref):
                fields[ref] = domain[ref]
        inventory.add_record(ctx, "domain", client_name, name=domain["name"], **fields)
    for asset in content.get("assets", []):
        fields = _pick(asset, _ASSET_FIELDS + _COMMON_FIELDS)
        if asset.get("managing_vendor"):
            fields["managing_vendor"] = asset["managing_vendor"]
        inventory.add_record(ctx, "asset", client_name, name=asset["name"], **fields)
    for kind in ("vendors", "domains", "assets"):
        counts[kind] = len(content.get(kind, []))

    records = content.get("secrets", [])
    first: list[secrets.NewSecret] = []
    later: list[tuple[str, list[dict[str, Any]]]] = []
    for record in records:
        versions = sorted(
            record.get("history") or [_current(record)], key=lambda v: int(v["version"])
        )
        origin = versions[0]
        first.append(
            secrets.NewSecret(
                title=record["title"],
                value=origin["value"],
                kind=record["kind"],
                username=origin.get("username"),
                url=record.get("url"),
                notes=origin.get("notes"),
                tags=list(record.get("tags") or []),
                exclusive=bool(record.get("exclusive")),
                sensitive=bool(record.get("sensitive")),
                rotate_after_use=bool(record.get("rotate_after_use")),
            )
        )
        later.append((record["title"], versions[1:]))
    secrets.add_secrets(ctx, client_name, first)
    versions_total = len(records)
    for title, rest in later:
        for version in rest:
            secrets.update_secret(
                ctx,
                client_name,
                title,
                value=version["value"],
                username=version.get("username"),
                notes=version.get("notes"),
            )
            versions_total += 1
    links = 0
    for record in records:
        for link in record.get("links", []):
            inventory.link_secret(ctx, client_name, record["title"], link["kind"], link["name"])
            links += 1
    counts.update(secrets=len(records), versions=versions_total, links=links)
    audit.record(
        ctx,
        "client.adopt",
        client_id=client.id,
        subject_kind="client",
        subject_id=client.id,
        source_client=source.get("id"),
        source_vault=content.get("vault_id"),
        **counts,
    )
    return Adopted(client=client.name, client_id=client.id, counts=counts)


def _current(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": record.get("version", 1),
        "value": record["value"],
        "username": record.get("username"),
        "notes": record.get("notes"),
    }
