"""ORM rows to response dicts (metadata only, unless a route reveals on purpose)."""

from __future__ import annotations

from typing import Any

from vault.db.models import ApiToken, Lease, Recipient, Secret, User
from vault.services import Context
from vault.services.clients import summarize


def secret(s: Secret) -> dict[str, Any]:
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
        "needs_rotation": s.needs_rotation,
        "held_until": s.held_until,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def lease(item: Lease) -> dict[str, Any]:
    return {
        k: getattr(item, k)
        for k in (
            "id",
            "secret_id",
            "client_id",
            "holder",
            "reason",
            "ticket",
            "version",
            "exclusive",
            "created_at",
            "expires_at",
            "released_at",
            "release_kind",
        )
    }


def recipient(r: Recipient) -> dict[str, Any]:
    return {
        "id": r.id,
        "recipient": r.recipient,
        "kind": r.kind,
        "label": r.label,
        "added_at": r.added_at,
    }


def client(ctx: Context, c: Any) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "created_at": c.created_at,
        "counts": summarize(ctx, c).counts,
        "recipients": [recipient(r) for r in c.recipients],
        "contacts": [
            {"id": p.id, "name": p.name, "email": p.email, "phone": p.phone, "role": p.role}
            for p in c.contacts
        ],
    }


def user(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "role": u.role,
        "client_id": u.client_id,
        "display_name": u.display_name,
        "totp_enrolled": u.totp_confirmed_at is not None,
        "disabled": u.disabled_at is not None,
        "locked_until": u.locked_until,
        "created_at": u.created_at,
    }


def token(t: ApiToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "label": t.label,
        "scope": t.scope,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
        "last_used_at": t.last_used_at,
    }


def inventory(
    ctx: Context, kind: str, row: Any, private: dict[str, str] | None = None
) -> dict[str, Any]:
    from vault.services.inventory import vendor_name

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
            registrar=vendor_name(ctx, row.registrar_id),
            registrant=row.registrant,
            expires_on=row.expires_on,
            dns_host=vendor_name(ctx, row.dns_host_id),
        )
    else:
        data.update(
            kind=row.kind,
            location=row.location,
            serial=row.serial,
            address=row.address,
            managing_vendor=vendor_name(ctx, row.managing_vendor_id),
        )
    if private:
        data.update(private)
    return data
