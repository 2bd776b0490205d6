"""Request dependencies, in one place: the server state and the authenticated caller.

:data:`CallerDep` authenticates the bearer token in a short transaction of its own and rebuilds
the caller's principal (role, client scope) from the database - on every request, so a removed
grant or a disabled user is refused on the very next one.

A route then does its work inside ``with caller.transaction() as ctx:``. The transaction begins
and ends inside the route function, in one worker thread. (A dependency with ``yield`` would
hold the transaction - on SQLite, the write lock - across FastAPI's hops between worker
threads; under load every thread can end up waiting for a lock whose holder waits for a
thread.) If the work fails with a Custody error, the transaction is rolled back and the refusal
is recorded as an audit event of its own, so denied attempts are in the log too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from api.state import ServerState
from vault.db.models import User
from vault.errors import CustodyError, Forbidden
from vault.services import Context, Principal, audit
from vault.services.users import authenticate, principal_for, touch_token

log = logging.getLogger("custody.api")
ANONYMOUS = Principal(name="anonymous", role="anonymous")
_AUDITED_PARAMS = ("client", "secret", "lease_id", "username", "name", "recipient")


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.custody
    return state


StateDep = Annotated[ServerState, Depends(get_state)]


def source_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who, from where, with which token."""

    state: ServerState
    request: Request
    principal: Principal
    token_id: str | None
    token_last_used: datetime | None = None

    @contextmanager
    def transaction(self) -> Iterator[Context]:
        try:
            with self.state.store.context(
                self.principal, self.state.keys, source=source_of(self.request)
            ) as ctx:
                ctx.token_id = self.token_id
                if self.token_id is not None:
                    touch_token(ctx, self.token_id, self.token_last_used)
                yield ctx
        except CustodyError as exc:
            record_refusal(self.request, self.state, self.principal, exc)
            raise


def record_refusal(
    request: Request, state: ServerState, principal: Principal | None, exc: CustodyError
) -> None:
    route = request.scope.get("route")
    action = f"{request.method} {getattr(route, 'path', request.url.path)}"
    params = {k: v for k, v in request.path_params.items() if k in _AUDITED_PARAMS}
    try:
        with state.store.context(principal or ANONYMOUS, None, source=source_of(request)) as ctx:
            audit.record(
                ctx, "api.refused", outcome="denied", error=exc.code, route=action, **params
            )
    except Exception:  # noqa: BLE001 - never let auditing a refusal turn into a 500
        log.exception("could not record a refusal")


def caller_for_token(
    request: Request, state: ServerState, raw: str | None, *, full: bool
) -> Caller:
    """The caller behind a raw session token, wherever it came from (the API's bearer header,
    the portal's session cookie): one check for both faces."""
    try:
        with state.store.read_session() as session, session.begin():
            found = authenticate(session, raw)
            if full and found.token.scope != "full":
                raise Forbidden("finish TOTP enrolment first", field="totp")
            principal = principal_for(session, found.user)
            return Caller(
                state=state,
                request=request,
                principal=principal,
                token_id=found.token.id,
                token_last_used=found.token.last_used_at,
            )
    except CustodyError as exc:
        record_refusal(request, state, None, exc)
        raise


def _caller(request: Request, state: ServerState, *, full: bool) -> Caller:
    return caller_for_token(request, state, _bearer(request), full=full)


def full_caller(request: Request, state: StateDep) -> Caller:
    return _caller(request, state, full=True)


def enrolling_caller(request: Request, state: StateDep) -> Caller:
    """Also accepts the short-lived token of a first sign-in, to enrol TOTP."""
    return _caller(request, state, full=False)


CallerDep = Annotated[Caller, Depends(full_caller)]
EnrollingCallerDep = Annotated[Caller, Depends(enrolling_caller)]


def current_user(ctx: Context) -> User:
    user = ctx.session.get(User, ctx.principal.user_id)
    assert user is not None
    return user
