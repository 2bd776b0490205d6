"""A whole-log export verified by several processes gives the sequential verifier's answers.

The workers hash stretches of the file into perfect subtrees and this process joins them
(vault/log/verify.py ``verify_export_file``); the checkpoints fall inside stretches, on their
edges and at the end, and the first bad event is found at the same index either way.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from vault.log import merkle, verify
from vault.log.events import (
    checkpoint_line,
    encode,
    event_object,
    export_header,
    export_line,
)
from vault.log.note import Checkpoint, Signer, generate_signer, sign_checkpoint
from vault.log.verify import LogVerificationError, verify_export, verify_export_file

ORIGIN = "custody.vault/parallel-test"
EVENTS = 2000
EVERY = 7  # a checkpoint every 7 events: many inside each worker's stretch


def _fields(i: int) -> dict[str, object]:
    return {
        "at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
        "actor": f"user:c{i % 5}",
        "role": "consultant",
        "source": "10.0.0.1",
        "action": "secret.checkout",
        "outcome": "ok",
        "client_id": None,
        "subject_kind": "secret",
        "subject_id": f"s-{i % 11}",
        "detail": {"reason": "patching ü", "ticket": f"T-{i}"},
    }


def _write(path: Path, leaves: list[bytes], signer: Signer, roots: dict[int, bytes]) -> None:
    notes = [sign_checkpoint(Checkpoint(ORIGIN, n, r), signer) for n, r in sorted(roots.items())]
    header = export_header(ORIGIN, signer.verifier.key_string(), len(leaves), "whole")
    with path.open("wb") as out:
        out.write(orjson.dumps(header) + b"\n")
        for note in notes:
            out.write(checkpoint_line(note) + b"\n")
        for i, leaf in enumerate(leaves):
            out.write(export_line(leaf, i) + b"\n")


def _roots(leaves: list[bytes]) -> dict[int, bytes]:
    tree = merkle.CompactRange()
    roots = {}
    for n, leaf in enumerate(leaves, 1):
        tree.append(merkle.leaf_hash(leaf))
        if n % EVERY == 0 or n == len(leaves):
            roots[n] = tree.root()
    return roots


def _exported(tmp_path: Path, signer: Signer, leaves: list[bytes]) -> tuple[Path, list[bytes]]:
    """An intact export of ``leaves``, and its lines, to tamper with."""
    path = tmp_path / "log.jsonl"
    _write(path, leaves, signer, _roots(leaves))
    return path, path.read_bytes().splitlines(keepends=True)


def _line_of(lines: list[bytes], index: int) -> int:
    """Where the line of event ``index`` is in ``lines``."""
    prefix = b'{"type":"event","index":%d,' % index
    return next(i for i, raw in enumerate(lines) if raw.startswith(prefix))


def _members_reordered(line: bytes) -> bytes:
    """The same event line with its members in another order and spaces between them: valid,
    but not the exporter's layout (the verifier's explaining path reads it)."""
    obj = orjson.loads(line)
    return b'{"leaf": "%s", "type": "event", "event": %s, "index": %d}\n' % (
        obj["leaf"].encode(),
        orjson.dumps(obj["event"], option=orjson.OPT_SORT_KEYS),
        obj["index"],
    )


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.parse(generate_signer(ORIGIN)[0])


@pytest.fixture(scope="module")
def leaves() -> list[bytes]:
    return [encode(event_object(i, _fields(i))) for i in range(EVENTS)]


FAST_PATHS = {"c": verify._intact_leaves_native, "python": verify._intact_leaves_py}


@pytest.fixture(autouse=True, params=[name for name, path in FAST_PATHS.items() if path])
def _always_parallel(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Every test here runs with each fast path the verifier can have (the C one where it was
    built, and the Python one it falls back to); the forked workers inherit the choice."""
    monkeypatch.setattr(verify, "PARALLEL_THRESHOLD", 0)
    monkeypatch.setattr(verify, "_intact_leaves", FAST_PATHS[request.param])


def _agreed(path: Path, signer: Signer) -> Any:
    """What verifying ``path`` found - a report's figures, or the error's index and message -
    after checking that the sequential and the parallel verifier found the same."""

    def outcome(run: Callable[[], verify.Report]) -> object:
        try:
            report = run()
        except LogVerificationError as exc:
            return ("error", exc.index, exc.message)
        return (report.events, report.checkpoints, report.root)

    with path.open("rb") as lines:
        sequential = outcome(lambda: verify_export(lines, key=signer.verifier))
    parallel = outcome(lambda: verify_export_file(path, key=signer.verifier, jobs=2))
    assert sequential == parallel
    return sequential


def test_an_intact_log_verifies_the_same_in_parallel(
    tmp_path: Path, signer: Signer, leaves: list[bytes]
) -> None:
    path = tmp_path / "log.jsonl"
    roots = _roots(leaves)
    _write(path, leaves, signer, roots)
    assert _agreed(path, signer) == (EVENTS, len(roots), roots[EVENTS])


@pytest.mark.parametrize("index", [0, 1, 6, 7, 8, 999, 1500, EVENTS - 1])
def test_a_re_encoded_event_is_found_at_the_same_place(
    tmp_path: Path, signer: Signer, leaves: list[bytes], index: int
) -> None:
    """The event and its leaf string both changed consistently: only the tree catches it, at
    the first checkpoint after it; the report names the checkpoint segment it is in."""
    roots = _roots(leaves)
    forged = list(leaves)
    forged[index] = encode(event_object(index, {**_fields(index), "actor": "user:mallory"}))
    path = tmp_path / "log.jsonl"
    _write(path, forged, signer, roots)
    found = _agreed(path, signer)
    assert found[0] == "error"
    assert found[1] == index - index % EVERY  # the start of the segment holding it


