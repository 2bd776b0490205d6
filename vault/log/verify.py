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
import bisect
import contextlib
import gc
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from vault.log import merkle
from vault.log.errors import LogError, NoteError
from vault.log.events import (
    CANONICAL_OPTIONS,
    EVENT_KEYS,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    EventEncodingError,
    encode,
)
from vault.log.note import Checkpoint, Verifier, open_note

_T = TypeVar("_T")


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
    report, chain, saved = _begin(header, key, saved_checkpoint)
    if report.view == "whole":
        _verify_whole(it, chain, report.origin, report.size, saved, report)
    else:
        _verify_filtered(it, chain, report.origin, report.size, saved, report)
    _end(report)
    return report


class _KeyChain:
    """The log keys a verifier accepts: the pinned one, and the keys it handed over to.

    When the vault's log key is rotated, the handover checkpoint is signed by the old key and
    the new one (docs/audit-log.md, "Key rotation"); the export's header lists every log key,
    oldest first. A key becomes trusted only through a checkpoint that a trusted key also
    signed - in either direction, so a verifier that pinned the new key accepts the old
    checkpoints too. A key that handed over at size h signs nothing beyond h."""

    def __init__(self, pinned: Verifier, announced: list[Verifier]) -> None:
        self.trusted = [pinned]
        self.announced = announced
        self.retired_at: dict[Verifier, int] = {}
        self._opened: dict[tuple[str, frozenset[Verifier]], tuple[Checkpoint, list[Verifier]]] = {}

    def _age(self, key: Verifier) -> int:
        return self.announced.index(key) if key in self.announced else -1

    def _open(self, note: str) -> tuple[Checkpoint, list[Verifier]]:
        known = self.trusted + [k for k in self.announced if k not in self.trusted]
        # settle() and open() both open every checkpoint: check its signatures once
        key = (note, frozenset(known))
        opened = self._opened.get(key)
        if opened is None:
            text, signers = open_note(note, known)
            opened = self._opened[key] = (Checkpoint.parse(text), signers)
        return opened

    def settle(self, notes: list[str]) -> None:
        """Extend the trusted keys over the handover checkpoints among ``notes``."""
        handovers: list[tuple[Checkpoint, list[Verifier]]] = []
        for note in notes:
            try:
                checkpoint, signers = self._open(note)
            except LogError:
                continue  # reported when the checkpoint is opened for real
            if len(signers) > 1:
                handovers.append((checkpoint, signers))
        changed = True
        while changed:
            changed = False
            for _, signers in handovers:
                if any(k in self.trusted for k in signers):
                    for k in signers:
                        if k not in self.trusted:
                            self.trusted.append(k)
                            changed = True
        for checkpoint, signers in handovers:
            newest = max(signers, key=self._age)
            for k in signers:
                if k != newest and k in self.trusted:
                    previous = self.retired_at.get(k, checkpoint.size)
                    self.retired_at[k] = min(previous, checkpoint.size)

    def open(self, note: object, origin: str, line: int | None) -> Checkpoint:
        if not isinstance(note, str):
            raise LogVerificationError("checkpoint note must be text", line=line)
        try:
            checkpoint, signers = self._open(note)
        except LogError as exc:
            raise LogVerificationError(f"checkpoint does not verify: {exc}", line=line) from None
        mine = [k for k in signers if k in self.trusted]
        if not mine:
            raise LogVerificationError(
                "checkpoint does not verify: it is not signed by the pinned log key or a key "
                "that key handed over to",
                line=line,
            )
        if all(self.retired_at.get(k, checkpoint.size) < checkpoint.size for k in mine):
            raise LogVerificationError(
                f"checkpoint of size {checkpoint.size} is signed only by a log key that was "
                "retired before it",
                line=line,
            )
        if checkpoint.origin != origin:
            raise LogVerificationError(
                "checkpoint does not verify: it is from another log (origin differs)", line=line
            )
        return checkpoint


def _announced_keys(header: dict[str, Any]) -> list[Verifier]:
    listed = header.get("log_keys", [])
    if not isinstance(listed, list):
        raise LogVerificationError("the header's log_keys must be a list", line=1)
    try:
        return [Verifier.parse(k) for k in listed]
    except (NoteError, TypeError):
        raise LogVerificationError(
            "the header's log_keys holds something that is not a verifier key", line=1
        ) from None


