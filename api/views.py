"""ORM rows to response dicts (metadata only, unless a route reveals on purpose)."""

from __future__ import annotations

from typing import Any

from vault.db.models import ApiToken, Lease, Recipient, Secret, User
from vault.services import Context, clients, secrets
from vault.services import inventory as inventory_service


def secret(s: Secret) -> dict[str, Any]:
    return secrets.describe(s)


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
    return clients.describe_recipient(r)


def client(ctx: Context, c: Any) -> dict[str, Any]:
    return clients.describe(ctx, c)


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
    return inventory_service.describe(kind, row, inventory_service.vendor_namer(ctx), private)
