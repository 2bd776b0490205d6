"""The portal's plumbing: session cookie, CSRF tokens, templates and the signed-in caller.

The portal signs people in with the same sign-in service as ``POST /auth/login`` and keeps the
resulting session token in a cookie instead of an ``Authorization`` header; every request
rebuilds the caller with :func:`api.deps.caller_for_token`, so the portal and the JSON API
share one authentication path and one set of authorization rules (those of the services).

* Session cookie ``custody_session``: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the
  request came over HTTPS, path ``/ui``. The server stores only the token's SHA-256, with an
  expiry; sign-out revokes it.
* CSRF: every POST form carries ``csrf``. Signed in, it is an HMAC of the session token
  (a synchronizer token tied to the session: a page on another origin can neither read the
  cookie nor the token); before sign-in it must equal a random pre-session cookie. Every POST
  is checked before its route runs (:data:`FormDep`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from api.deps import Caller, StateDep, caller_for_token
from vault.errors import Forbidden

SESSION_COOKIE = "custody_session"
PRESESSION_COOKIE = "custody_presession"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf"
#: the portal's Content-Security-Policy: nothing inline, nothing from elsewhere
UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

#: what the portal shows while the vault is sealed (no template: the app may not be usable)
SEALED_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>Sealed · Custody</title><link rel="stylesheet" href="/ui/static/portal.css">'
    '</head><body><main id="main"><h1>The vault is sealed</h1>'
    '<p class="notice">An operator must unseal it before anyone can sign in. '
    "Try again later.</p></main></body></html>"
)
TOO_LARGE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>Too large · Custody</title><link rel="stylesheet" href="/ui/static/portal.css">'
    '</head><body><main id="main"><h1>Too large</h1>'
    '<p class="notice error">That form was larger than the server accepts (1 MiB). '
    '<a href="/ui/">Back to the start page</a></p></main></body></html>'
)


def _fmt_time(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return str(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return "" if value is None else str(value)


TEMPLATES = Environment(
    loader=PackageLoader("api.ui", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["when"] = _fmt_time


class UnsafeForm(Exception):
    """A POST without the right CSRF token (rendered as a 403 page)."""


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def csrf_token(request: Request) -> str:
    """The token the forms of this page must carry."""
    raw = session_token(request)
    if raw is not None:
        return _derive(raw)
    existing = request.cookies.get(PRESESSION_COOKIE)
    if existing:
        return existing
    fresh: str | None = getattr(request.state, "presession", None)
    if fresh is None:
        fresh = pysecrets.token_urlsafe(32)
        request.state.presession = fresh
    return fresh


def _derive(raw: str) -> str:
    return hmac.new(raw.encode(), b"custody-portal-csrf-v1", hashlib.sha256).hexdigest()


def check_csrf(request: Request, submitted: str | None) -> None:
    if not submitted:
        raise UnsafeForm
    raw = session_token(request)
    expected = _derive(raw) if raw is not None else request.cookies.get(PRESESSION_COOKIE)
    if not expected or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise UnsafeForm


async def checked_form(request: Request) -> dict[str, str]:
    """The submitted form as plain strings, after its CSRF token checked out."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    check_csrf(request, values.pop(CSRF_FIELD, None))
    return values


FormDep = Annotated[dict[str, str], Depends(checked_form)]


def set_cookie(response: Any, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Any, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request)
    )


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page (for the navigation)."""

    username: str
    role: str
    client_id: str | None


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    caller: Caller | None = None,
    **values: Any,
) -> HTMLResponse:
    viewer = None
    if caller is not None:
        viewer = Viewer(
            username=caller.principal.name.removeprefix("user:"),
            role=caller.principal.role,
            client_id=next(iter(caller.principal.clients))
            if caller.principal.role == "client" and caller.principal.clients
            else None,
        )
    html = TEMPLATES.get_template(template).render(
        csrf=csrf_token(request), viewer=viewer, path=request.url.path, **values
    )
    response = HTMLResponse(html, status_code=status)
    fresh = getattr(request.state, "presession", None)
    if fresh is not None and session_token(request) is None:
        set_cookie(response, request, PRESESSION_COOKIE, fresh, max_age=3600)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def portal_caller(request: Request, state: StateDep) -> Caller:
    """The signed-in person of a full session (else Unauthenticated: the sign-in page)."""
    return caller_for_token(request, state, session_token(request), full=True)


def enrolling_portal_caller(request: Request, state: StateDep) -> Caller:
    return caller_for_token(request, state, session_token(request), full=False)


PortalCaller = Annotated[Caller, Depends(portal_caller)]
EnrollingPortalCaller = Annotated[Caller, Depends(enrolling_portal_caller)]


def require_role(caller: Caller, *roles: str) -> None:
    if caller.principal.role not in roles:
        raise Forbidden(f"this page is not for a {caller.principal.role}")