def _begin(
    header: dict[str, Any], key: Verifier | None, saved_checkpoint: str | bytes | None
) -> tuple[Report, _KeyChain, str | bytes | None]:
    origin = header["origin"]
    pinned = key is not None
    if key is None:
        try:
            key = Verifier.parse(header.get("log_key", ""))
        except (NoteError, TypeError):
            raise LogVerificationError(
                "the header's log_key is not a verifier key", line=1
            ) from None
    chain = _KeyChain(key, _announced_keys(header))
    if isinstance(saved_checkpoint, bytes):
        try:
            saved_checkpoint = saved_checkpoint.decode("utf-8")
        except UnicodeDecodeError:
            raise LogVerificationError(
                "the saved checkpoint does not verify: it is not text"
            ) from None
    report = Report(
        origin=origin,
        size=header["size"],
        root=merkle.EMPTY_ROOT,
        view=header["view"],
        key_pinned=pinned,
    )
    return report, chain, saved_checkpoint


def _open_saved(chain: _KeyChain, note: str | bytes | None, report: Report) -> Checkpoint | None:
    """The checkpoint the verifier saved earlier, opened with the (settled) key chain."""
    if note is None:
        return None
    try:
        saved = chain.open(note, report.origin, None)
    except LogVerificationError as exc:
        raise LogVerificationError(f"the saved checkpoint does not verify: {exc.message}") from None
    report.saved_size = saved.size
    return saved


def _end(report: Report) -> None:
    if not report.key_pinned:
        report.notes.append(
            "the log key was read from the file itself: pass the key you pinned to detect a "
            "log re-signed with another key"
        )


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


def _is_integer(value: object, expected: int) -> bool:
    """``value`` is the JSON integer ``expected`` (``true`` is not 1, though Python says so)."""
    return value.__class__ is int and value == expected


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
    if event.keys() != _EVENT_KEY_SET:
        raise LogVerificationError("the event does not have exactly the v1 members", index=index)
    if not _is_integer(event["index"], index) or not _is_integer(event["v"], 1):
        raise LogVerificationError("the event's own index or version is wrong", index=index)
    # The rules _intact_leaves applies, no more: the event's members re-encode to its leaf. (The
    # writer's rules for values - time format, types of members - bind what the vault writes,
    # not what a verifier accepts: see docs/audit-log.md, section 6.)
    try:
        derived = encode(event)
    except EventEncodingError as exc:
        raise LogVerificationError(f"event fields are invalid: {exc}", index=index) from None
    leaf = _b64(obj.get("leaf"), "leaf", line=line)
    if leaf != derived:
        raise LogVerificationError(
            "its fields do not encode to its leaf bytes (a field was edited)", index=index
        )
    return index, leaf


class _Prefix:
    """The checkpoints of a whole-log export, and the tree rebuilt against them."""

    def __init__(
        self, roots: dict[int, bytes], size: int, saved: Checkpoint | None, report: Report
    ) -> None:
        self.roots = roots
        self.size = size
        self.saved = saved
        self.report = report
        self.stops = iter(sorted(n for n in roots if n > 0))
        self.stop = next(self.stops, None)
        self.compact = merkle.CompactRange()
        self.segment_start = 0

    def add(self, hashes: list[bytes]) -> None:
        """Append leaf hashes (in index order), checking the root at every checkpoint size."""
        pos = 0
        while self.stop is not None and self.compact.size + len(hashes) - pos >= self.stop:
            take = self.stop - self.compact.size
            self.compact.extend(hashes[pos : pos + take])
            pos += take
            self._check(self.compact.root())
        self.compact.extend(hashes[pos:])

    def add_stretch(self, stretch: _Stretch) -> None:
        """Append a worker's stretch of leaves, checking the root at every checkpoint size."""
        end = self.compact.size + stretch.count
        while self.stop is not None and self.stop <= end:
            probe = self.compact.copy()
            probe.extend_subtrees(stretch.prefixes[self.stop])
            self._check(probe.root())
        self.compact.extend_subtrees(stretch.subtrees)

    def _check(self, root: bytes) -> None:
        """The tree has reached the next checkpoint size: its root must be the signed one."""
        assert self.stop is not None
        if root != self.roots[self.stop]:
            what = (
                "the saved checkpoint"
                if self.saved is not None and self.saved.size == self.stop
                else "its signed checkpoint"
            )
            raise LogVerificationError(
                f"events {self.segment_start}..{self.stop - 1} do not hash to the root of "
                f"{what}: an event in that range was changed, added, removed or moved (and "
                "its leaf re-encoded to match)",
                index=self.segment_start,
            )
        self.segment_start = self.stop
        self.stop = next(self.stops, None)

    def finish(self) -> None:
        size = self.compact.size
        if size != self.size:
            raise LogVerificationError(
                f"the export ends after {size} events but its header says {self.size}",
                index=size,
            )
        self.report.events = size
        self.report.root = self.compact.root()


