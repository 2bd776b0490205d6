"""Clients, their contacts and their escrow recipients."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep
from api.schemas import (
    ClientCreate,
    ClientPublic,
    ContactCreate,
    ContactPublic,
    RecipientCreate,
    RecipientPublic,
)
from api.views import client as client_view
from api.views import recipient as recipient_view
from vault.services import clients

router = APIRouter(prefix="/clients", tags=["clients"])


@router.get("", response_model=list[ClientPublic])
def list_clients(caller: CallerDep, name: str | None = None) -> list[dict[str, object]]:
    """The clients in the caller's scope (``name`` finds one by name)."""
    with caller.read_transaction() as ctx:
        if name is not None:
            return [client_view(ctx, clients.get_client(ctx, name))]
        return [client_view(ctx, c) for c in clients.list_clients(ctx)]


@router.post("", response_model=ClientPublic, status_code=201)
def create_client(body: ClientCreate, caller: CallerDep) -> dict[str, object]:
    with caller.transaction() as ctx:
        return client_view(ctx, clients.add_client(ctx, body.name, recipients=body.recipients))


@router.get("/{client}", response_model=ClientPublic)
def get_client(client: str, caller: CallerDep) -> dict[str, object]:
    with caller.read_transaction() as ctx:
        ctx.require("admin", "consultant", "client")
        return client_view(ctx, clients.get_client(ctx, client))


@router.post("/{client}/contacts", response_model=ContactPublic, status_code=201)
def add_contact(client: str, body: ContactCreate, caller: CallerDep) -> dict[str, object]:
    with caller.transaction() as ctx:
        c = clients.add_contact(
            ctx, client, body.name, email=body.email, phone=body.phone, role=body.role
        )
        return {"id": c.id, "name": c.name, "email": c.email, "phone": c.phone, "role": c.role}


@router.get("/{client}/recipients", response_model=list[RecipientPublic])
def list_recipients(client: str, caller: CallerDep) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        ctx.require("admin", "consultant", "client")
        return [recipient_view(r) for r in clients.get_client(ctx, client).recipients]


@router.post("/{client}/recipients", response_model=RecipientPublic, status_code=201)
def add_recipient(client: str, body: RecipientCreate, caller: CallerDep) -> dict[str, object]:
    """Register an escrow recipient (age1... or ssh-ed25519); re-wraps the client key."""
    with caller.transaction() as ctx:
        return recipient_view(clients.add_recipient(ctx, client, body.recipient, label=body.label))


@router.delete("/{client}/recipients/{recipient}", status_code=204)
def remove_recipient(client: str, recipient: str, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        clients.remove_recipient(ctx, client, recipient)
