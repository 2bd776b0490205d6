"""Sign-in, sign-out, TOTP enrolment and API tokens of the signed-in user."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import CallerDep, EnrollingCallerDep, StateDep, current_user, source_of
from api.errors import error_body
from api.schemas import (
    LoginRequest,
    LoginResponse,
    Me,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    TotpConfirm,
    TotpEnrollment,
)
from api.views import token as token_view
from vault.db.models import ApiToken
from vault.services import Principal, users
from vault.services.users import LOGIN_FAILED

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=LoginResponse,
    responses={401: {"description": "Sign-in failed (one answer for every reason)"}},
)
def login(body: LoginRequest, state: StateDep, request: Request) -> object:
    anonymous = Principal(name="anonymous", role="anonymous")
    with state.store.context(anonymous, state.keys, source=source_of(request)) as ctx:
        result = users.login(
            ctx,
            body.username,
            body.password.get_secret_value(),
            body.totp,
            require_totp=state.require_totp,
        )
    if not result.ok:
        return JSONResponse(
            error_body("unauthenticated", LOGIN_FAILED),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return {
        "token": result.token,
        "scope": result.scope,
        "expires_at": result.expires_at,
        "totp_enrollment_required": result.totp_enrollment_required,
    }


@router.post("/logout", status_code=204)
def logout(caller: EnrollingCallerDep) -> None:
    """End this session: the token is refused from now on."""
    with caller.transaction() as ctx:
        assert ctx.token_id is not None
        users.revoke_token(ctx, ctx.token_id, owner=current_user(ctx))


@router.get("/me", response_model=Me)
def me(caller: CallerDep) -> dict[str, object]:
    with caller.read_transaction() as ctx:
        user = current_user(ctx)
        clients = ctx.principal.clients
        return {
            "username": user.username,
            "role": user.role,
            "client_ids": sorted(clients) if clients is not None else None,
            "totp_enrolled": user.totp_confirmed_at is not None,
        }


@router.post("/totp/enroll", response_model=TotpEnrollment)
def totp_enroll(caller: EnrollingCallerDep) -> dict[str, str]:
    with caller.transaction() as ctx:
        return {"otpauth_uri": users.begin_totp_enrollment(ctx, current_user(ctx))}


@router.post("/totp/confirm", status_code=204)
def totp_confirm(body: TotpConfirm, caller: EnrollingCallerDep) -> None:
    """Confirm enrolment with a first code. The enrolment token ends: sign in again."""
    with caller.transaction() as ctx:
        users.confirm_totp(ctx, current_user(ctx), body.code)
        if ctx.token_id is not None:
            token = ctx.session.get(ApiToken, ctx.token_id)
            if token is not None and token.scope == "enroll":
                users.revoke_token(ctx, token.id, owner=current_user(ctx))


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(caller: CallerDep) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        return [token_view(t) for t in users.list_tokens(ctx, current_user(ctx))]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, caller: CallerDep) -> dict[str, object]:
    """An API token for scripts; shown once."""
    with caller.transaction() as ctx:
        user = current_user(ctx)
        raw = users.create_api_token(ctx, user, label=body.label, ttl=timedelta(days=body.ttl_days))
        ctx.session.flush()
        created = [
            t for t in users.list_tokens(ctx, user) if t.token_hash == users.hash_token(raw)
        ][0]
        return {**token_view(created), "token": raw}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        users.revoke_token(ctx, token_id, owner=current_user(ctx))
