"""Request dependencies, in one place: the server state, the caller's principal, and the
transaction every route runs in.

A route that takes :data:`ContextDep` runs inside one database transaction that starts with
authenticating the bearer token - the principal (role, client scope) is rebuilt from the
database on every request, so a removed grant or a disabled user is refused on the very next
one. If the route fails with a Custody error, the transaction is rolled back and the refusal is
recorded as its own audit event, so denied attempts are in the log too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from api.state import ServerState
from vault.db.models import User
from vault.errors import CustodyError, Forbidden
from vault.services import Context, Principal, audit
from vault.services.users import authenticate, principal_for


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.custody
    return state


StateDep = Annotated[ServerState, Depends(get_state)]


def source_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _context(request: Request, state: ServerState, *, scope: str) -> Iterator[Context]:
    store = state.store
    source = source_of(request)
    session = store.session()
    principal: Principal | None = None
    try:
        with session.begin():
            found = authenticate(session, _bearer(request))
            if scope == "full" and found.token.scope != "full":
                raise Forbidden("finish TOTP enrolment first", field="totp")
            principal = principal_for(session, found.user)
            yield Context(
                session=session,
                actor=principal.name,
                keys=state.keys,
                principal=principal,
                source=source,
                token_id=found.token.id,
            )
    except CustodyError as exc:
        _record_refusal(request, state, principal, source, exc)
        raise
    finally:
        session.close()


def _record_refusal(
    request: Request,
    state: ServerState,
    principal: Principal | None,
    source: str | None,
    exc: CustodyError,
) -> None:
    route = request.scope.get("route")
    action = f"{request.method} {getattr(route, 'path', request.url.path)}"
    who = principal or Principal(name="anonymous", role="anonymous")
    try:
        with state.store.context(who, None, source=source) as ctx:
            audit.record(
                ctx,
                "api.refused",
                outcome="denied",
                error=exc.code,
                route=action,
                **{
                    k: v
                    for k, v in request.path_params.items()
                    if k in ("client", "title", "lease_id", "username", "name")
                },
            )
    except Exception:  # noqa: BLE001 - never let auditing a refusal turn into a 500
        import logging

        logging.getLogger("custody.api").exception("could not record a refusal")


def full_context(request: Request, state: StateDep) -> Iterator[Context]:
    yield from _context(request, state, scope="full")


def enroll_context(request: Request, state: StateDep) -> Iterator[Context]:
    """Also accepts the short-lived token of a first sign-in, to enrol TOTP."""
    yield from _context(request, state, scope="enroll")


# scope="function": the transaction commits before the response is sent, so an acknowledged
# write is a durable write.
ContextDep = Annotated[Context, Depends(full_context, scope="function")]
EnrollContextDep = Annotated[Context, Depends(enroll_context, scope="function")]


def current_user(ctx: Context) -> User:
    user = ctx.session.get(User, ctx.principal.user_id)
    assert user is not None
    return user
