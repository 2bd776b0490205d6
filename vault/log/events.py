"""The canonical bytes of an audit event: what the transparency log hashes as a leaf.

Specified in docs/audit-log.md. In short, a leaf is the RFC 8785 (JSON Canonicalization Scheme)
serialisation of one JSON object::

    {"action": ..., "actor": ..., "at": "2026-11-23T12:00:00.000000Z", "client_id": ...,
     "detail": {...}, "index": 0, "outcome": ..., "role": ..., "source": ...,
     "subject_id": ..., "subject_kind": ..., "v": 1}

with every key always present (null when empty), ``at`` in UTC with exactly six fractional
digits, and values limited to what JCS serialises identically in every implementation:
strings, integers of magnitude below 2**53, booleans, null, arrays and objects with ASCII keys
(no floats, so no number-formatting questions). With those limits the output of
``orjson.dumps(event, option=OPT_SORT_KEYS)`` is byte for byte RFC 8785 - the tests check it
against an independent implementation - and anyone can re-derive a leaf with a stock JCS
library.

The event's position (``index``) is inside its leaf, so an event cannot be moved to another
place in the log without changing the tree.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from vault.log.errors import LogError

#: version of the leaf encoding (the ``v`` member)
EVENT_VERSION = 1
#: the members of every event object, in their canonical (sorted) order
EVENT_KEYS = (
    "action",
    "actor",
    "at",
    "client_id",
    "detail",
    "index",
    "outcome",
    "role",
    "source",
    "subject_id",
    "subject_kind",
    "v",
)
#: the event columns a caller supplies (everything but ``index`` and ``v``)
FIELD_KEYS = tuple(k for k in EVENT_KEYS if k not in ("index", "v"))
_TEXT_KEYS = ("action", "actor", "outcome")
_OPTIONAL_TEXT_KEYS = ("client_id", "role", "source", "subject_id", "subject_kind")
MAX_SAFE_INTEGER = 2**53 - 1
#: detail objects nest at most this deep (refuses pathological input early)
MAX_DEPTH = 8
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


class EventEncodingError(LogError):
    """An event cannot be put in (or read back from) its canonical form."""

    code = "invalid_event"


def format_time(value: datetime) -> str:
    """``at`` as the leaf carries it: UTC, microseconds, ``Z``."""
    if value.tzinfo is None:
        raise EventEncodingError("event time must be timezone-aware")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # The bytes of strftime("%Y-%m-%dT%H:%M:%S.%fZ") in half its time, and the year always has
    # four digits (glibc's %Y drops the leading zeros of a year before 1000).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - faster than f"{:04d}"
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def parse_time(text: object) -> datetime:
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise EventEncodingError("event time must look like 2026-11-23T12:00:00.000000Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise EventEncodingError("event time is not a real date and time") from None


def json_value(value: Any, depth: int = 0) -> Any:
    """``value`` as the plain JSON the leaf may hold (tuples become lists), or an error.

    Used on the way in, so whatever the database's JSON column gives back is what was hashed.
    (Every audit event goes through here on the write path: the common types are tested first.)
    """
    if isinstance(value, str):
        _check_string(value)
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise EventEncodingError("event integers must be below 2**53 in magnitude")
        return int(value)
    if depth >= MAX_DEPTH:
        raise EventEncodingError(f"event detail nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict | Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise EventEncodingError("event detail keys must be ASCII strings")
            out[key] = json_value(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [json_value(item, depth + 1) for item in value]
    raise EventEncodingError(f"an event cannot hold a {type(value).__name__}")


def _check_string(value: str) -> None:
    if value.isascii():  # the common case, and always valid: no encoding to try
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EventEncodingError("event strings must be valid Unicode") from None


def event_object(index: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The event as the JSON object its leaf encodes.

    ``fields`` has the columns of :data:`FIELD_KEYS`; ``at`` may be a datetime or its text.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_SAFE_INTEGER:
        raise EventEncodingError("event index must be a non-negative integer below 2**53")
    at = fields.get("at")
    if isinstance(at, datetime):
        at = format_time(at)
    else:
        parse_time(at)  # checks the text form
    obj: dict[str, Any] = {"v": EVENT_VERSION, "index": index, "at": at}
    for key in _TEXT_KEYS:
        value = fields.get(key)
        if not isinstance(value, str) or not value:
            raise EventEncodingError(f"event {key} must be a non-empty string")
        _check_string(value)
        obj[key] = value
    for key in _OPTIONAL_TEXT_KEYS:
        value = fields.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise EventEncodingError(f"event {key} must be a string or null")
            _check_string(value)
        obj[key] = value
    detail = fields.get("detail")
    if detail is None:
        detail = {}
    if not isinstance(detail, dict | Mapping):  # dict first: the common case, no ABC check
        raise EventEncodingError("event detail must be an object")
    obj["detail"] = json_value(detail)
    return obj


def stored_event_object(index: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The leaf object of an event read back from the log's table (``fields``: its columns).

    :func:`event_object` checked these fields when the event was appended, and the row holds
    them as its leaf encodes them; an export or a page of the log rebuilds one leaf per event,
    and checking every field again would double what that costs. Nothing here is trusted
    because of that: a row changed since it was appended gives leaf bytes whose hash is not
    the one in the tree, and the verifier, recomputing the tree from the leaves it is given,
    refuses them (docs/audit-log.md, "Verifying an export")."""
    at = fields["at"]
    return {
        "v": EVENT_VERSION,
        "index": index,
        "at": format_time(at) if isinstance(at, datetime) else at,
        "action": fields["action"],
        "actor": fields["actor"],
        "outcome": fields["outcome"],
        "client_id": fields["client_id"],
        "role": fields["role"],
        "source": fields["source"],
        "subject_id": fields["subject_id"],
        "subject_kind": fields["subject_kind"],
        "detail": {} if fields["detail"] is None else fields["detail"],
    }


