"""Audit events: every access and change, written in the caller's transaction.

A detail dict carries ids, titles, counts and reasons - never a secret value.
"""

from __future__ import annotations

from typing import Any

from vault.db.models import AuditEvent
from vault.services import Context


def record(
    ctx: Context,
    action: str,
    *,
    client_id: str | None = None,
    subject_kind: str | None = None,
    subject_id: str | None = None,
    outcome: str = "ok",
    **detail: Any,
) -> AuditEvent:
    event = AuditEvent(
        actor=ctx.actor,
        action=action,
        outcome=outcome,
        client_id=client_id,
        subject_kind=subject_kind,
        subject_id=subject_id,
        detail=detail,
    )
    ctx.session.add(event)
    return event