def _read_checkpoints(
    it: Iterator[bytes],
    chain: _KeyChain,
    origin: str,
    size: int,
    saved_note: str | bytes | None,
    report: Report,
) -> tuple[_Prefix, bytes | None, int]:
    """Read the checkpoint lines that follow the header (ascending sizes). Returns the tree
    checker, the first event line (or None) and the line number of the last line read."""
    roots: dict[int, bytes] = {}
    line = 1
    first: bytes | None = None
    notes: list[tuple[object, int]] = []
    for raw in it:
        line += 1
        obj = _parse(raw, line)
        if obj.get("type") != "checkpoint":
            first = raw
            break
        notes.append((obj.get("note"), line))
    chain.settle([n for n, _ in notes if isinstance(n, str)])
    saved = _open_saved(chain, saved_note, report)
    for note, at in notes:
        checkpoint = chain.open(note, origin, at)
        if checkpoint.size > size:
            raise LogVerificationError(
                f"checkpoint of size {checkpoint.size} is beyond the export's {size}", line=at
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
    if roots.get(0, merkle.EMPTY_ROOT) != merkle.EMPTY_ROOT:
        raise LogVerificationError("a checkpoint of the empty log has the wrong root")
    return _Prefix(roots, size, saved, report), first, line


def _verify_whole(
    it: Iterator[bytes],
    chain: _KeyChain,
    origin: str,
    size: int,
    saved: str | bytes | None,
    report: Report,
) -> None:
    prefix, first, line = _read_checkpoints(it, chain, origin, size, saved, report)
    if first is not None:
        line -= 1  # the lines before the first event line
        expected = 0
        for batch in batched(_chain(first, it), 4096):
            count = _add_lines(prefix, batch, expected, line, size)
            expected += count
            line += count
    prefix.finish()


def _add_lines(prefix: _Prefix, lines: list[bytes], first: int, line: int, size: int) -> int:
    """Re-derive the leaves of event lines numbered from ``first`` (``line`` lines precede
    them in the file), hash them into the tree; returns how many. Raises at the first bad line,
    or when the lines go past the header's ``size``."""
    too_many = first + len(lines) > size
    if too_many:
        lines = lines[: size - first]
    leaves = _intact_leaves(b"".join(lines), first)
    if leaves is None:  # something is off in these lines: find and explain it
        leaves = [
            _event_leaf(_parse(raw, line + i + 1), first + i, line + i + 1)[1]
            for i, raw in enumerate(lines)
        ]
    prefix.add(_leaf_hashes(leaves))
    if too_many:
        raise LogVerificationError(f"more events than the header's size {size}", index=size)
    return len(lines)


def batched(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (the last one shorter), as Python 3.12's
    ``itertools.batched``."""
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_EVENT_KEY_SET = frozenset(EVENT_KEYS)
_EVENT_PREFIX = b'{"type":"event","index":'
_EVENT_MEMBER = b',"event":'
_LEAF_MEMBER = b',"leaf":"'
sha256 = hashlib.sha256
b2a_base64 = binascii.b2a_base64
loads, dumps = orjson.loads, orjson.dumps


def _intact_leaves_py(data: bytes, first: int) -> list[bytes] | None:
    """The leaves of ``data``, consecutive event lines numbered from ``first`` (the last one's
    newline may be missing, as at the end of a file), if every line is intact as our exporter
    writes it; None as soon as one is not (the caller then takes the explaining path,
    ``_event_leaf``, line by line, which also accepts what is valid but not in this exact
    layout).

    The exporter writes the event member as the canonical leaf bytes themselves::

        {"type":"event","index":N,"event":<leaf bytes>,"leaf":"<base64 of the same bytes>"}

    so an intact line is checked without parsing all of it: the fixed parts, the base64 of the
    event member equal to the leaf string, and the event member being the canonical encoding
    of its own fields (exactly the event keys, the expected index, version 1). This runs once
    per event of logs of millions, so it works on offsets into one buffer, and parses and
    re-encodes the events a group at a time: ``[e1,e2,...]`` is canonical exactly when each
    ``e`` is, and one call per group costs less than one per event.
    """
    if not data.endswith(b"\n"):
        data += b"\n"
    leaves: list[bytes] = []
    keep = leaves.append
    find, rfind, at = data.find, data.rfind, data.startswith
    pos, expected, size = 0, first, len(data)
    while pos < size:
        nl = find(b"\n", pos)
        end = find(_EVENT_MEMBER, pos + 24, nl)
        mark = rfind(_LEAF_MEMBER, end, nl)
        if (
            end < 0
            or mark < end
            or not at(_EVENT_PREFIX, pos)
            or data[pos + 24 : end] != b"%d" % expected
            or not at(b'"}\n', nl - 2)
        ):
            return None
        leaf = data[end + 9 : mark]
        encoded = b2a_base64(leaf, newline=False)
        if len(encoded) != nl - mark - 11 or not at(encoded, mark + 9):
            return None
        keep(leaf)
        pos, expected = nl + 1, expected + 1
    for start in range(0, len(leaves), _GROUP):
        group = b"[" + b",".join(leaves[start : start + _GROUP]) + b"]"
        try:
            events = loads(group)
        except orjson.JSONDecodeError:
            return None
        try:
            if dumps(events, option=CANONICAL_OPTIONS) != group:
                return None
        except orjson.JSONEncodeError:  # an integer beyond 2**53 - 1
            return None
        for event in events:  # _event_leaf's member checks (_is_integer inlined: no call per event)
            if (
                event.__class__ is not dict
                or event.keys() != _EVENT_KEY_SET
                or event["v"] != 1
                or event["v"].__class__ is not int
                or event["index"].__class__ is not int
            ):
                return None
        if [event["index"] for event in events] != list(
            range(first + start, first + start + len(events))
        ):
            return None
    return leaves


#: events parsed and re-encoded per call in _intact_leaves_py (measured best between 128 and 256)
_GROUP = 192

_FastPath = Callable[[bytes, int], "list[bytes] | None"]
_intact_leaves_native: _FastPath | None = None
#: CUSTODY_NATIVE=0 keeps the C fast path unloaded (whoever verifies a file they do not trust
#: may prefer no C code parsing it; the verdicts are the same, only slower)
if os.environ.get("CUSTODY_NATIVE", "1") != "0":
    # the same checks in C (vault/log/_intact.c), built at install where a compiler is; an
    # install without one has no module to import
    with contextlib.suppress(ImportError):
        from vault.log._intact import intact_leaves as _intact_leaves_native

#: the fast path that runs: the C one when built (it accepts a subset of what the Python one
#: does, about five times faster), else the Python one
_intact_leaves: _FastPath = _intact_leaves_native or _intact_leaves_py


def _leaf_hashes(leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes, inline (``merkle.leaf_hash`` per leaf is a call more per event)."""
    return [sha256(b"\x00" + leaf).digest() for leaf in leaves]


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


# --- a whole-log export file, verified by several processes ----------------------------------

#: below this many bytes of events a file is verified in one process
PARALLEL_THRESHOLD = 8 << 20


def verify_export_file(
    path: str | os.PathLike[str],
    *,
    key: Verifier | None = None,
    saved_checkpoint: str | bytes | None = None,
    jobs: int | None = None,
) -> Report:
    """:func:`verify_export` for a file, checking a large whole-log export in ``jobs`` processes
    (default: one per CPU), with the same result as the sequential one.

    Each worker takes a stretch of whole lines, re-derives and hashes its leaves, and hashes
    every perfect subtree inside the stretch; it returns the stretch as O(log n) subtree
    hashes (and its prefix up to each checkpoint size inside it). This process appends those
    to the tree, in order, and checks each checkpoint's root: its own work is O(log n) per
    stretch and per checkpoint, so the workers do all the hashing."""
    jobs = jobs or os.cpu_count() or 1
    with open(path, "rb") as fh:
        header_raw = fh.readline()
        header = _header(header_raw)
        offset = fh.tell()
        for raw in fh:  # find where the checkpoints end
            if not raw.startswith(b'{"type":"checkpoint"'):
                break
            offset += len(raw)
        total = fh.seek(0, os.SEEK_END)
    if jobs < 2 or header.get("view") != "whole" or total - offset < PARALLEL_THRESHOLD:
        with open(path, "rb") as fh:
            return verify_export(fh, key=key, saved_checkpoint=saved_checkpoint)
    with open(path, "rb") as fh:
        head_lines = [fh.readline()]
        while fh.tell() < offset:
            head_lines.append(fh.readline())
    report, chain, saved = _begin(header, key, saved_checkpoint)
    it = iter(head_lines[1:])
    size = header["size"]
    prefix, _, line = _read_checkpoints(it, chain, header["origin"], size, saved, report)
    # Stretches of about 8 MB: small enough for the allocator to reuse a worker's buffers
    # (fresh large buffers cost page faults) and for the last ones to end close together.
    bounds = _chunk_bounds(path, offset, total, max(jobs * 8, (total - offset) >> 23))
    stops = sorted(prefix.roots)
    import concurrent.futures
    import multiprocessing

    expected = 0
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    # Forked workers share this process's memory copy-on-write; a garbage collection in a
    # worker would touch every inherited object and copy its page. Frozen objects are never
    # scanned, so a caller holding a large heap does not pay for it in each worker.
    gc.freeze()
    try:
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(_hash_stretch, str(path), a, b, stops) for a, b in bounds]
            for (start, stop), future in zip(bounds, futures, strict=True):
                stretch = future.result()
                if (
                    stretch is not None
                    and stretch.first == expected
                    and expected + stretch.count <= size
                ):
                    prefix.add_stretch(stretch)
                    count = stretch.count
                else:  # not all in our exporter's layout, misplaced or too long: line by line
                    with open(path, "rb") as fh:
                        fh.seek(start)
                        lines = fh.read(stop - start).splitlines(keepends=True)
                    count = _add_lines(prefix, lines, expected, line, size)
                expected += count
                line += count
    finally:
        gc.unfreeze()
    prefix.finish()
    _end(report)
    return report


def _chunk_bounds(
    path: str | os.PathLike[str], start: int, end: int, parts: int
) -> list[tuple[int, int]]:
    """Byte ranges of whole lines covering [start, end), about ``parts`` of them."""
    step = max(1, (end - start) // parts)
    bounds = []
    with open(path, "rb") as fh:
        pos = start
        while pos < end:
            fh.seek(min(pos + step, end))
            if fh.tell() < end:
                fh.readline()
            cut = min(fh.tell(), end)
            bounds.append((pos, cut))
            pos = cut
    return bounds


@dataclass(frozen=True)
class _Stretch:
    """What a worker found in its stretch of event lines (see :func:`verify_export_file`)."""

    first: int
    count: int
    #: the leaves first .. first + count as perfect subtrees (level, hash), left to right
    subtrees: list[tuple[int, bytes]]
    #: for each checkpoint size s inside the stretch, the leaves first .. s likewise
    prefixes: dict[int, list[tuple[int, bytes]]]


def _hash_stretch(path: str, start: int, end: int, stops: list[int]) -> _Stretch | None:
    """In a worker: the stretch of the file from ``start`` to ``end``, or None if a line in it
    is not intact (the caller re-reads it on the explaining path)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    try:
        first = int(data[24 : data.find(_EVENT_MEMBER, 24)])
    except ValueError:
        return None
    gc.disable()  # nothing here makes reference cycles; millions of short-lived dicts do not
    try:  # need the collector to look at them
        leaves = _intact_leaves(data, first)
        if leaves is None:
            return None
        del data
        tree = merkle.SubtreeLevels(first, _leaf_hashes(leaves))
    finally:
        gc.enable()
    inside = stops[bisect.bisect_right(stops, first) : bisect.bisect_right(stops, tree.end)]
    return _Stretch(
        first=first,
        count=tree.end - first,
        subtrees=tree.subtrees(),
        prefixes={size: tree.subtrees(size) for size in inside},
    )


def _verify_filtered(
    it: Iterable[bytes],
    chain: _KeyChain,
    origin: str,
    size: int,
    saved_note: str | bytes | None,
    report: Report,
) -> None:
    saved = _open_saved(chain, saved_note, report)
    cut: Checkpoint | None = None
    line = 1
    last = -1
    for raw in it:
        line += 1
        obj = _parse(raw, line)
        if obj.get("type") == "checkpoint":
            if cut is not None:
                raise LogVerificationError("a filtered export has one checkpoint", line=line)
            note = obj.get("note")
            if isinstance(note, str):
                chain.settle([note])
            cut = chain.open(note, origin, line)
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