def test_an_edited_field_is_found_at_its_own_index(
    tmp_path: Path, signer: Signer, leaves: list[bytes]
) -> None:
    path, lines = _exported(tmp_path, signer, leaves)
    at = _line_of(lines, 1234)
    lines[at] = lines[at].replace(b'"user:c4"', b'"user:c3"')
    path.write_bytes(b"".join(lines))
    found = _agreed(path, signer)
    assert found[:2] == ("error", 1234)


def test_a_non_canonical_but_valid_line_takes_the_explaining_path(
    tmp_path: Path, signer: Signer, leaves: list[bytes]
) -> None:
    """Members in another order and spaces: still the same event, so still verified."""
    path, lines = _exported(tmp_path, signer, leaves)
    at = _line_of(lines, 777)
    lines[at] = _members_reordered(lines[at])
    path.write_bytes(b"".join(lines))
    assert _agreed(path, signer) == (EVENTS, len(_roots(leaves)), _roots(leaves)[EVENTS])


def test_a_wrong_leaf_string_is_caught(tmp_path: Path, signer: Signer, leaves: list[bytes]) -> None:
    path = tmp_path / "log.jsonl"
    _write(path, leaves, signer, _roots(leaves))
    data = path.read_bytes()
    good = base64.b64encode(leaves[42])
    bad = base64.b64encode(leaves[42].replace(b"T-42", b"T-43"))
    path.write_bytes(data.replace(good, bad, 1))
    found = _agreed(path, signer)
    assert found[:2] == ("error", 42)


@pytest.mark.parametrize("index", [0, 1000])
def test_an_index_past_64_bits_is_reported_as_such(
    tmp_path: Path, signer: Signer, leaves: list[bytes], index: int
) -> None:
    """Where a stretch begins (event 0), the parallel verifier reads the index from the file:
    one no integer type of C holds is a bad event, not an internal error."""
    path, lines = _exported(tmp_path, signer, leaves)
    at = _line_of(lines, index)
    lines[at] = lines[at].replace(b'"index":%d,' % index, b'"index":%d,' % 2**70, 1)
    path.write_bytes(b"".join(lines))
    found = _agreed(path, signer)
    assert found[0] == "error" and "index" in found[2]


def test_a_missing_event_and_extra_events_are_caught(
    tmp_path: Path, signer: Signer, leaves: list[bytes]
) -> None:
    path, lines = _exported(tmp_path, signer, leaves)
    at = _line_of(lines, 1600)
    path.write_bytes(b"".join(lines[:at] + lines[at + 1 :]))
    found = _agreed(path, signer)
    assert found[:2] == ("error", 1600)
    path.write_bytes(b"".join(lines + lines[-3:]))
    found = _agreed(path, signer)
    assert found[0] == "error"


def _signed_with_raw_event(
    tmp_path: Path, signer: Signer, leaves: list[bytes], index: int, change: dict[str, object]
) -> tuple[Path, list[bytes]]:
    """An export whose event ``index`` has ``change`` applied to its JSON object directly (not
    through the vault's encoder, so outside its rules), with a tree and checkpoints that the
    pinned key really signed: what only the log key's holder could make."""
    event = {**orjson.loads(leaves[index]), **change}
    forged = list(leaves)
    forged[index] = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    path = tmp_path / "log.jsonl"
    _write(path, forged, signer, _roots(forged))
    return path, path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    "change",
    [{"v": True}, {"index": True}, {"detail": {"n": 2**53}}],
    ids=["version-true", "index-true", "integer-too-large"],
)
def test_a_signed_event_of_the_wrong_type_is_refused_in_any_layout(
    tmp_path: Path, signer: Signer, leaves: list[bytes], change: dict[str, object]
) -> None:
    """JSON ``true`` is not the integer 1 (Python's ``True == 1`` must not decide it), and
    integers stop at 2**53 - 1; a signature over such an event does not make it one."""
    path, lines = _signed_with_raw_event(tmp_path, signer, leaves, 1, change)
    found = _agreed(path, signer)
    assert found[:2] == ("error", 1)
    at = _line_of(lines, 1)
    lines[at] = _members_reordered(lines[at])
    path.write_bytes(b"".join(lines))
    found = _agreed(path, signer)
    assert found[:2] == ("error", 1)


@pytest.mark.parametrize(
    "change", [{"at": "yesterday"}, {"actor": ""}, {"detail": {"n": 1.5}}, {"role": 7}]
)
def test_the_layout_of_a_line_does_not_change_the_verdict(
    tmp_path: Path, signer: Signer, leaves: list[bytes], change: dict[str, object]
) -> None:
    """An event the vault itself would not write (docs/audit-log.md section 2), signed by the
    log key: whether the line is in the exporter's layout (the fast path) or not (the
    explaining path), verification answers the same."""
    path, lines = _signed_with_raw_event(tmp_path, signer, leaves, 5, change)
    intact = _agreed(path, signer)
    assert intact[0] == EVENTS  # verified: its fields are exactly what was signed
    at = _line_of(lines, 5)
    lines[at] = _members_reordered(lines[at])
    path.write_bytes(b"".join(lines))
    assert _agreed(path, signer) == intact
