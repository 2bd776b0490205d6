"""Audit events: every access and change, written in the caller's transaction.

A detail dict carries ids, titles, counts and reasons - never a secret value. Events are
inserted with Core statements (no ORM unit-of-work bookkeeping): a bulk operation records one
event per record in a single batched INSERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert

from vault.db.models import AuditEvent, utcnow
from vault.services import Context


def event(
    action: str,
    *,
    client_id: str | None = None,
    subject_kind: str | None = None,
    subject_id: str | None = None,
    outcome: str = "ok",
    **detail: Any,
) -> dict[str, Any]:
    """One event's columns, for :func:`record_many`."""
    return {
        "action": action,
        "outcome": outcome,
        "client_id": client_id,
        "subject_kind": subject_kind,
        "subject_id": subject_id,
        "detail": detail,
    }


def record_many(ctx: Context, events: Sequence[dict[str, Any]]) -> None:
    if not events:
        return
    now = utcnow()
    who = {"actor": ctx.actor, "role": ctx.principal.role, "source": ctx.source, "at": now}
    ctx.session.execute(insert(AuditEvent), [{**who, **item} for item in events])


def record(ctx: Context, action: str, **fields: Any) -> None:
    record_many(ctx, [event(action, **fields)])
