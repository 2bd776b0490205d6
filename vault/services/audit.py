"""Audit events: every access and change, written in the caller's transaction.

A detail dict carries ids, titles, counts and reasons - never a secret value. Each event is a
leaf of the transparency log (``vault.services.auditlog``). Events recorded in a transaction
opened by ``Store.context`` are appended together just before it commits, so the log head is
locked for as short a time as possible; a bulk operation records one event per record in a
single batched INSERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vault.db.models import utcnow
from vault.services import Context, auditlog


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
    rows = [{**who, **item} for item in events]
    if ctx.pending_events is not None:
        ctx.pending_events.extend(rows)
    else:
        auditlog.append(ctx.session, rows)


def record(ctx: Context, action: str, **fields: Any) -> None:
    record_many(ctx, [event(action, **fields)])
