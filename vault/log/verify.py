"""Offline verification of an exported log (docs/audit-log.md, "Verifying an export").

Pure: bytes in, a report or a :class:`LogVerificationError` out. Nothing here trusts the file:
every leaf is re-derived from the event's fields (so an edited field is caught even when the
leaf bytes were left alone), the tree is recomputed from the leaves, and its root must equal the
root of every checkpoint the file carries - each signed by the pinned log key - and of the
checkpoint the verifier saved earlier, if any (which is how truncation, rewriting and forks
after that checkpoint are caught). A filtered export (one client's view) instead carries one
checkpoint and an inclusion proof per event.

The first problem found is reported with the leaf index (or line) where it is, and
verification stops there: after one bad leaf every later root is meaningless.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from vault.log import merkle
from vault.log.errors import LogError, NoteError
from vault.log.events import EventEncodingError, encode, event_object
from vault.log.note import Checkpoint, Verifier, verify_checkpoint

EXPORT_FORMAT = "custody-audit-log"
EXPORT_VERSION = 1


class LogVerificationError(LogError):
    """The exported log does not verify. ``index`` is the first bad leaf, when there is one."""

    code = "log_verification_failed"

    def __init__(self, message: str, *, index: int | None = None, line: int | None = None):
        where = f"event {index}: " if index is not None else f"line {line}: " if line else ""
        super().__init__(where + message)
        self.index = index
        self.line = line


@dataclass
class Report:
    """What a successful verification established."""

    origin: str
    size: int
    root: bytes
    view: str
    events: int = 0
    checkpoints: int = 0
    #: whether the log key was given by the verifier (pinned) rather than read from the file
    key_pinned: bool = False
    #: the saved checkpoint the log was found consistent with, if one was given
    saved_size: int | None = None
    notes: list[str] = field(default_factory=list)


def _b64(text: object, what: str, *, line: int) -> bytes:
    if not isinstance(text, str):
        raise LogVerificationError(f"{what} must be base64 text", line=line)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LogVerificationError(f"{what} is not valid base64", line=line) from None


def _parse(raw: bytes, line: int) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LogVerificationError("not a JSON object", line=line) from None
    if not isinstance(obj, dict):
        raise LogVerificationError("not a JSON object", line=line)
    return obj


def verify_export(
    lines: Iterable[bytes],
    *,
    key: Verifier | None = None,
    saved_checkpoint: str | bytes | None = None,
) -> Report:
    """Verify an export read line by line (a binary file object works as ``lines``).

    ``key`` is the pinned log verifier key; without it the key in the file's header is used
    and the report says so (a forger who re-signed the log with a key of their own would
    pass). ``saved_checkpoint`` is a signed checkpoint note kept from an earlier visit.
    """
    it = iter(lines)
    header = _header(next(it, b""))
    origin = header["origin"]
    if key is None:
        try:
            key = Verifier.parse(header["log_key"])
        except (NoteError, TypeError):
            raise LogVerificationError(
                "the header's log_key is not a verifier key", line=1
            ) from None
        pinned = False
    else:
        pinned = True
    size = header["size"]
    saved: Checkpoint | None = None
    if saved_checkpoint is not None:
        try:
            saved = verify_checkpoint(saved_checkpoint, key, origin)
        except LogError as exc:
            raise LogVerificationError(f"the saved checkpoint does not verify: {exc}") from None
    report = Report(
        origin=origin,
        size=size,
        root=merkle.EMPTY_ROOT,
        view=header["view"],
        key_pinned=pinned,
        saved_size=saved.size if saved else None,
    )
    if report.view == "whole":
        _verify_whole(it, key, origin, size, saved, report)
    else:
        _verify_filtered(it, key, origin, size, saved, report)
    if not pinned:
        report.notes.append(
            "the log key was read from the file itself: pass the key you pinned to detect a "
            "log re-signed with another key"
        )
    return report


def _header(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise LogVerificationError("the file is empty", line=1)
    header = _parse(raw, 1)
    if header.get("type") != "header" or header.get("format") != EXPORT_FORMAT:
        raise LogVerificationError(f"not a {EXPORT_FORMAT} export", line=1)
    if header.get("version") != EXPORT_VERSION:
        raise LogVerificationError(f"unknown export version {header.get('version')!r}", line=1)
    size = header.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise LogVerificationError("header size must be a non-negative integer", line=1)
    if not isinstance(header.get("origin"), str) or header.get("view") not in (
        "whole",
        "filtered",
    ):
        raise LogVerificationError("header needs an origin and a view", line=1)
    return header


def _open_checkpoint(note: object, key: Verifier, origin: str, line: int) -> Checkpoint:
    if not isinstance(note, str):
        raise LogVerificationError("checkpoint note must be text", line=line)
    try:
        return verify_checkpoint(note, key, origin)
    except LogError as exc:
        raise LogVerificationError(f"checkpoint does not verify: {exc}", line=line) from None


def _event_leaf(obj: dict[str, Any], expected_index: int | None, line: int) -> tuple[int, bytes]:
    """Re-derive the leaf from the event's fields; it must equal the leaf bytes given."""
    if obj.get("type") != "event":
        raise LogVerificationError("expected an event line", line=line)
    index = obj.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise LogVerificationError("event index must be an integer", line=line)
    if expected_index is not None and index != expected_index:
        if index > expected_index:
            raise LogVerificationError(
                f"missing: the next event is {index} (deleted or reordered)", index=expected_index
            )
        raise LogVerificationError(
            f"out of order: event {index} where {expected_index} belongs (inserted, repeated "
            "or reordered)",
            index=expected_index,
        )
    event = obj.get("event")
    if not isinstance(event, dict):
        raise LogVerificationError("event fields are missing", index=index)
    if event.get("index") != index or event.get("v") != 1:
        raise LogVerificationError("the event's own index or version is wrong", index=index)
    try:
        derived = encode(event_object(index, event))
    except EventEncodingError as exc:
        raise LogVerificationError(f"event fields are invalid: {exc}", index=index) from None
    leaf = _b64(obj.get("leaf"), "leaf", line=line)
    if leaf != derived:
        raise LogVerificationError(
            "its fields do not encode to its leaf bytes (a field was edited)", index=index
        )
    return index, leaf


