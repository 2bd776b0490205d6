"""Health, seal status and unsealing. These answer while the vault is sealed."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import StateDep, source_of
from api.schemas import Health, UnsealRequest, UnsealStatus
from vault import __version__
from vault.errors import InvalidInput
from vault.keys import UnsealSecret
from vault.services import Principal, audit

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
def health(state: StateDep) -> dict[str, object]:
    return {"status": "ok", "sealed": state.sealed, "version": __version__}


@router.get("/sys/seal-status", response_model=UnsealStatus)
def seal_status(state: StateDep) -> dict[str, object]:
    meta = state.store.meta()
    return {
        "sealed": state.sealed,
        "shares_given": len(state.pending_shares),
        "shares_needed": meta.share_threshold,
    }


@router.post("/sys/unseal", response_model=UnsealStatus)
def unseal(body: UnsealRequest, state: StateDep, request: Request) -> dict[str, object]:
    """Unseal with the passphrase, or with shares given one per call (any order)."""
    from vault.crypto.shares import combine_shares

    meta = state.store.meta()
    with state.lock:
        if not state.sealed:
            return {"sealed": False, "shares_given": 0, "shares_needed": meta.share_threshold}
        who = Principal(name="anonymous", role="anonymous")
        if meta.seal_mode == "shares":
            if body.share is None:
                raise InvalidInput("this vault unseals with shares", field="share")
            state.pending_shares.append(body.share.get_secret_value())
            if len(state.pending_shares) < (meta.share_threshold or 0):
                return {
                    "sealed": True,
                    "shares_given": len(state.pending_shares),
                    "shares_needed": meta.share_threshold,
                }
            shares, state.pending_shares = state.pending_shares, []
            secret = UnsealSecret(combine_shares(shares))
        else:
            if body.passphrase is None:
                raise InvalidInput("this vault unseals with its passphrase", field="passphrase")
            secret = UnsealSecret.from_passphrase(body.passphrase.get_secret_value())
        try:
            state.keys = state.store.unseal(secret)
        except Exception:
            with state.store.context(who, source=source_of(request)) as ctx:
                audit.record(ctx, "vault.unseal", outcome="denied")
            raise
        with state.store.context(who, source=source_of(request)) as ctx:
            audit.record(ctx, "vault.unseal")
    return {"sealed": False, "shares_given": 0, "shares_needed": meta.share_threshold}
