"""A client's takeover of its own records, and the notices it sends the consultancy."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CallerDep
from vault.services import takeover

router = APIRouter(prefix="/clients/{client}/takeover", tags=["takeover"])
notices_router = APIRouter(prefix="/notices", tags=["takeover"])


class TakeoverStart(BaseModel):
    totp_code: str | None = Field(
        default=None, max_length=10, description="A fresh code (required of a client contact)"
    )


class NoticePeriod(BaseModel):
    notice_days: int = Field(ge=0, le=takeover.MAX_NOTICE_DAYS)


class TakeoverPublic(BaseModel):
    client: dict[str, str]
    state: str
    notice_days: int
    requested_at: datetime | None
    requested_by: str | None
    effective_at: datetime | None
    owned_at: datetime | None


class NoticePublic(BaseModel):
    id: str
    created_at: datetime
    client_id: str | None
    kind: str
    message: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None


@router.get("", response_model=TakeoverPublic)
def takeover_status(client: str, caller: CallerDep) -> dict[str, object]:
    with caller.read_transaction() as ctx:
        return takeover.status(ctx, client).as_dict()


@router.post("", response_model=TakeoverPublic, status_code=202)
def start_takeover(client: str, body: TakeoverStart, caller: CallerDep) -> dict[str, object]:
    """Start taking the client's records over: an immediate export to the client's escrow
    destinations, a notice to the consultancy, and after the notice period the client owns
    its records. A client contact must send a fresh TOTP code."""
    with caller.transaction() as ctx:
        return takeover.start(ctx, client, totp_code=body.totp_code).as_dict()


@router.delete("", response_model=TakeoverPublic)
def cancel_takeover(client: str, caller: CallerDep) -> dict[str, object]:
    """The client calls its takeover off (only the client may, and only before it completes)."""
    with caller.transaction() as ctx:
        return takeover.cancel(ctx, client).as_dict()


@router.put("/notice", response_model=TakeoverPublic)
def set_notice_period(client: str, body: NoticePeriod, caller: CallerDep) -> dict[str, object]:
    """Admin: the notice the consultancy gets when this client takes over (0 allowed)."""
    with caller.transaction() as ctx:
        return takeover.set_notice_days(ctx, client, body.notice_days).as_dict()


@notices_router.get("", response_model=list[NoticePublic])
def list_notices(caller: CallerDep, all: bool = False) -> list[dict[str, object]]:  # noqa: A002
    with caller.transaction() as ctx:
        return [
            takeover.describe_notice(n)
            for n in takeover.list_notices(ctx, include_acknowledged=all)
        ]


@notices_router.post("/{notice_id}/ack", response_model=NoticePublic)
def acknowledge_notice(notice_id: str, caller: CallerDep) -> dict[str, object]:
    with caller.transaction() as ctx:
        return takeover.describe_notice(takeover.acknowledge(ctx, notice_id))
