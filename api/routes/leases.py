"""Leases: my open check-outs, check-in, overdue, forced release, rotation due."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import CallerDep
from api.schemas import CheckinRequest, CheckinResponse, LeasePublic, SecretPublic
from api.views import lease as lease_view
from api.views import model_answer
from api.views import secret as secret_view
from vault.services import checkout

router = APIRouter(prefix="/leases", tags=["leases"])


@router.get("", response_model=list[LeasePublic])
def list_leases(
    caller: CallerDep, mine: bool = False, overdue: bool = False
) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        return [lease_view(x) for x in checkout.list_leases(ctx, mine=mine, overdue=overdue)]


@router.get("/rotation-due", response_model=list[SecretPublic])
def rotation_due(caller: CallerDep) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        return [secret_view(s) for s in checkout.awaiting_rotation(ctx)]


@router.post("/{lease_id}/checkin", response_model=CheckinResponse)
def checkin(lease_id: str, body: CheckinRequest, caller: CallerDep) -> Response:
    new_value = body.new_value.get_secret_value() if body.new_value is not None else None
    checked_for = None
    if new_value is not None and not body.generate:
        # The strength estimate is slow: outside the write transaction (see check_new_value).
        checked_for = caller.before_transaction(
            lambda conn, principal: checkout.check_new_value(conn, principal, lease_id, new_value)
        )
    with caller.transaction() as ctx:
        lease, version, generated = checkout.checkin(
            ctx,
            lease_id,
            new_value=new_value,
            generate=body.generate,
            strength_checked_for=checked_for,
        )
        answer = {"lease": lease_view(lease), "new_version": version, "generated_value": generated}
    return model_answer(answer)  # rendered once committed, as FastAPI would


@router.post("/{lease_id}/release", response_model=LeasePublic)
def force_release(lease_id: str, caller: CallerDep) -> dict[str, object]:
    """Admin: end someone's lease now."""
    with caller.transaction() as ctx:
        return lease_view(checkout.force_release(ctx, lease_id))
