"""The transparency log: its key, signed checkpoints, proofs, entries and exports.

docs/audit-log.md specifies the log; docs/api.md ("The transparency log") the routes. Who may
read what is decided in :mod:`vault.services.logviews` and :mod:`vault.services.auditlog`:
key, checkpoint and consistency proofs reveal no event and are open to every signed-in role;
entries, inclusion proofs and exports are for admins, auditors (within their scope) and client
contacts (their own client); the checkpoint history for admins and auditors.

Reading the log is not itself an audit event. A watcher polls ``GET /log/checkpoint``; if each
visit appended an event, the log would grow on every visit and every visit would find a new
checkpoint to prove - the log would record its own readers instead of what happened to the
vault. (A *refused* read is still recorded as ``api.refused``, like every refusal.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from api.deps import CallerDep
from api.downloads import spooled_download
from vault.services import Context, auditlog, logviews
from vault.services.auditlog import EventFilter

router = APIRouter(prefix="/log", tags=["log"])

Index = Annotated[int, Query(ge=0, le=logviews.MAX_INDEX)]
OptionalIndex = Annotated[int | None, Query(ge=0, le=logviews.MAX_INDEX)]
Limit = Annotated[int, Query(ge=1, le=auditlog.MAX_PAGE)]
#: an export is written to this much memory, then to a temporary file, before it is sent
EXPORT_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}


class Filters:
    """The event filters shared by entries and export (query parameters)."""

    def __init__(
        self,
        client: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> None:
        self.fields: dict[str, Any] = {
            "client": client,
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "since": since,
            "until": until,
        }


FiltersDep = Annotated[Filters, Depends()]


@router.get("/key")
def key(caller: CallerDep) -> dict[str, Any]:
    """The log's origin and verifier key (``name+hash+base64``): pin it once. ``handovers``
    lists each log-key rotation's checkpoint, signed by the old key and the new one."""
    with caller.read_transaction() as ctx:
        return logviews.key_info(ctx)


@router.get(
    "/checkpoint",
    # Response (no media type of its own), so the error answers are documented as the JSON
    # they are; the note itself is plain text.
    response_class=Response,
    responses={
        200: {
            "description": "A signed checkpoint note",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def checkpoint(caller: CallerDep, size: OptionalIndex = None) -> PlainTextResponse:
    """The latest signed checkpoint note (signed now if the log grew since), or the one of tree
    ``size``."""
    with caller.read_transaction() as ctx:
        note = logviews.checkpoint(ctx, size).note
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get("/checkpoints")
def checkpoints(
    caller: CallerDep, after: OptionalIndex = None, limit: Limit = 100
) -> list[dict[str, Any]]:
    """Signed checkpoints in order of size (admin, auditor)."""
    with caller.read_transaction() as ctx:
        return logviews.history(ctx, after=after, limit=limit)


@router.get("/proof/inclusion")
def inclusion_proof(caller: CallerDep, index: Index, size: OptionalIndex = None) -> dict[str, Any]:
    """Audit path of an event you may see, against tree ``size`` (default: the latest
    checkpoint's)."""
    with caller.read_transaction() as ctx:
        return logviews.inclusion(ctx, index, size)


@router.get("/proof/consistency")
def consistency_proof(caller: CallerDep, old: Index, new: Index) -> dict[str, Any]:
    """Proof that the tree of ``old`` events is a prefix of the tree of ``new`` events."""
    with caller.read_transaction() as ctx:
        return logviews.consistency(ctx, old, new)


@router.get("/entries")
def entries(
    caller: CallerDep,
    filters: FiltersDep,
    after: OptionalIndex = None,
    limit: Limit = 100,
    proofs: bool = False,
) -> dict[str, Any]:
    """A page of the events you may see: index, fields and leaf bytes (base64); with
    ``proofs=true`` also each event's inclusion proof against the returned checkpoint."""
    with caller.read_transaction() as ctx:
        chosen = logviews.event_filter(ctx, **filters.fields)
        return logviews.entries(ctx, chosen, after=after, limit=limit, proofs=proofs)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The export, as a download",
            "content": {
                "application/jsonl": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def export(
    caller: CallerDep, filters: FiltersDep, format: Literal["jsonl", "csv"] = "jsonl"
) -> StreamingResponse:
    """Your view of the log as a download: JSON Lines (verifiable offline with
    ``custody audit verify``) or CSV for a SIEM."""
    return log_download(caller, format, lambda ctx: logviews.event_filter(ctx, **filters.fields))


def log_download(
    caller: Any, format: str, choose: Callable[[Context], EventFilter]
) -> StreamingResponse:
    """The caller's view of the log (filtered by ``choose``) as a JSON Lines or CSV download,
    for the API and the portal alike: written whole inside one transaction (one consistent
    view), then streamed."""

    def write(spool: BinaryIO) -> dict[str, str]:
        with caller.read_transaction() as ctx:
            chosen = choose(ctx)
            if format == "jsonl":
                auditlog.export_jsonl(ctx, spool, chosen)
            else:
                auditlog.export_csv(ctx, spool, chosen)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return {"content-disposition": f'attachment; filename="custody-log-{stamp}.{format}"'}

    return spooled_download(write, EXPORT_TYPES[format])
