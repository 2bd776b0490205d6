"""Credential requests: one-time links asking a client for a credential (the link itself is
answered in the portal, /ui/r/{token}, by a signed-in contact of the client)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CallerDep
from vault.services import inventory
from vault.services import requests as requests_service

router = APIRouter(prefix="/clients/{client}/requests", tags=["requests"])
MAX_TTL_HOURS = int(requests_service.MAX_TTL.total_seconds() // 3600)


class RequestCreate(BaseModel):
    title: str = Field(max_length=300, description="Title of the secret to be created")
    kind: str = Field(default="login", max_length=32)
    vendor: str | None = Field(default=None, max_length=300, description="A vendor's name")
    note: str | None = Field(default=None, max_length=1000)
    ttl_hours: int = Field(default=72, ge=1, le=MAX_TTL_HOURS)


class RequestPublic(BaseModel):
    id: str
    client_id: str
    title: str
    kind: str
    vendor: str | None
    note: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    revoked_at: datetime | None
    secret_id: str | None
    state: str


class RequestCreated(RequestPublic):
    token: str = Field(description="The link token, shown once: the link is /ui/r/{token}")
    path: str


@router.post("", response_model=RequestCreated, status_code=201)
def create_request(client: str, body: RequestCreate, caller: CallerDep) -> dict[str, object]:
    """Ask the client for a credential: a one-time link, shown once."""
    with caller.transaction() as ctx:
        made = requests_service.create(
            ctx,
            client,
            title=body.title,
            kind=body.kind,
            vendor=body.vendor,
            note=body.note,
            ttl=timedelta(hours=body.ttl_hours),
        )
        name = inventory.vendor_name(ctx, made.request.vendor_id)
        return {
            **requests_service.describe(made.request, name),
            "token": made.token,
            "path": f"/ui/r/{made.token}",
        }


@router.get("", response_model=list[RequestPublic])
def list_requests(client: str, caller: CallerDep) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        names = inventory.vendor_namer(ctx)
        return [
            requests_service.describe(r, names(r.vendor_id))
            for r in requests_service.list_requests(ctx, client)
        ]


@router.delete("/{request_id}", status_code=204)
def revoke_request(client: str, request_id: str, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        requests_service.revoke(ctx, client, request_id)
