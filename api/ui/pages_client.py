"""A client's pages: readiness dashboard, inventory, verified access log, escrow and export."""

from __future__ import annotations

from datetime import date
from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.downloads import spooled_download
from api.routes.export import write_bundle
from api.ui import web
from api.ui.web import FormDep, PortalCaller
from vault.errors import CustodyError, InvalidInput
from vault.log import merkle
from vault.log.note import Verifier, verify_checkpoint
from vault.services import (
    Context,
    auditlog,
    clients,
    escrow,
    export,
    inventory,
    logviews,
    readiness,
)
from vault.services import secrets as secrets_service
from vault.services.readiness import EXPIRY_WINDOW

router = APIRouter(prefix="/clients")
INVENTORY_KINDS = ("vendor", "domain", "asset", "secret")
LOG_PAGE = 50


@router.get("")
def client_list(request: Request, caller: PortalCaller) -> Response:
    with caller.read_transaction() as ctx:
        rows = [{"id": c.id, "name": c.name} for c in clients.list_clients(ctx)]
    return web.render(request, "clients.html", caller=caller, title="Clients", clients=rows)


def _client(ctx: Context, client: str) -> dict[str, str]:
    found = clients.get_client(ctx, client)  # out of scope: NotFound, as in the API
    return {"id": found.id, "name": found.name}


def record_link(client_id: str, finding: readiness.Finding) -> str:
    if finding.record_kind in INVENTORY_KINDS:
        return f"/ui/clients/{client_id}/inventory#{finding.record_kind}-{finding.record_id}"
    return f"/ui/clients/{client_id}/escrow"


@router.get("/{client}")
def dashboard(client: str, request: Request, caller: PortalCaller) -> Response:
    with caller.read_transaction() as ctx:
        c = _client(ctx, client)
        report = readiness.readiness(ctx, c["id"])
    return web.render(
        request,
        "dashboard.html",
        caller=caller,
        title=f"{c['name']}: readiness",
        client=c,
        report=report,
        link=lambda f: record_link(c["id"], f),
    )


@router.get("/{client}/inventory")
def inventory_page(client: str, request: Request, caller: PortalCaller) -> Response:
    soon = date.today() + EXPIRY_WINDOW
    with caller.read_transaction() as ctx:
        c = _client(ctx, client)
        namer = inventory.vendor_namer(ctx)
        lists: dict[str, list[dict[str, Any]]] = {
            kind: [
                inventory.describe(kind, row, namer)
                for row in inventory.list_records(ctx, kind, c["id"], None)
            ]
            for kind in ("vendor", "domain", "asset")
        }
        found = [secrets_service.describe(s) for s in secrets_service.list_secrets(ctx, c["id"])]
    for d in lists["domain"]:
        d["soon"] = d["expires_on"] is not None and d["expires_on"] <= soon
    return web.render(
        request,
        "inventory.html",
        caller=caller,
        title=f"{c['name']}: inventory",
        client=c,
        vendors=lists["vendor"],
        domains=lists["domain"],
        assets=lists["asset"],
        secrets=found,
    )


def verified_page(ctx: Context, client_id: str, after: int | None) -> dict[str, Any]:
    """A page of the client's events, each inclusion proof checked here against the latest
    signed checkpoint, whose signature is checked with the log's verifier key."""
    chosen = logviews.event_filter(ctx, client=client_id)
    page = logviews.entries(ctx, chosen, after=after, limit=LOG_PAGE, proofs=True)
    note = page["checkpoint"]["note"] if page["checkpoint"] else None
    checkpoint = None
    if note is not None:
        try:
            verifier = Verifier.parse(auditlog.verifier_key(ctx.session))
            checkpoint = verify_checkpoint(note, verifier, auditlog.head(ctx.session).origin)
        except CustodyError:
            checkpoint = None
    rows = []
    for item in page["entries"]:
        event = item["event"]
        row = {k: event.get(k) for k in ("at", "actor", "action", "outcome")}
        row["index"] = item["index"]
        row["verified"], row["problem"] = False, "checkpoint not verified"
        if checkpoint is not None:
            try:
                merkle.verify_inclusion(
                    merkle.leaf_hash(logviews_b64(item["leaf"])),
                    item["index"],
                    checkpoint.size,
                    [logviews_b64(h) for h in item.get("proof", [])],
                    checkpoint.root,
                )
                row["verified"], row["problem"] = True, ""
            except CustodyError as exc:
                row["problem"] = exc.message
        rows.append(row)
    return {
        "entries": rows,
        "checkpoint": page["checkpoint"],
        "checkpoint_ok": checkpoint is not None,
        "next_after": page["next_after"],
    }


def logviews_b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text, validate=True)


@router.get("/{client}/log")
def client_log(
    client: str, request: Request, caller: PortalCaller, after: int | None = None
) -> Response:
    with caller.read_transaction() as ctx:
        c = _client(ctx, client)
        page = verified_page(ctx, c["id"], after)
    return web.render(
        request,
        "client_log.html",
        caller=caller,
        title=f"{c['name']}: access log",
        client=c,
        **page,
    )


