"""ORM rows to response dicts (metadata only, unless a route reveals on purpose)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

from vault.db.models import ApiToken, Lease, Recipient, Secret, User
from vault.services import Context, clients, secrets
from vault.services import inventory as inventory_service
from vault.services.checkout import LeaseRecord


def secret(s: Secret) -> dict[str, Any]:
    return secrets.describe(s)


def model_answer(content: dict[str, Any]) -> Response:
    """``content`` as the JSON answer of a route that declares a response model, in the bytes
    FastAPI would send for it (orjson with UTC as ``Z`` renders what pydantic renders:
    tests/api/test_secrets.py checks), but without FastAPI validating it against the model:
    for a sync route that validation runs in a second hop to a worker thread, which costs more
    CPU than a check-out's own work. Only for content built field by field to the model from
    the database's rows (the check-out path). The model stays declared on the route: it
    documents the answer in the OpenAPI schema."""
    return Response(orjson.dumps(content, option=orjson.OPT_UTC_Z), media_type="application/json")


def lease(item: Lease | LeaseRecord) -> dict[str, Any]:
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
