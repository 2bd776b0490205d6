"""Client-triggered takeover: the client takes its records over, with notice but no veto.

A client contact starts it with a fresh TOTP code (an admin may start it too, as a voluntary
hand-over). At once: every escrow destination of the client gets a full export, and the
consultancy's admins get a notice. After the client's notice period (set per client, default
7 days, 0 allowed) the takeover completes: the consultancy's grants on that client end (grants
the client itself made survive), and the client's contacts manage who may access it. The
client may cancel before it completes; the consultancy cannot. Every step is a log event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from vault.db.models import Client, EscrowDestination, Grant, Notice, User, utcnow
from vault.errors import Conflict, Forbidden, InvalidInput
from vault.services import Context, audit
from vault.services.clients import get_client

MAX_NOTICE_DAYS = 90


@dataclass(frozen=True)
class TakeoverStatus:
    client_id: str
    client_name: str
    notice_days: int
    requested_at: datetime | None
    requested_by: str | None
    effective_at: datetime | None
    owned_at: datetime | None

    @property
    def state(self) -> str:
        if self.owned_at is not None:
            return "owned-by-client"
        if self.requested_at is not None:
            return "notice-period"
        return "managed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": {"id": self.client_id, "name": self.client_name},
            "state": self.state,
            "notice_days": self.notice_days,
            "requested_at": self.requested_at,
            "requested_by": self.requested_by,
            "effective_at": self.effective_at,
            "owned_at": self.owned_at,
        }


def status_of(client: Client) -> TakeoverStatus:
    return TakeoverStatus(
        client_id=client.id,
        client_name=client.name,
        notice_days=client.notice_days,
        requested_at=client.takeover_requested_at,
        requested_by=client.takeover_requested_by,
        effective_at=client.takeover_effective_at,
        owned_at=client.owned_at,
    )


def status(ctx: Context, client_name: str) -> TakeoverStatus:
    ctx.require("admin", "consultant", "client", "auditor")
    return status_of(get_client(ctx, client_name))


def set_notice_days(ctx: Context, client_name: str, days: int) -> TakeoverStatus:
    """The consultancy sets the notice period when taking a client on (admin)."""
    ctx.require("admin")
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_NOTICE_DAYS:
        raise InvalidInput(f"notice must be 0 to {MAX_NOTICE_DAYS} days", field="notice_days")
    client = get_client(ctx, client_name)
    if client.takeover_requested_at is not None:
        raise Conflict("a takeover is under way: its notice period is fixed", field="notice_days")
    client.notice_days = days
    audit.record(ctx, "client.notice_period", client_id=client.id, notice_days=days)
    return status_of(client)


def start(
    ctx: Context, client_name: str, *, totp_code: str | None = None, now: datetime | None = None
) -> TakeoverStatus:
    """Start the takeover. A client contact must give a fresh TOTP code."""
    from vault.services import users

    ctx.require("client", "admin")
    now = now or utcnow()
    client = get_client(ctx, client_name)
    if ctx.principal.role == "client":
        user = ctx.session.get(User, ctx.principal.user_id)
        if user is None or not users.verify_fresh_totp(ctx, user, totp_code):
            raise Forbidden("a fresh TOTP code is required to start a takeover", field="totp_code")
    if client.owned_at is not None:
        raise Conflict("this client already owns its records", field="client")
    if client.takeover_requested_at is not None:
        raise Conflict(
            f"a takeover is already under way (effective {client.takeover_effective_at:%Y-%m-%d})",
            field="client",
        )
    client.takeover_requested_at = now
    client.takeover_requested_by = ctx.actor
    client.takeover_effective_at = now + timedelta(days=client.notice_days)
    audit.record(
        ctx,
        "client.takeover.start",
        client_id=client.id,
        subject_kind="client",
        subject_id=client.id,
        notice_days=client.notice_days,
        effective_at=client.takeover_effective_at.isoformat(),
    )
    ctx.session.add(
        Notice(
            client_id=client.id,
            kind="takeover",
            message=(
                f"{ctx.actor} started a takeover of {client.name}; it takes effect "
                f"{client.takeover_effective_at:%Y-%m-%d %H:%M} UTC, when the consultancy's "
                "grants on this client end"
            ),
        )
    )
    # The immediate full export: every destination of the client is due now. The drops run
    # outside this transaction (network I/O must not hold the write lock): the server's escrow
    # runner picks them up within seconds; `custody escrow run` does it from cron.
    for destination in ctx.session.scalars(
        select(EscrowDestination).where(EscrowDestination.client_id == client.id)
    ):
        destination.next_attempt_at = now
    if client.notice_days == 0:
        _complete(ctx, client, now)
    return status_of(client)


def cancel(ctx: Context, client_name: str) -> TakeoverStatus:
    """The client changed its mind (before the takeover completed). Only the client may."""
    ctx.require("client")
    client = get_client(ctx, client_name)
    if client.takeover_requested_at is None or client.owned_at is not None:
        raise Conflict("there is no takeover under way to cancel", field="client")
    client.takeover_requested_at = None
    client.takeover_requested_by = None
    client.takeover_effective_at = None
    audit.record(ctx, "client.takeover.cancel", client_id=client.id)
    ctx.session.add(
        Notice(
            client_id=client.id,
            kind="takeover",
            message=f"{ctx.actor} cancelled the takeover of {client.name}",
        )
    )
    return status_of(client)


def complete_due(ctx: Context, *, now: datetime | None = None) -> int:
    """Complete every takeover whose notice period is over (the sweeper and `escrow run`)."""
    now = now or utcnow()
    due = list(
        ctx.session.scalars(
            select(Client).where(
                Client.owned_at.is_(None),
                Client.takeover_effective_at.is_not(None),
                Client.takeover_effective_at <= now,
            )
        )
    )
    for client in due:
        _complete(ctx, client, now)
    return len(due)


def _complete(ctx: Context, client: Client, now: datetime) -> None:
    ended = ctx.session.execute(
        select(Grant, User)
        .join(User, User.id == Grant.user_id)
        .where(Grant.client_id == client.id, Grant.by_client.is_(False), User.role == "consultant")
    ).all()
    for row, user in ended:
        ctx.session.delete(row)
        audit.record(
            ctx,
            "grant.remove",
            client_id=client.id,
            subject_kind="user",
            subject_id=user.id,
            username=user.username,
            because="takeover",
        )
    client.owned_at = now
    audit.record(
        ctx,
        "client.takeover.complete",
        client_id=client.id,
        subject_kind="client",
        subject_id=client.id,
        grants_ended=len(ended),
    )
    ctx.session.add(
        Notice(
            client_id=client.id,
            kind="takeover",
            message=f"{client.name} now owns its records; {len(ended)} consultant grant(s) ended",
        )
    )


# --- notices ---------------------------------------------------------------------------------


def list_notices(ctx: Context, *, include_acknowledged: bool = False) -> list[Notice]:
    ctx.require("admin")
    query = select(Notice).order_by(Notice.created_at.desc())
    if not include_acknowledged:
        query = query.where(Notice.acknowledged_at.is_(None))
    return list(ctx.session.scalars(query))


def acknowledge(ctx: Context, notice_id: str) -> Notice:
    from vault.errors import NotFound

    ctx.require("admin")
    notice = ctx.session.get(Notice, notice_id)
    if notice is None:
        raise NotFound("no such notice", field="notice_id")
    if notice.acknowledged_at is None:
        notice.acknowledged_at = utcnow()
        notice.acknowledged_by = ctx.actor
        audit.record(ctx, "notice.acknowledge", client_id=notice.client_id, subject_id=notice.id)
    return notice


def describe_notice(notice: Notice) -> dict[str, Any]:
    return {
        "id": notice.id,
        "created_at": notice.created_at,
        "client_id": notice.client_id,
        "kind": notice.kind,
        "message": notice.message,
        "acknowledged_at": notice.acknowledged_at,
        "acknowledged_by": notice.acknowledged_by,
    }
