"""Secrets: metadata, versions, and check-out - the only route that returns a value."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response

from api.deps import CallerDep
from api.schemas import (
    CheckoutRequest,
    CheckoutResponse,
    LinkCreate,
    SecretCreate,
    SecretPublic,
    SecretUpdate,
    TotpCode,
    VersionPublic,
)
from api.views import lease as lease_view
from api.views import model_answer
from api.views import secret as secret_view
from vault.services import checkout, inventory, secrets
from vault.services.clients import get_client
from vault.services.secrets import _UNSET

router = APIRouter(prefix="/clients/{client}/secrets", tags=["secrets"])


@router.get("", response_model=list[SecretPublic])
def list_secrets(
    client: str,
    caller: CallerDep,
    q: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    title: str | None = None,
) -> list[dict[str, object]]:
    """Metadata only. ``title`` finds one secret by exact title."""
    with caller.read_transaction() as ctx:
        if title is not None:
            ctx.require("admin", "consultant", "client")
            return [secret_view(secrets.get_secret_record(ctx, get_client(ctx, client), title))]
        return [
            secret_view(s) for s in secrets.list_secrets(ctx, client, query=q, kind=kind, tag=tag)
        ]


@router.post("", response_model=SecretPublic, status_code=201)
def create_secret(client: str, body: SecretCreate, caller: CallerDep) -> dict[str, object]:
    with caller.transaction() as ctx:
        s = secrets.add_secret(
            ctx,
            client,
            title=body.title,
            value=body.value.get_secret_value(),
            kind=body.kind,
            username=body.username,
            url=body.url,
            notes=body.notes,
            tags=body.tags,
            exclusive=body.exclusive,
            sensitive=body.sensitive,
            rotate_after_use=body.rotate_after_use,
            max_lease_seconds=body.max_lease_seconds,
            generate_length=body.generate_length,
            generate_charset=body.generate_charset,
        )
        return secret_view(s)


@router.get("/{secret}", response_model=SecretPublic)
def get_secret(client: str, secret: str, caller: CallerDep) -> dict[str, object]:
    with caller.read_transaction() as ctx:
        ctx.require("admin", "consultant", "client")
        return secret_view(secrets.get_secret_record(ctx, get_client(ctx, client), secret))


@router.patch("/{secret}", response_model=SecretPublic)
def update_secret(
    client: str, secret: str, body: SecretUpdate, caller: CallerDep
) -> dict[str, object]:
    with caller.transaction() as ctx:
        given = body.model_fields_set
        s = secrets.update_secret(
            ctx,
            client,
            secret,
            value=body.value.get_secret_value() if body.value is not None else None,
            username=body.username if "username" in given else _UNSET,
            notes=body.notes if "notes" in given else _UNSET,
            url=body.url if "url" in given else _UNSET,
            new_title=body.title,
            kind=body.kind,
            tags=body.tags,
            exclusive=body.exclusive,
            sensitive=body.sensitive,
            rotate_after_use=body.rotate_after_use,
        )
        return secret_view(s)


@router.get("/{secret}/versions", response_model=list[VersionPublic])
def versions(client: str, secret: str, caller: CallerDep) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        return [
            {"version": v.version, "created_at": v.created_at, "created_by": v.created_by}
            for v in secrets.history(ctx, client, secret)
        ]


@router.post("/{secret}/checkout", response_model=CheckoutResponse)
def checkout_secret(client: str, secret: str, body: CheckoutRequest, caller: CallerDep) -> Response:
    """Check a secret out: needs a reason or ticket; opens a lease; returns the value once."""
    with caller.transaction() as ctx:
        out = checkout.checkout(
            ctx,
            client,
            secret,
            reason=body.reason,
            ticket=body.ticket,
            ttl=timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else None,
            totp_code=body.totp,
        )
        answer = {"lease": lease_view(out.lease), **out.secret.as_dict()}
    return model_answer(answer)  # rendered once committed, as FastAPI would


@router.post("/{secret}/totp", response_model=TotpCode)
def totp_code(client: str, secret: str, caller: CallerDep) -> dict[str, object]:
    """The current code of a stored TOTP seed; the seed itself never leaves the vault."""
    with caller.transaction() as ctx:
        code, remaining = checkout.totp_code(ctx, client, secret)
        return {"code": code, "valid_for_seconds": remaining}


@router.post("/{secret}/links", status_code=204)
def link(client: str, secret: str, body: LinkCreate, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        inventory.link_secret(ctx, client, secret, body.kind, body.name)
