"""Health, seal status and unsealing. These answer while the vault is sealed."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from api.deps import StateDep, source_of
from api.schemas import Health, UnsealRequest, UnsealStatus
from vault import __version__
from vault.errors import InvalidInput, TooManyAttempts, UnsealError
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


UNSEAL_FREE_FAILURES = 3
UNSEAL_MAX_BLOCK_SECONDS = 300.0


@router.post("/sys/unseal", response_model=UnsealStatus)
def unseal(body: UnsealRequest, state: StateDep, request: Request) -> dict[str, object]:
    """Unseal with the passphrase, or with shares given one per call (any order).

    Nobody can sign in while the vault is sealed (sign-in needs the vault's keys), so this
    route is open: failures are throttled (a growing pause after a few in a row), every
    attempt is logged, and each share is checked when it arrives, so a bogus one is refused
    instead of spoiling the round."""
    from vault.crypto.shares import combine_shares, share_identifier

    meta = state.store.meta()
    who = Principal(name="anonymous", role="anonymous")
    with state.lock:
        if not state.sealed:
            return {"sealed": False, "shares_given": 0, "shares_needed": meta.share_threshold}
        wait = state.unseal_blocked_until - time.monotonic()
        if wait > 0:
            raise TooManyAttempts(f"too many failed unseal attempts: retry in {int(wait) + 1} s")
        if body.reset:
            state.pending_shares = []
            return {"sealed": True, "shares_given": 0, "shares_needed": meta.share_threshold}
        try:
            if meta.seal_mode == "shares":
                if body.share is None:
                    raise InvalidInput("this vault unseals with shares", field="share")
                share = body.share.get_secret_value()
                ident = share_identifier(share)
                if state.pending_shares and share_identifier(state.pending_shares[0]) != ident:
                    raise UnsealError("that share belongs to another split of the secret")
                state.pending_shares.append(share)
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
            state.keys = state.store.unseal(secret)
        except UnsealError:
            state.unseal_failures += 1
            if state.unseal_failures >= UNSEAL_FREE_FAILURES:
                pause = 2.0 ** (state.unseal_failures - UNSEAL_FREE_FAILURES)
                state.unseal_blocked_until = time.monotonic() + min(pause, UNSEAL_MAX_BLOCK_SECONDS)
            with state.store.context(who, source=source_of(request)) as ctx:
                audit.record(ctx, "vault.unseal", outcome="denied")
            raise
        state.unseal_failures = 0
        with state.store.context(who, source=source_of(request)) as ctx:
            audit.record(ctx, "vault.unseal")
    return {"sealed": False, "shares_given": 0, "shares_needed": meta.share_threshold}
