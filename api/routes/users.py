"""Users and grants (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep
from api.schemas import GrantCreate, GrantPublic, TokenPublic, UserCreate, UserPublic, UserUpdate
from api.views import token as token_view
from api.views import user as user_view
from vault.services import users

router = APIRouter(tags=["users"])


@router.get("/users", response_model=list[UserPublic])
def list_users(caller: CallerDep) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        return [user_view(u) for u in users.list_users(ctx)]


@router.post("/users", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, caller: CallerDep) -> dict[str, object]:
    with caller.transaction() as ctx:
        user = users.create_user(
            ctx,
            body.username,
            role=body.role,
            password=body.password.get_secret_value(),
            client_name=body.client,
            display_name=body.display_name,
        )
        return user_view(user)


@router.patch("/users/{username}", response_model=UserPublic)
def update_user(username: str, body: UserUpdate, caller: CallerDep) -> dict[str, object]:
    """Disable or enable a user (disabling ends every session at once); set a password."""
    with caller.transaction() as ctx:
        if caller.principal.name != f"user:{username}":
            ctx.require("admin")  # before any lookup: no probing for usernames
        user = users.get_user(ctx, username)
        if body.password is not None:
            user = users.set_password(ctx, username, body.password.get_secret_value())
        if body.disabled is not None:
            user = users.set_disabled(ctx, username, body.disabled)
        if body.password is None and body.disabled is None:
            ctx.require("admin")
        return user_view(user)


@router.post("/users/{username}/totp/reset", status_code=204)
def reset_totp(username: str, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        users.reset_totp(ctx, username)


@router.get("/users/{username}/tokens", response_model=list[TokenPublic])
def user_tokens(username: str, caller: CallerDep) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        ctx.require("admin")
        return [token_view(t) for t in users.list_tokens(ctx, users.get_user(ctx, username))]


@router.delete("/users/{username}/tokens/{token_id}", status_code=204)
def revoke_user_token(username: str, token_id: str, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        ctx.require("admin")
        users.revoke_token(ctx, token_id, owner=users.get_user(ctx, username))


@router.get("/grants", response_model=list[GrantPublic])
def list_grants(caller: CallerDep, username: str | None = None) -> list[dict[str, object]]:
    with caller.read_transaction() as ctx:
        return [
            {
                "username": u.username,
                "client_id": c.id,
                "client": c.name,
                "expires_at": g.expires_at,
                "created_at": g.created_at,
                "created_by": g.created_by,
            }
            for g, u, c in users.list_grants(ctx, username)
        ]


@router.put("/grants/{username}/{client}", response_model=GrantPublic)
def put_grant(
    username: str, client: str, body: GrantCreate, caller: CallerDep
) -> dict[str, object]:
    with caller.transaction() as ctx:
        grant = users.grant(ctx, username, client, expires_at=body.expires_at)
        user = users.get_user(ctx, username)
        from vault.services.clients import get_client

        c = get_client(ctx, client)
        return {
            "username": user.username,
            "client_id": c.id,
            "client": c.name,
            "expires_at": grant.expires_at,
            "created_at": grant.created_at,
            "created_by": grant.created_by,
        }


@router.delete("/grants/{username}/{client}", status_code=204)
def delete_grant(username: str, client: str, caller: CallerDep) -> None:
    with caller.transaction() as ctx:
        users.revoke_grant(ctx, username, client)
