"""Credential requests in the portal: a consultant makes a one-time link; a signed-in contact
of the client opens it and stores the credential (vault/services/requests.py)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import StateDep, caller_for_token
from api.ui import web
from api.ui.web import FormDep, PortalCaller
from vault.errors import Gone, InvalidInput, Unauthenticated
from vault.services import clients, inventory
from vault.services import requests as requests_service
from vault.services.secrets import KINDS

router = APIRouter()
MAX_HOURS = int(requests_service.MAX_TTL.total_seconds() // 3600)


def _page(
    request: Request, caller: PortalCaller, client: str, created: dict[str, object] | None = None
) -> Response:
    with caller.transaction() as ctx:
        found = clients.get_client(ctx, client)
        c = {"id": found.id, "name": found.name}
        rows = [requests_service.describe(r) for r in requests_service.list_requests(ctx, c["id"])]
        can_request = caller.principal.role in requests_service.REQUESTERS
        vendors = (
            [v.name for v in inventory.list_records(ctx, "vendor", c["id"], None)]
            if can_request
            else []
        )
    return web.render(
        request,
        "requests.html",
        caller=caller,
        title=f"{c['name']}: requests",
        client=c,
        requests=rows,
        created=created,
        can_request=can_request,
        kinds=KINDS,
        vendors=vendors,
        max_hours=MAX_HOURS,
    )


@router.get("/clients/{client}/requests")
def requests_page(client: str, request: Request, caller: PortalCaller) -> Response:
    return _page(request, caller, client)


@router.post("/clients/{client}/requests")
def create_request(client: str, request: Request, form: FormDep, caller: PortalCaller) -> Response:
    try:
        hours = int(form.get("ttl_hours") or 72)
    except ValueError:
        raise InvalidInput("the expiry must be a number of hours", field="ttl_hours") from None
    with caller.transaction() as ctx:
        made = requests_service.create(
            ctx,
            client,
            title=form.get("title", ""),
            kind=form.get("kind", "login"),
            vendor=form.get("vendor") or None,
            note=form.get("note") or None,
            ttl=timedelta(hours=hours),
        )
        created = {
            "url": str(request.base_url).rstrip("/") + f"/ui/r/{made.token}",
            "expires_at": made.request.expires_at,
        }
    return _page(request, caller, client, created)  # no-store, like every response


@router.post("/clients/{client}/requests/{request_id}/revoke")
def revoke_request(
    client: str, request_id: str, request: Request, form: FormDep, caller: PortalCaller
) -> Response:
    with caller.transaction() as ctx:
        requests_service.revoke(ctx, client, request_id)
    return _page(request, caller, client)


def _link_caller(request: Request, state: StateDep, token: str) -> PortalCaller:
    """A dead link is 410 for anyone; a live one needs a signed-in contact of the client
    (anyone else is sent to sign in, and comes back here)."""
    with state.store.read_session() as session, session.begin():
        if requests_service.link_is_dead(session, token):
            raise Gone("this request link has been used, revoked or has expired")
    return caller_for_token(request, state, web.session_token(request), full=True)


@router.get("/r/{token}")
def open_link(token: str, request: Request, state: StateDep) -> Response:
    try:
        caller = _link_caller(request, state, token)
    except Unauthenticated:
        return web.redirect("/ui/login?next=" + quote(f"/ui/r/{token}", safe="/"))
    with caller.read_transaction() as ctx:
        row = requests_service.open_request(ctx, token)
        found = clients.get_client(ctx, row.client_id)
        vendor = inventory.vendor_name(ctx, row.vendor_id)
        req = requests_service.describe(row, vendor)
    return web.render(
        request,
        "request_fill.html",
        caller=caller,
        title=f"Requested: {req['title']}",
        req=req,
        client={"id": found.id, "name": found.name},
        vendor=vendor,
        token=token,
    )


@router.post("/r/{token}")
def fulfil_link(token: str, request: Request, form: FormDep, state: StateDep) -> Response:
    caller = _link_caller(request, state, token)
    with caller.transaction() as ctx:
        secret = requests_service.fulfil(
            ctx, token, value=form.get("value", ""), username=form.get("username") or None
        )
        title = secret.title
    return web.render(
        request,
        "notice.html",
        caller=caller,
        title="Stored",
        message=f"Thank you: {title} is stored encrypted in the vault. This link no longer works.",
        back="/ui/",
    )
