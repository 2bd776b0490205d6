"""Reports: what a departing consultant saw and nobody has rotated since."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep
from api.schemas import Report
from vault.services import checkout

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/offboarding/{username}", response_model=Report)
def offboarding(username: str, caller: CallerDep) -> dict[str, object]:
    with caller.transaction() as ctx:
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