def _escrow_page(
    request: Request, caller: PortalCaller, client: str, message: str | None = None
) -> Response:
    with caller.read_transaction() as ctx:
        c = _client(ctx, client)
        row = clients.get_client(ctx, c["id"])
        recipients = [clients.describe_recipient(r) for r in row.recipients]
        destinations = [escrow.describe(d) for d in escrow.list_destinations(ctx, c["id"])]
    return web.render(
        request,
        "escrow.html",
        caller=caller,
        title=f"{c['name']}: escrow",
        client=c,
        recipients=recipients,
        destinations=destinations,
        message=message,
        can_manage=caller.principal.role in ("client", "admin"),
    )


@router.get("/{client}/escrow")
def escrow_page(client: str, request: Request, caller: PortalCaller) -> Response:
    return _escrow_page(request, caller, client)


@router.post("/{client}/recipients")
def add_recipient(client: str, request: Request, form: FormDep, caller: PortalCaller) -> Response:
    with caller.transaction() as ctx:
        clients.add_recipient(
            ctx, client, form.get("recipient", "").strip(), label=form.get("label") or None
        )
    return _escrow_page(request, caller, client, "Recipient added; the client key is re-wrapped.")


@router.post("/{client}/recipients/{recipient}/remove")
def remove_recipient(
    client: str, recipient: str, request: Request, form: FormDep, caller: PortalCaller
) -> Response:
    with caller.transaction() as ctx:
        clients.remove_recipient(ctx, client, recipient)
    return _escrow_page(request, caller, client, "Recipient removed.")


@router.post("/{client}/export")
def export_download(client: str, request: Request, form: FormDep, caller: PortalCaller) -> Response:
    """Stream the client's export: the age bundle (or KDBX with the passphrase given), written
    to a spool with no write lock held, the ``client.export`` event committed, then sent - as
    ``POST /clients/{client}/export``."""
    web.require_role(caller, "admin", "client")  # as the export service decides
    fmt = form.get("format", "age-json")
    if fmt not in ("age-json", "kdbx"):
        raise InvalidInput("format must be age-json or kdbx", field="format")

    def write(spool: BinaryIO) -> dict[str, str]:
        with caller.transaction() as ctx:
            c = _client(ctx, client)
        if fmt == "kdbx":
            passphrase = form.get("kdbx_passphrase") or ""
            if len(passphrase) < 12:
                raise InvalidInput(
                    "a KDBX export needs a passphrase of at least 12 characters",
                    field="kdbx_passphrase",
                )
            keys = caller.state.keys
            assert keys is not None  # the seal guard answers 503 while sealed
            export.export_portable(
                caller.state.store,
                keys,
                caller.principal,
                c["id"],
                "kdbx",
                spool,
                passphrase=passphrase,
                source=request.client.host if request.client else None,
            )
        else:
            write_bundle(caller, c["id"], spool)
        suffix = "kdbx" if fmt == "kdbx" else "age"
        name = "".join(ch if ch.isalnum() else "-" for ch in c["name"]).strip("-").lower()
        return {
            "content-disposition": f'attachment; filename="custody-{name or "client"}.{suffix}"'
        }

    return spooled_download(write, "application/octet-stream")


# --- takeover -------------------------------------------------------------------------------


def _takeover_page(
    request: Request, caller: PortalCaller, client: str, message: str | None = None
) -> Response:
    from vault.services import takeover

    with caller.transaction() as ctx:
        c = _client(ctx, client)
        status = takeover.status(ctx, c["id"])
    return web.render(
        request,
        "takeover.html",
        caller=caller,
        title=f"{c['name']}: takeover",
        client=c,
        takeover=status.as_dict(),
        message=message,
        is_client=caller.principal.role == "client",
    )


@router.get("/{client}/takeover")
def takeover_page(client: str, request: Request, caller: PortalCaller) -> Response:
    """Where the client's takeover stands; for the client's own contacts, the button."""
    return _takeover_page(request, caller, client)


@router.post("/{client}/takeover")
def takeover_start(client: str, request: Request, form: FormDep, caller: PortalCaller) -> Response:
    """A client contact takes its records over (a fresh TOTP code; the same service as
    ``POST /clients/{client}/takeover``): an export to its escrow drops at once, a notice to
    the consultancy, and after the notice period the client owns its records."""
    from vault.services import takeover

    with caller.transaction() as ctx:
        status = takeover.start(ctx, client, totp_code=form.get("totp_code") or None)
    if status.owned_at is not None:
        text = "Done: your organisation now owns its records."
    else:
        text = f"Takeover started: it takes effect on {status.effective_at:%Y-%m-%d %H:%M} UTC."
    return _takeover_page(request, caller, client, text)


@router.post("/{client}/takeover/cancel")
def takeover_cancel(client: str, request: Request, form: FormDep, caller: PortalCaller) -> Response:
    from vault.services import takeover

    with caller.transaction() as ctx:
        takeover.cancel(ctx, client)
    return _takeover_page(request, caller, client, "Takeover called off.")