#: orjson's options for the canonical form: keys sorted, and integers refused beyond 2**53 - 1 in
#: magnitude (where JCS implementations stop agreeing), also in objects no writer checked
CANONICAL_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def encode(obj: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of an already-checked event object."""
    try:
        return orjson.dumps(obj, option=CANONICAL_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise EventEncodingError(f"event cannot be encoded: {type(exc).__name__}") from None


def leaf_bytes(index: int, fields: Mapping[str, Any]) -> bytes:
    """The canonical bytes of event ``index`` - the input of ``merkle.leaf_hash``."""
    return encode(event_object(index, fields))


def decode(data: bytes) -> dict[str, Any]:
    """Parse leaf bytes back to the event object, insisting that they are canonical.

    Re-encoding the parsed object must give ``data`` back, so a leaf has exactly one encoding
    and its fields are exactly what was hashed.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise EventEncodingError("leaf is not JSON") from None
    if not isinstance(obj, dict) or tuple(sorted(obj)) != EVENT_KEYS:
        raise EventEncodingError("leaf is not an event object with exactly the v1 members")
    if obj["v"] != EVENT_VERSION:
        raise EventEncodingError(f"leaf has unknown event version {obj['v']!r}")
    checked = event_object(obj["index"], obj)
    if encode(checked) != data:
        raise EventEncodingError("leaf is not in canonical form")
    return checked


#: the header of an exported log names its format and version (docs/audit-log.md, "Export")
EXPORT_FORMAT = "custody-audit-log"
EXPORT_VERSION = 1


def export_header(
    origin: str,
    log_key: str,
    size: int,
    view: str,
    *,
    log_keys: list[str] | None = None,
    exported_at: str | None = None,
) -> dict[str, Any]:
    """The header object of an export (docs/audit-log.md, "Export"): the first line.

    ``view`` is ``whole`` or ``filtered``; ``log_keys`` (every log key, oldest first) and
    ``exported_at`` are left out when not given."""
    header: dict[str, Any] = {
        "type": "header",
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "origin": origin,
        "log_key": log_key,
    }
    if log_keys is not None:
        header["log_keys"] = log_keys
    header.update(size=size, view=view)
    if exported_at is not None:
        header["exported_at"] = exported_at
    return header


def checkpoint_line(note: str) -> bytes:
    """One checkpoint line of an export, without newline: a signed checkpoint note."""
    return orjson.dumps({"type": "checkpoint", "note": note})


def export_line(leaf: bytes, index: int, proof: list[bytes] | None = None) -> bytes:
    """One event line of a JSON Lines export (docs/audit-log.md, "Export"), without newline.

    The ``event`` member is written as the leaf bytes themselves - canonical JSON is JSON - so
    the fields a reader sees are exactly the bytes that were hashed, and a verifier can check an
    intact line without re-serialising it."""
    parts = [b'{"type":"event","index":', str(index).encode(), b',"event":', leaf]
    if proof is not None:
        hashes = [base64.b64encode(h).decode("ascii") for h in proof]
        parts += [b',"proof":', orjson.dumps(hashes)]
    parts += [b',"leaf":"', base64.b64encode(leaf), b'"}']
    return b"".join(parts)
