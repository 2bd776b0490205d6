"""Escrow drops: where a client's export is delivered on a schedule, and their status."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field, SecretStr

from api.deps import CallerDep
from vault.services import escrow
from vault.services.clients import get_client

router = APIRouter(prefix="/clients/{client}/escrow", tags=["escrow"])


class DestinationCreate(BaseModel):
    directory: str | None = Field(
        default=None, max_length=1000, description="Absolute path on the vault host (admin only)"
    )
    url: str | None = Field(default=None, max_length=2000, description="An https:// endpoint")
    token: SecretStr | None = Field(
        default=None, max_length=4000, description="The client's bearer token for the endpoint"
    )
    method: str = Field(default="PUT", max_length=8)
    every_hours: int = Field(default=24, ge=escrow.MIN_EVERY_HOURS, le=escrow.MAX_EVERY_HOURS)
    label: str | None = Field(default=None, max_length=200)


class DestinationPublic(BaseModel):
    id: str
    client_id: str
    kind: str
    target: str
    method: str | None
    has_token: bool
    label: str | None
    every_hours: int
    created_at: datetime
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    failures: int
    next_attempt_at: datetime | None
    overdue: bool


class DropPublic(BaseModel):
    destination_id: str
    client_id: str
    target: str
    ok: bool
    error: str | None
    bytes: int


@router.get("", response_model=list[DestinationPublic])
def list_destinations(client: str, caller: CallerDep) -> list[dict[str, object]]:
    """The client's destinations, each with its last success, last error and overdue flag."""
    with caller.read_transaction() as ctx:
        return [escrow.describe(d) for d in escrow.list_destinations(ctx, client)]


@router.post("", response_model=DestinationPublic, status_code=201)
def add_destination(client: str, body: DestinationCreate, caller: CallerDep) -> dict[str, object]:
    with caller.transaction() as ctx:
        row = escrow.add_destination(
            ctx,
            client,
            directory=body.directory,
            url=body.url,
            token=body.token.get_secret_value() if body.token is not None else None,
            method=body.method,
            every_hours=body.every_hours,
            label=body.label,
        )
        return escrow.describe(row)


@router.delete("/{destination_id}", status_code=204)
def remove_destination(client: str, destination_id: str, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        escrow.remove_destination(ctx, client, destination_id)


@router.post("/run", response_model=list[DropPublic])
def run_now(client: str, caller: CallerDep) -> list[dict[str, object]]:
    """Deliver this client's export to all its destinations now (admin or the client)."""
    with caller.transaction() as ctx:
        ctx.require("admin", "client")
        client_id = get_client(ctx, client).id
    keys = caller.state.keys
    assert keys is not None  # the seal guard answers 503 while sealed
    results = escrow.run_due(caller.state.store, keys, client_id=client_id, force=True)
    return [r.as_dict() for r in results]
