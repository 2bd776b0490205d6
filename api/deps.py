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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from api.state import ServerState
from vault.db.models import User
from vault.errors import CustodyError, Forbidden, Unauthenticated
from vault.services import Context, Principal, audit
from vault.services.users import (
    Authenticated,
    authenticate_principal,
    touch_due,
    touch_token,
    well_formed_token,
)

log = logging.getLogger("custody.api")
_T = TypeVar("_T")
ANONYMOUS = Principal(name="anonymous", role="anonymous")
_AUDITED_PARAMS = ("client", "secret", "lease_id", "username", "name", "recipient")


async def get_state(request: Request) -> ServerState:
    # async: a sync dependency would cost a hop to a worker thread and back
    state: ServerState = request.app.state.custody
    return state


StateDep = Annotated[ServerState, Depends(get_state)]


def source_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@dataclass
class Caller:
    """A request with a bearer token: who, from where, with which token.

    The token is checked for shape when the request arrives (a missing or malformed one is
    refused at once), and against the database - token, user and grants in one statement - on
    the worker thread that runs the route, right before its transaction, so a request costs
    one hop to a worker thread, not one per dependency."""

    state: ServerState
    request: Request
    full: bool = True
    #: the raw token when it did not come in the Authorization header (the portal's cookie)
    token: str | None = field(default=None, repr=False)
    _auth: Authenticated | None = None

    def authenticate(self) -> Authenticated:
        if self._auth is None:
            raw = self.token if self.token is not None else _bearer(self.request)
            try:
                with self.state.store.read_connection() as conn:
                    found = authenticate_principal(conn, raw)
                if self.full and found.scope != "full":
                    raise Forbidden("finish TOTP enrolment first", field="totp")
            except CustodyError as exc:
                record_refusal(self.request, self.state, None, exc)
                raise
            self._auth = found
        return self._auth

    @property
    def principal(self) -> Principal:
        return self.authenticate().principal

    @property
    def token_id(self) -> str:
        return self.authenticate().token_id

    @contextmanager
    def _refusals_recorded(self, principal: Principal) -> Iterator[None]:
        """A refusal (a Custody error) raised in the block is recorded, then raised on."""
        try:
            yield
        except CustodyError as exc:
            record_refusal(self.request, self.state, principal, exc)
            raise

    def before_transaction(self, check: Callable[[Connection, Principal], _T]) -> _T:
        """``check(connection, principal)`` on a read connection, before the request's write
        transaction: for slow checks that need no lock (a refusal is recorded as in the
        transaction)."""
        auth = self.authenticate()
        with self._refusals_recorded(auth.principal), self.state.store.read_connection() as conn:
            return check(conn, auth.principal)

    @contextmanager
    def transaction(self) -> Iterator[Context]:
        auth = self.authenticate()
        with (
            self._refusals_recorded(auth.principal),
            self.state.store.context(
                auth.principal, self.state.keys, source=source_of(self.request)
            ) as ctx,
        ):
            ctx.token_id = auth.token_id
            touch_token(ctx, auth.token_id, auth.last_used_at)
            yield ctx

    @contextmanager
    def read_transaction(self) -> Iterator[Context]:
        """As :meth:`transaction`, for a request that only reads: a read-only transaction
        outside the group commit (Store.read_context); its audit events, and the token's
        last use when due, are written right after it."""
        auth = self.authenticate()
        then = None
        if touch_due(auth.last_used_at):

            def then(ctx: Context) -> None:
                touch_token(ctx, auth.token_id, auth.last_used_at)

        with (
            self._refusals_recorded(auth.principal),
            self.state.store.read_context(
                auth.principal, self.state.keys, source=source_of(self.request), then=then
            ) as ctx,
        ):
            ctx.token_id = auth.token_id
            yield ctx


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
    the portal's session cookie): one check for both faces. Authenticates now (call it on a
    worker thread); raises the refusal, recorded, if the token does not hold."""
    caller = Caller(state=state, request=request, full=full, token=raw)
    caller.authenticate()
    return caller


async def _caller(request: Request, state: ServerState, *, full: bool) -> Caller:
    if not well_formed_token(_bearer(request)):
        exc = Unauthenticated("sign in first (missing, expired or revoked token)")
        await run_in_threadpool(record_refusal, request, state, None, exc)
        raise exc
    return Caller(state=state, request=request, full=full)


# The state comes from the app here rather than through StateDep: every API request resolves
# these, and FastAPI resolves a sub-dependency with a whole step of its own (query string,
# cookies, cache key).


async def full_caller(request: Request) -> Caller:
    return await _caller(request, request.app.state.custody, full=True)


async def enrolling_caller(request: Request) -> Caller:
    """Also accepts the short-lived token of a first sign-in, to enrol TOTP."""
    return await _caller(request, request.app.state.custody, full=False)


CallerDep = Annotated[Caller, Depends(full_caller)]
EnrollingCallerDep = Annotated[Caller, Depends(enrolling_caller)]


def current_user(ctx: Context) -> User:
    user = ctx.session.get(User, ctx.principal.user_id)
    assert user is not None
    return user
