"""Reports: what a departing consultant saw and nobody has rotated since; takeover readiness."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep
from api.schemas import ReadinessReport, Report
from vault.services import checkout, readiness

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/offboarding/{username}", response_model=Report)
def offboarding(username: str, caller: CallerDep) -> dict[str, object]:
    with caller.read_transaction() as ctx:
        rows = checkout.offboarding(ctx, username)
        return {
            "items": [
                {
                    "secret_id": s.id,
                    "client_id": s.client_id,
                    "title": s.title,
                    "version": r.version,
                    "first_seen": r.first_at,
                    "last_seen": r.last_at,
                }
                for s, r in rows
            ]
        }


@router.get("/readiness/{client}", response_model=ReadinessReport)
def takeover_readiness(client: str, caller: CallerDep) -> dict[str, object]:
    """How ready the client is to take over without us: a score and the findings behind it."""
    with caller.read_transaction() as ctx:
        return readiness.readiness(ctx, client).as_dict()
