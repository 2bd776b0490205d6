"""Sign-in (password and TOTP), TOTP enrolment with a QR code, sign-out, the start page and
the static files."""

from __future__ import annotations

from importlib import resources

import segno
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from api.deps import StateDep, current_user, source_of
from api.ui import web
from api.ui.web import EnrollingPortalCaller, FormDep, PortalCaller
from vault.db.models import ApiToken
from vault.errors import InvalidInput, NotFound
from vault.services import Principal, users
from vault.services.users import LOGIN_FAILED

router = APIRouter()
STATIC = {"portal.css": "text/css; charset=utf-8", "portal.js": "text/javascript; charset=utf-8"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound("no such file")
    data = resources.files("api.ui").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC[name])


def _safe_next(value: str | None) -> str:
    """Only a path of this portal (no scheme, no host): never an open redirect."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


@router.get("/")
def home(caller: PortalCaller) -> Response:
    p = caller.principal
    if p.role == "client" and p.clients:
        return web.redirect(f"/ui/clients/{next(iter(p.clients))}")
    if p.role == "auditor":
        return web.redirect("/ui/log")
    if p.role == "consultant":
        return web.redirect("/ui/search")
    return web.redirect("/ui/clients")


@router.get("/login")
def login_page(request: Request, next: str | None = None, enrolled: bool = False) -> Response:
    message = "Authenticator set up. Sign in with a new code." if enrolled else None
    return web.render(
        request,
        "login.html",
        title="Sign in",
        next=_safe_next(next),
        username="",
        message=message,
        failed=False,
    )


@router.post("/login")
def login(request: Request, form: FormDep, state: StateDep) -> Response:
    anonymous = Principal(name="anonymous", role="anonymous")
    username = form.get("username", "")[:200]
    with state.store.context(anonymous, state.keys, source=source_of(request)) as ctx:
        result = users.login(
            ctx,
            username,
            form.get("password", ""),
            form.get("totp") or None,
            require_totp=state.require_totp,
        )
    if not result.ok or result.token is None or result.expires_at is None:
        return web.render(
            request,
            "login.html",
            status=401,
            title="Sign in",
            next=_safe_next(form.get("next")),
            username=username,
            message=LOGIN_FAILED,
            failed=True,
        )
    target = "/ui/totp" if result.totp_enrollment_required else _safe_next(form.get("next"))
    response = web.redirect(target)
    lifetime = users.ENROLL_TTL if result.totp_enrollment_required else users.SESSION_TTL
    web.set_cookie(
        response, request, web.SESSION_COOKIE, result.token, int(lifetime.total_seconds())
    )
    web.clear_cookie(response, request, web.PRESESSION_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, form: FormDep, caller: EnrollingPortalCaller) -> Response:
    """Revoke this session's token (server side) and drop the cookie."""
    with caller.transaction() as ctx:
        assert ctx.token_id is not None
        users.revoke_token(ctx, ctx.token_id, owner=current_user(ctx))
    response = web.redirect("/ui/login")
    web.clear_cookie(response, request, web.SESSION_COOKIE)
    return response


@router.get("/totp")
def totp_page(request: Request, caller: EnrollingPortalCaller) -> Response:
    """The pending authenticator seed as a QR code (a new one if none), until it is confirmed
    with a first code."""
    with caller.transaction() as ctx:
        user = current_user(ctx)
        if user.totp_confirmed_at is not None:
            return web.redirect("/ui/")
        uri = users.pending_totp_uri(ctx, user) or users.begin_totp_enrollment(ctx, user)
    return _totp_form(request, caller, uri)


def _totp_form(
    request: Request, caller: EnrollingPortalCaller, uri: str, message: str | None = None
) -> Response:
    from urllib.parse import parse_qs, urlsplit

    qr = segno.make(uri, error="m")
    svg = qr.svg_inline(scale=5, dark="#000", light="#fff", title="Authenticator QR code")
    manual = parse_qs(urlsplit(uri).query).get("secret", [""])[0]
    return web.render(
        request,
        "totp.html",
        status=422 if message else 200,
        caller=caller,
        title="Set up your authenticator",
        qr_svg=Markup(svg),  # noqa: S704 - segno's own SVG
        manual_key=manual,
        message=message,
    )


@router.post("/totp")
def totp_confirm(request: Request, form: FormDep, caller: EnrollingPortalCaller) -> Response:
    try:
        with caller.transaction() as ctx:
            user = current_user(ctx)
            users.confirm_totp(ctx, user, form.get("code", ""))
            if ctx.token_id is not None:
                token = ctx.session.get(ApiToken, ctx.token_id)
                if token is not None and token.scope == "enroll":
                    users.revoke_token(ctx, token.id, owner=user)
    except InvalidInput as exc:
        with caller.transaction() as ctx:
            user = current_user(ctx)
            if user.totp_confirmed_at is not None:
                return web.redirect("/ui/")
            uri = users.pending_totp_uri(ctx, user) or users.begin_totp_enrollment(ctx, user)
        return _totp_form(request, caller, uri, message=exc.message)
    response = web.redirect("/ui/login?enrolled=1")
    web.clear_cookie(response, request, web.SESSION_COOKIE)
    return response