def _verify_whole(
    it: Iterable[bytes],
    key: Verifier,
    origin: str,
    size: int,
    saved: Checkpoint | None,
    report: Report,
) -> None:
    # Checkpoints come first (ascending sizes), then every event 0 .. size-1 in order.
    roots: dict[int, bytes] = {}
    compact = merkle.CompactRange()
    line = 1
    pending: bytes | None = None
    for raw in it:
        line += 1
        obj = _parse(raw, line)
        if obj.get("type") != "checkpoint":
            pending = raw
            break
        checkpoint = _open_checkpoint(obj.get("note"), key, origin, line)
        if checkpoint.size > size:
            raise LogVerificationError(
                f"checkpoint of size {checkpoint.size} is beyond the export's {size}", line=line
            )
        roots[checkpoint.size] = checkpoint.root
        report.checkpoints += 1
    if size not in roots:
        raise LogVerificationError(f"no signed checkpoint covers the export's size {size}")
    if saved is not None and saved.size > size:
        raise LogVerificationError(
            f"the log was truncated or rolled back: it has {size} events, but the saved "
            f"checkpoint was signed at {saved.size}"
        )
    if saved is not None:
        other = roots.get(saved.size)
        if other is not None and other != saved.root:
            raise LogVerificationError(
                f"the log forked: two different signed roots for size {saved.size}"
            )
        roots.setdefault(saved.size, saved.root)

    def check_root() -> None:
        expected = roots.get(compact.size)
        if expected is not None and compact.root() != expected:
            what = (
                "the saved checkpoint"
                if saved is not None and saved.size == compact.size
                else "its signed checkpoint"
            )
            raise LogVerificationError(
                f"the first {compact.size} events do not hash to the root of {what} "
                "(an event before this point was changed, added, removed or moved)",
                index=compact.size - 1 if compact.size else None,
            )

    check_root()  # size 0
    if pending is not None:
        chain: Iterable[bytes] = _chain(pending, it)
        for raw in chain:
            line += 1
            if compact.size >= size:
                raise LogVerificationError(
                    f"more events than the header's size {size}", index=compact.size
                )
            _, leaf = _event_leaf(_parse(raw, line), compact.size, line)
            compact.append(merkle.leaf_hash(leaf))
            report.events += 1
            if compact.size in roots:
                check_root()
    if compact.size != size:
        raise LogVerificationError(
            f"the export ends after {compact.size} events but its header says {size}",
            index=compact.size,
        )
    report.root = compact.root()


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterable[bytes]:
    yield first
    yield from rest


def _verify_filtered(
    it: Iterable[bytes],
    key: Verifier,
    origin: str,
    size: int,
    saved: Checkpoint | None,
    report: Report,
) -> None:
    cut: Checkpoint | None = None
    line = 1
    last = -1
    for raw in it:
        line += 1
        obj = _parse(raw, line)
        if obj.get("type") == "checkpoint":
            if cut is not None:
                raise LogVerificationError("a filtered export has one checkpoint", line=line)
            cut = _open_checkpoint(obj.get("note"), key, origin, line)
            if cut.size != size:
                raise LogVerificationError("checkpoint size differs from the header's", line=line)
            report.checkpoints = 1
            continue
        if cut is None:
            raise LogVerificationError("events before the checkpoint", line=line)
        index, leaf = _event_leaf(obj, None, line)
        if index <= last:
            raise LogVerificationError("events out of order", index=index)
        last = index
        proof = obj.get("proof")
        if not isinstance(proof, list):
            raise LogVerificationError("event has no inclusion proof", index=index)
        hashes = [_b64(h, "proof hash", line=line) for h in proof]
        try:
            merkle.verify_inclusion(merkle.leaf_hash(leaf), index, size, hashes, cut.root)
        except LogError:
            raise LogVerificationError(
                "its inclusion proof does not lead to the signed root (the event was changed "
                "or is not in the log)",
                index=index,
            ) from None
        report.events += 1
    if cut is None:
        raise LogVerificationError("the export carries no checkpoint")
    if saved is not None and saved.size > cut.size:
        raise LogVerificationError(
            f"the log was truncated or rolled back: its checkpoint has size {cut.size}, but the "
            f"saved checkpoint was signed at {saved.size}"
        )
    if saved is not None and saved.size == cut.size and saved.root != cut.root:
        raise LogVerificationError(f"the log forked: two different roots for size {cut.size}")
    if saved is not None and saved.size < cut.size:
        report.notes.append(
            "a filtered export cannot prove consistency with the saved checkpoint by itself: "
            "run `custody audit watch` against the server for that"
        )
    report.root = cut.root
