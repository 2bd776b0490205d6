"""The auditor's pages: log search with filters and downloads, checkpoint history and a
consistency check between any two signed checkpoints, verified here."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.routes import log as log_routes
from api.ui import web
from api.ui.web import PortalCaller
from vault.errors import CustodyError, InvalidInput, NotFound
from vault.log import merkle
from vault.log.note import Verifier, verify_checkpoint
from vault.services import Context, auditlog, logviews

router = APIRouter()
PAGE = 50
HISTORY_PAGE = 100
FILTER_FIELDS = ("since", "until", "client", "actor", "action", "outcome")
EXPORT_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}


def _when(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field} is not a date and time", field=field) from None


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip()[:200] for k in FILTER_FIELDS}


def _chosen(ctx: Context, f: dict[str, str]) -> auditlog.EventFilter:
    return logviews.event_filter(
        ctx,
        client=f["client"] or None,
        actor=f["actor"] or None,
        action=f["action"] or None,
        outcome=f["outcome"] or None,
        since=_when(f["since"], "since"),
        until=_when(f["until"], "until"),
    )


@router.get("/log")
def log_search(request: Request, caller: PortalCaller, after: int | None = None) -> Response:
    f = _filters(request)
    with caller.read_transaction() as ctx:
        auditlog.require_reader(ctx)
        page = logviews.entries(ctx, _chosen(ctx, f), after=after, limit=PAGE)
    rows: list[dict[str, Any]] = []
    for item in page["entries"]:
        e = item["event"]
        rows.append(
            {
                "index": item["index"],
                "at": e["at"],
                "actor": e["actor"],
                "role": e["role"],
                "action": e["action"],
                "outcome": e["outcome"],
                "client": e["client_id"],
                "detail": orjson.dumps(e["detail"], option=orjson.OPT_SORT_KEYS).decode(),
            }
        )
    query = urlencode({k: v for k, v in f.items() if v})
    return web.render(
        request,
        "log.html",
        caller=caller,
        title="Log search",
        f=f,
        entries=rows,
        next_after=page["next_after"],
        query=query,
    )


@router.get("/log/download")
def log_download(request: Request, caller: PortalCaller, format: str = "jsonl") -> Response:
    """The filtered view as JSON Lines (verifiable offline) or CSV - the API's export."""
    if format not in EXPORT_TYPES:
        raise InvalidInput("format must be jsonl or csv", field="format")
    f = _filters(request)
    return log_routes.log_download(caller, format, lambda ctx: _chosen(ctx, f))


def check_consistency(ctx: Context, old: int, new: int) -> dict[str, Any]:
    """Verify, here, that the signed checkpoint of ``old`` events is a prefix of the one of
    ``new``: both signatures with the log key, then the RFC 9162 consistency proof."""
    if old > new:
        old, new = new, old
    try:
        verifier = Verifier.parse(auditlog.verifier_key(ctx.session))
        origin = auditlog.head(ctx.session).origin
        older = verify_checkpoint(auditlog.checkpoint_at(ctx.session, old).note, verifier, origin)
        newer = verify_checkpoint(auditlog.checkpoint_at(ctx.session, new).note, verifier, origin)
        proof = [base64.b64decode(h) for h in logviews.consistency(ctx, old, new)["hashes"]]
        merkle.verify_consistency(older.size, newer.size, older.root, newer.root, proof)
    except NotFound as exc:
        return {"ok": False, "message": f"cannot check: {exc.message}"}
    except CustodyError as exc:
        return {"ok": False, "message": f"sizes {old} and {new}: NOT consistent: {exc.message}"}
    return {
        "ok": True,
        "message": f"the log of {old} events is a prefix of the log of {new} events "
        f"(both checkpoints signed by the log key, {len(proof)} proof hashes verified)",
    }


@router.get("/checkpoints")
def checkpoints(
    request: Request,
    caller: PortalCaller,
    old: int | None = None,
    new: int | None = None,
    after: int | None = None,
) -> Response:
    """The signed checkpoints, a page at a time (oldest first), and a consistency check
    between any two of them by size."""
    with caller.read_transaction() as ctx:
        history = logviews.history(ctx, after=after, limit=HISTORY_PAGE)
        latest = auditlog.latest_checkpoint(ctx.session)
        first = auditlog.checkpoints(ctx.session, limit=1)
        result = check_consistency(ctx, old, new) if old is not None and new is not None else None
    return web.render(
        request,
        "checkpoints.html",
        caller=caller,
        title="Checkpoints",
        checkpoints=history,
        old=old if old is not None else (first[0].size if first else 0),
        new=new if new is not None else (latest.size if latest else 0),
        result=result,
        next_after=history[-1]["size"] if len(history) == HISTORY_PAGE else None,
    )
