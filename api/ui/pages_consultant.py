"""The consultant's pages: search across granted clients, check-out with a reason (the value
shown once), check-in with rotation, my open leases."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.ui import web
from api.ui.web import FormDep, PortalCaller
from vault.db.models import Client, Secret
from vault.errors import InvalidInput
from vault.services import checkout, clients
from vault.services import secrets as secrets_service

router = APIRouter()
CONSULTING = ("consultant", "admin")


@router.get("/search")
def search(request: Request, caller: PortalCaller, q: str = "") -> Response:
    web.require_role(caller, *CONSULTING)
    q = q.strip()[:200]
    results = []
    with caller.read_transaction() as ctx:
        for c in clients.list_clients(ctx):
            found = secrets_service.list_secrets(ctx, c.id, query=q or None)
            if found:
                results.append(
                    {
                        "client": {"id": c.id, "name": c.name},
                        "secrets": [secrets_service.describe(s) for s in found],
                    }
                )
    return web.render(request, "search.html", caller=caller, title="Search", q=q, results=results)


@router.post("/clients/{client}/secrets/{secret}/checkout")
def checkout_secret(
    client: str, secret: str, request: Request, form: FormDep, caller: PortalCaller
) -> Response:
    """The one page of the portal that shows a secret value (no-store, hidden after 30 s)."""
    with caller.transaction() as ctx:
        out = checkout.checkout(
            ctx,
            client,
            secret,
            reason=form.get("reason") or None,
            ticket=form.get("ticket") or None,
            totp_code=form.get("totp") or None,
        )
        revealed = out.secret.as_dict()
        lease = {"id": out.lease.id, "expires_at": out.lease.expires_at}
    return _revealed(request, caller, revealed, lease, "Checked out", "Your lease is open.")


def _revealed(
    request: Request,
    caller: PortalCaller,
    secret: dict[str, object],
    lease: dict[str, object] | None,
    heading: str,
    intro: str,
) -> Response:
    # Cache-Control: no-store is on every response (api/app.py SecurityHeaders).
    return web.render(
        request,
        "revealed.html",
        caller=caller,
        title=heading,
        heading=heading,
        intro=intro,
        secret=secret,
        lease=lease,
    )


@router.get("/leases")
def leases(request: Request, caller: PortalCaller) -> Response:
    web.require_role(caller, *CONSULTING)
    with caller.read_transaction() as ctx:
        rows = []
        for lease in checkout.list_leases(ctx, mine=True):
            secret = ctx.session.get(Secret, lease.secret_id)
            owner = ctx.session.get(Client, lease.client_id)
            rows.append(
                {
                    "id": lease.id,
                    "title": secret.title if secret else "?",
                    "client": owner.name if owner else "?",
                    "version": lease.version,
                    "expires_at": lease.expires_at,
                    "reason": lease.reason,
                    "ticket": lease.ticket,
                }
            )
    return web.render(request, "leases.html", caller=caller, title="My leases", leases=rows)


@router.post("/leases/{lease_id}/checkin")
def checkin(lease_id: str, request: Request, form: FormDep, caller: PortalCaller) -> Response:
    rotation = form.get("rotation", "generate")
    new_value = form.get("new_value") or None
    if rotation not in ("generate", "own", "none"):
        raise InvalidInput("choose how to rotate", field="rotation")
    if rotation == "own" and not new_value:
        raise InvalidInput("type the new value, or choose another option", field="new_value")
    with caller.transaction() as ctx:
        lease, version, generated = checkout.checkin(
            ctx,
            lease_id,
            new_value=new_value if rotation == "own" else None,
            generate=rotation == "generate",
        )
        title = ctx.session.get(Secret, lease.secret_id)
        name = title.title if title is not None else "the secret"
    if generated is not None:
        # The new value must reach the person who sets it at the vendor: shown once, like a
        # check-out result.
        return _revealed(
            request,
            caller,
            {"title": name, "value": generated},
            None,
            "Checked in",
            f"Version {version} is stored. Set this new value where {name} is used.",
        )
    done = f"version {version} stored" if version else "no rotation"
    return web.render(
        request,
        "notice.html",
        caller=caller,
        title="Checked in",
        message=f"{name} is checked in ({done}).",
        back="/ui/leases",
    )
