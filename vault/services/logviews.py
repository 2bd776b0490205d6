"""What the faces show of the transparency log: one description shared by the API and the CLI.

:mod:`vault.services.auditlog` holds the log; this module turns its reads into the plain
dictionaries that ``GET /log/...`` answers and that ``custody audit ... --json`` prints locally,
so a script sees the same shapes either way. Hashes travel as standard base64.

Who may read what (docs/api.md, "The transparency log"):

* the verifier key, checkpoints and consistency proofs reveal no event (only sizes and hashes):
  every signed-in role may have them;
* events and their inclusion proofs: admin, auditor and client contact, each within its client
  scope (:data:`auditlog.READERS`); an event outside the scope is "not found";
* the checkpoint history (sizes and signing times): admin and auditor.

Reading the log records no audit event: a watcher polling the checkpoint would otherwise grow
the log on every visit, and every visit would need a new checkpoint.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from vault.db.models import LogCheckpoint
from vault.errors import InvalidInput
from vault.log.errors import ProofError
from vault.log.merkle import MAX_TREE_SIZE
from vault.services import Context, auditlog
from vault.services.auditlog import EventFilter

#: the largest leaf index or tree size a request may name (the database's BIGINT)
MAX_INDEX = MAX_TREE_SIZE - 1
#: who may list the checkpoint history
HISTORY_READERS = ("admin", "auditor")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_info(ctx: Context) -> dict[str, Any]:
    """The log's origin, its verifier key string (``name+hash+base64``), and the handover
    checkpoint of every log-key rotation (so a watcher that pinned an older key can follow)."""
    return {
        "origin": auditlog.head(ctx.session).origin,
        "key": auditlog.verifier_key(ctx.session),
        "handovers": [
            {"key": key, "size": cp.size, "note": cp.note}
            for key, cp in auditlog.handovers(ctx.session)
        ],
    }


def current_checkpoint(ctx: Context) -> LogCheckpoint:
    """The latest signed checkpoint, freshly signed first if the log grew and the keys are here."""
    return auditlog.export_checkpoint(ctx)


def checkpoint(ctx: Context, size: int | None = None) -> LogCheckpoint:
    """The checkpoint of tree ``size`` (NotFound if none was signed), else the current one."""
    if size is None:
        return current_checkpoint(ctx)
    _check_size(size, "size")
    return auditlog.checkpoint_at(ctx.session, size)


def describe_checkpoint(cp: LogCheckpoint) -> dict[str, Any]:
    return {"size": cp.size, "root": b64(cp.root), "note": cp.note, "signed_at": cp.signed_at}


def history(ctx: Context, *, after: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Signed checkpoints in order of size, after tree size ``after``."""
    ctx.require(*HISTORY_READERS)
    _check_limit(limit)
    if after is not None:
        _check_size(after, "after")
    found = auditlog.checkpoints(ctx.session, after=after, limit=limit)
    return [describe_checkpoint(c) for c in found]


def inclusion(ctx: Context, index: int, size: int | None = None) -> dict[str, Any]:
    """The audit path of event ``index`` in the tree of ``size`` leaves (default: the current
    checkpoint's). The event must be one the caller may see (else NotFound, whatever the size).
    """
    _check_size(index, "index")
    auditlog.entry_visible(ctx, index)
    if size is None:
        size = current_checkpoint(ctx).size
    _check_size(size, "size")
    if index >= size:
        raise ProofError(f"event {index} is not in the tree of size {size}", field="index")
    _check_within_log(ctx, size, "size")
    hashes = auditlog.inclusion_proof(ctx.session, index, size)
    return {"index": index, "size": size, "hashes": [b64(h) for h in hashes]}


def consistency(ctx: Context, old: int, new: int) -> dict[str, Any]:
    """Proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves."""
    _check_size(old, "old")
    _check_size(new, "new")
    if old > new:
        raise ProofError(f"old size {old} is larger than new size {new}", field="old")
    _check_within_log(ctx, new, "new")
    hashes = auditlog.consistency_proof(ctx.session, old, new)
    return {"old": old, "new": new, "hashes": [b64(h) for h in hashes]}


def event_filter(
    ctx: Context,
    *,
    client: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> EventFilter:
    """Filters from a request. ``client`` is a name or an id, resolved within the caller's scope
    (out of scope reads as unknown); times without a zone are taken as UTC."""
    client_id = None
    if client:
        from vault.services.clients import get_client

        client_id = get_client(ctx, client).id
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be before until", field="since")
    return EventFilter(
        since=since,
        until=until,
        client_id=client_id,
        actor=actor or None,
        action=action or None,
        outcome=outcome or None,
    )


def entries(
    ctx: Context,
    filters: EventFilter,
    *,
    after: int | None = None,
    limit: int = 100,
    proofs: bool = False,
) -> dict[str, Any]:
    """One page of the events the caller may see, oldest first, after leaf index ``after``.

    With ``proofs`` the page is cut at the current signed checkpoint (returned with it) and
    each entry carries its inclusion proof against that checkpoint. ``next_after`` is the
    ``after`` of the next page, or None when this page was the last.
    """
    if after is not None:
        _check_size(after, "after")
    _check_limit(limit)
    cut = current_checkpoint(ctx) if proofs else None
    page = auditlog.list_entries(
        ctx, filters, after=after, limit=limit, below=cut.size if cut is not None else None
    )
    items = [e.as_dict() for e in page]
    if cut is not None and page:
        paths = auditlog.inclusion_proofs(ctx.session, [e.index for e in page], cut.size)
        for item, path in zip(items, paths, strict=True):
            item["proof"] = [b64(h) for h in path]
    return {
        "entries": items,
        "next_after": page[-1].index if len(page) == limit else None,
        "checkpoint": describe_checkpoint(cut) if cut is not None else None,
    }


def _check_size(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INDEX:
        raise InvalidInput(f"{name} must be between 0 and {MAX_INDEX}", field=name)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= auditlog.MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {auditlog.MAX_PAGE}", field="limit")


def _check_within_log(ctx: Context, size: int, name: str) -> None:
    current = auditlog.head(ctx.session).size
    if size > current:
        raise ProofError(f"tree size {size} is beyond the log's size {current}", field=name)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
