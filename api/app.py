"""Builds the FastAPI application (and nothing else): routers, error table, middleware."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.ratelimit import RateLimit
from api.routes import (
    auth,
    clients,
    escrow,
    export,
    imports,
    inventory,
    keys,
    leases,
    reports,
    secrets,
    system,
    takeover,
    users,
)
from api.routes import log as log_routes
from api.routes import requests as requests_routes
from api.state import ServerState
from api.ui import router as ui_router
from api.ui import web as ui_web
from vault import __version__

log = logging.getLogger("custody.api")

MAX_BODY_BYTES = 1024 * 1024
#: an import upload (POST /clients/{client}/imports) may be larger: a KDBX of 10,000 entries is
#: a few MiB
MAX_IMPORT_BYTES = 64 * 1024 * 1024
#: routes that answer while the vault is sealed
SEALED_OK = ("/health", "/sys/", "/docs", "/redoc", "/openapi.json", "/ui/static/")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
UI_CSP = (b"content-security-policy", ui_web.UI_CSP.encode())
#: sent only on answers over TLS (a browser ignores it over plain HTTP anyway)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


#: FastAPI's own OpenTelemetry spans, metrics and logs, off: the vault's record of what
#: happened is its audit log, and an operator's OpenTelemetry set-up must not start receiving
#: request paths (client and secret ids) because it happens to be configured in the
#: environment. Off also spares every request FastAPI's look for a configured provider.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

#: threads that run sync routes (CUSTODY_THREADS; AnyIO's default is 40)
WORKER_THREADS = int(os.environ.get("CUSTODY_THREADS", "16"))
LEASE_SWEEP_SECONDS = 60.0
#: how often the checkpointer asks whether a checkpoint is due
CHECKPOINT_TICK_SECONDS = 1.0


def create_app(
    state: ServerState, *, sweep_leases: bool = True, checkpoints: bool = True
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # Few worker threads: the GIL runs one at a time anyway, and dozens of threads
        # contending for it (and for the database) only add switches and tail latency.
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        tasks = []
        if sweep_leases:
            tasks.append(asyncio.create_task(_sweep_leases(state)))
        if checkpoints:
            tasks.append(asyncio.create_task(_checkpointer(state)))
        yield
        for task in tasks:
            task.cancel()

    app = FastAPI(
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
        title="Custody",
        version=__version__,
        description="Credential and vendor escrow vault. Sign in at /auth/login; send the "
        "token as `Authorization: Bearer ...`. Only check-out returns secret values.",
    )
    app.state.custody = state
    errors.install(app)
    # FastAPI tries the routers in the order they were included, and every route of each, on
    # every request: the check-out path's two routers go first (behind the others, matching
    # cost a tenth of a check-out's CPU). No path of theirs is also a path of a router they
    # overtake (tests/api/test_routing.py), so the order decides nothing else; the API is still
    # documented in the order of API_ROUTERS.
    for router in sorted(API_ROUTERS, key=lambda router: router not in HOT_ROUTERS):
        # every route documents the one error shape, for each status it may answer with
        app.include_router(router, responses=errors.RESPONSES)
    _document_in_order(app, API_ROUTERS)
    app.include_router(ui_router)
    if not state.require_totp:
        log.warning(
            "TOTP IS OFF (CUSTODY_INSECURE_NO_TOTP=1): local development only - "
            "never run a real vault like this"
        )
    # Outermost first: limits and headers wrap everything, the seal guard wraps the routes.
    app.add_middleware(SealGuard, state=state)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    settings = state.store.settings
    app.add_middleware(
        RateLimit,
        per_minute=settings.rate_limit_per_minute,
        sign_in_per_minute=settings.sign_in_rate_limit_per_minute,
    )
    app.add_middleware(SecurityHeaders)
    return app


#: the JSON API's routers, in the order its documentation lists them
API_ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    auth.router,
    users.router,
    clients.router,
    secrets.router,
    leases.router,
    *inventory.routers,
    reports.router,
    takeover.router,
    escrow.router,
    export.router,
    imports.router,
    takeover.notices_router,
    keys.router,
    log_routes.router,
    requests_routes.router,
)
#: the routers of check-out and check-in: matched first
HOT_ROUTERS = (secrets.router, leases.router)


def _document_in_order(app: FastAPI, routers: tuple[APIRouter, ...]) -> None:
    """List the OpenAPI schema's paths in the order of ``routers``, whatever order they were
    included in."""
    generate = app.openapi
    order: dict[str, int] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                order.setdefault(route.path, len(order))

    def openapi() -> dict[str, Any]:
        schema = generate()
        paths = schema.get("paths", {})
        listed = sorted(paths, key=lambda path: order.get(path, len(order)))
        if list(paths) != listed:
            schema["paths"] = {path: paths[path] for path in listed}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _sweep_leases(state: ServerState) -> None:
    """End expired leases now and then (exclusive holds already lapse at their expiry)."""
    from starlette.concurrency import run_in_threadpool

    from vault.services import Principal, checkout, escrow, takeover

    sweeper = Principal(name="system:lease-sweeper", role="system")
    while True:
        await asyncio.sleep(LEASE_SWEEP_SECONDS)
        if state.sealed:
            continue
        try:

            def sweep() -> int:
                with state.store.context(sweeper, state.keys) as ctx:
                    done = checkout.expire_leases(ctx) + takeover.complete_due(ctx)
                if state.keys is not None:  # due escrow drops, each recorded on its own
                    done += len(escrow.run_due(state.store, state.keys))
                return done

            await run_in_threadpool(sweep)
        except Exception:  # noqa: BLE001 - keep sweeping; say what went wrong
            log.exception("lease sweep failed")


async def _checkpointer(state: ServerState) -> None:
    """Sign a log checkpoint when one is due: every CUSTODY_CHECKPOINT_EVENTS events, or after
    CUSTODY_CHECKPOINT_SECONDS if the log grew at all - and once as soon as the vault is
    unsealed (at start, or by POST /sys/unseal), so the latest events are covered at once.

    Signing needs the unsealed log key, so nothing happens while sealed. With several worker
    processes each runs one; signing is idempotent (the same size signs the same note)."""
    from starlette.concurrency import run_in_threadpool

    settings = state.store.settings
    signed_for: object = None  # the key ring we last signed with: a new one means an unseal
    while True:
        keys = state.keys
        if keys is not None:
            try:
                fresh = keys is not signed_for
                await run_in_threadpool(
                    _checkpoint_if_due,
                    state,
                    force=fresh,
                    every_events=settings.checkpoint_events,
                    every_seconds=settings.checkpoint_seconds,
                )
                signed_for = keys
            except Exception:  # noqa: BLE001 - keep checkpointing; say what went wrong
                log.exception("log checkpoint failed")
        await asyncio.sleep(CHECKPOINT_TICK_SECONDS)


def _checkpoint_if_due(
    state: ServerState, *, force: bool, every_events: int, every_seconds: float
) -> None:
    from datetime import UTC, datetime

    from vault.services import Principal, auditlog

    keys = state.keys
    if keys is None:
        return
    if not force:
        # Asked on a read session first: on SQLite it takes no write lock, once a second.
        with state.store.read_session() as session, session.begin():
            due = auditlog.checkpoint_due(
                session,
                every_events=every_events,
                every_seconds=every_seconds,
                now=datetime.now(UTC),
            )
        if not due:
            return
    signer = Principal(name="system:checkpointer", role="system")
    with state.store.context(signer, keys) as ctx:
        auditlog.sign(ctx.session, ctx.keys)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in ("/docs", "/redoc")
        portal = scope["path"] == "/ui" or scope["path"].startswith("/ui/")
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if portal:  # the portal's own pages: its scripts and styles, nothing inline
                    headers.append(UI_CSP)
                elif not docs:  # the interactive docs page loads its own scripts
                    headers.append(API_CSP)
                if tls:
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        if scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/imports"):
            limit = max(limit, MAX_IMPORT_BYTES)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(scope, send, limit)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await _too_large(scope, send, limit)


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a streamed (chunked) body passes the limit. An HTTP
    exception, so FastAPI's body parsing lets it through (it turns any other exception into
    400 "error parsing the body") and the error table answers 413 wherever it surfaces."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    if scope["path"] == "/ui" or scope["path"].startswith("/ui/"):
        await _html(send, 413, ui_web.TOO_LARGE_PAGE)
    else:
        await errors.send_error(send, 413, "too_large", f"request body over {limit} bytes")


class SealGuard:
    """While sealed, every route but health, unseal and the docs answers 503."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.state.sealed
            and not scope["path"].startswith(SEALED_OK)
        ):
            if scope["path"] == "/ui" or scope["path"].startswith("/ui/"):
                await _html(send, 503, ui_web.SEALED_PAGE)
                return
            await errors.send_error(
                send,
                503,
                "sealed",
                "the vault is sealed: unseal it (POST /sys/unseal or restart with the "
                "passphrase) before using this route",
            )
            return
        await self.app(scope, receive, send)


async def _html(send: Send, status: int, page: str) -> None:
    body = page.encode()
    headers: list[Any] = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
