"""`custody audit watch`: keep the last verified checkpoint, prove the log only ever grew.

The state file (JSON, mode 0600) holds the log's origin, the pinned verifier key and the last
checkpoint note that verified. Each visit fetches the latest checkpoint, checks its signature
with the pinned key, and compares (docs/audit-log.md, "Watching the log"):

* same size, same root: unchanged;
* larger: a consistency proof from the saved size to the new one must verify - then the new
  checkpoint is saved;
* smaller: the log was truncated or rolled back;
* same size with another root, or a proof that fails: the log was rewritten or forked.

A checkpoint that does not verify with the pinned key is a finding too (a forged or re-keyed
log). Every finding keeps both notes as evidence and leaves the state file untouched.

:func:`compare` is pure (notes and a proof fetcher in, a :class:`Finding` or None out); the file
handling sits around it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault.errors import InvalidInput
from vault.log import merkle
from vault.log.errors import LogError
from vault.log.note import Checkpoint, Verifier, verify_checkpoint

STATE_VERSION = 1
#: a state file larger than this is not one of ours (it holds two short strings and a note)
MAX_STATE_BYTES = 1 << 20


@dataclass(frozen=True)
class State:
    origin: str
    key: str
    checkpoint: str
    source: str = ""

    def verifier(self) -> Verifier:
        return Verifier.parse(self.key)


@dataclass(frozen=True)
class Finding:
    """The log is not what the saved checkpoint promised. ``kind`` is one of ``truncated``,
    ``rewritten`` (a different root for a size already seen, or a failed consistency proof)
    or ``bad_checkpoint`` (the served checkpoint does not verify with the pinned key)."""

    kind: str
    message: str
    saved_note: str
    served_note: str


@dataclass(frozen=True)
class Progressed:
    """The visit found the log consistent: ``grew`` or ``unchanged``. ``key`` is the verifier
    key to pin from now on when the log key was rotated (followed through its handover)."""

    kind: str
    old: Checkpoint
    new: Checkpoint
    key: str | None = None


ProofFetcher = Callable[[int, int], list[bytes]]


def _follow(
    state: State,
    old: Checkpoint,
    handovers: list[tuple[str, str]],
    prove: ProofFetcher,
) -> tuple[Verifier, str] | Finding:
    """Follow log-key rotations from the pinned key: each handover checkpoint must be signed
    by the key trusted so far and by the next one, and extend what was verified. Returns the
    key trusted at the end and the note verified last."""
    key, at, at_note = state.verifier(), old, state.checkpoint
    for next_text, note in handovers:
        try:
            next_key = Verifier.parse(next_text)
            handover = verify_checkpoint(note, key, state.origin)
            verify_checkpoint(note, next_key, state.origin)
        except LogError:
            continue  # not a handover from the key trusted so far
        if handover.size < at.size:
            key = next_key  # an earlier rotation; what we hold was checked under its key
            continue
        if handover.size > at.size:
            try:
                merkle.verify_consistency(
                    at.size, handover.size, at.root, handover.root, prove(at.size, handover.size)
                )
            except LogError as exc:
                return Finding(
                    "rewritten",
                    f"the log was rewritten or forked before its key rotation at size "
                    f"{handover.size} ({exc.message})",
                    state.checkpoint,
                    note,
                )
        elif handover.root != at.root:
            return Finding(
                "rewritten",
                f"the log was rewritten or forked: two different signed roots for {at.size} events",
                state.checkpoint,
                note,
            )
        key, at, at_note = next_key, handover, note
    return key, at_note


def compare(
    state: State,
    served_note: str,
    prove: ProofFetcher,
    handovers: list[tuple[str, str]] | None = None,
) -> Progressed | Finding:
    """Check the served checkpoint against the saved one (see the module docstring).
    ``handovers``: (new verifier key, handover note) of each log-key rotation, oldest first."""
    key = state.verifier()
    try:
        old = verify_checkpoint(state.checkpoint, key, state.origin)
    except LogError as exc:
        raise InvalidInput(
            f"the saved checkpoint in the state file does not verify ({exc.message}): "
            "the state file is damaged",
            field="state",
        ) from None
    try:
        new = verify_checkpoint(served_note, key, state.origin)
    except LogError as exc:
        followed = _follow(state, old, handovers or [], prove) if handovers else None
        if isinstance(followed, Finding):
            return followed
        if followed is not None and followed[0] != key:
            rotated_key, handover_note = followed
            try:
                new = verify_checkpoint(served_note, rotated_key, state.origin)
            except LogError:
                pass
            else:
                outcome = compare(
                    State(state.origin, rotated_key.key_string(), handover_note),
                    served_note,
                    prove,
                )
                if isinstance(outcome, Finding):
                    return outcome
                return Progressed(
                    "grew" if new.size > old.size else outcome.kind,
                    old,
                    new,
                    key=rotated_key.key_string(),
                )
        return Finding(
            "bad_checkpoint",
            f"the served checkpoint does not verify with the pinned key: {exc.message}",
            state.checkpoint,
            served_note,
        )
    if new.size < old.size:
        return Finding(
            "truncated",
            f"the log was truncated or rolled back: it was {old.size} events, now {new.size}",
            state.checkpoint,
            served_note,
        )
    if new.size == old.size:
        if new.root != old.root:
            return Finding(
                "rewritten",
                f"the log was rewritten or forked: two different signed roots for {old.size} "
                "events",
                state.checkpoint,
                served_note,
            )
        return Progressed("unchanged", old, new)
    proof = prove(old.size, new.size)
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except LogError as exc:
        return Finding(
            "rewritten",
            f"the log was rewritten or forked: the {new.size}-event log does not extend the "
            f"{old.size}-event log you verified ({exc.message})",
            state.checkpoint,
            served_note,
        )
    return Progressed("grew", old, new)


def load(path: Path) -> State | None:
    """The state in ``path``, None if there is no such file; InvalidInput if it is not ours."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="state") from None
    try:
        data: Any = json.loads(raw) if len(raw) <= MAX_STATE_BYTES else None
    except ValueError:
        data = None
    fields = ("origin", "key", "checkpoint")
    if (
        not isinstance(data, dict)
        or data.get("version") != STATE_VERSION
        or not all(isinstance(data.get(f), str) and data.get(f) for f in fields)
    ):
        raise InvalidInput(f"{path} is not a `custody audit watch` state file", field="state")
    state = State(
        origin=data["origin"],
        key=data["key"],
        checkpoint=data["checkpoint"],
        source=str(data.get("source") or ""),
    )
    try:
        state.verifier()
    except LogError:
        raise InvalidInput(f"{path} holds a malformed verifier key", field="state") from None
    return state


def save(path: Path, state: State) -> None:
    """Write the state atomically, mode 0600 (a crash never leaves half a file)."""
    data = {
        "version": STATE_VERSION,
        "origin": state.origin,
        "key": state.key,
        "checkpoint": state.checkpoint,
        "source": state.source,
        "saved_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
