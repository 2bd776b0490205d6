"""`custody audit` on the local store, on each engine: key, checkpoint, log, export, proofs,
offline verify (exit 0 / 1 for a finding / 2 for a wrong file), and watch across growth,
truncation and rewriting of the log in the database."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update

from tests.cli.conftest import Result, Run
from tests.cli.test_commands import ok, one_line_error
from vault.config import Settings
from vault.db.models import AuditEvent, LogCheckpoint, LogNode, LogState
from vault.log import merkle
from vault.log.note import Verifier, verify_checkpoint
from vault.services import audit, auditlog
from vault.store import Store


def failed(result: Result, *needles: str) -> str:
    """A finding: exit 1 and one FAILED line naming what is wrong."""
    assert result.code == 1, (result.out, result.err)
    lines = [ln for ln in result.err.splitlines() if ln.startswith("custody: FAILED:")]
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.err
    return lines[0]


@pytest.fixture
def logged(initialized: Run) -> Run:
    ok(initialized("client", "add", "Acme"))
    ok(initialized("client", "add", "Globex"))
    return initialized


def _store() -> Store:
    return Store.open(Settings.from_env())


def _record(n: int, action: str = "test.event", client_id: str | None = None) -> None:
    store = _store()
    try:
        with store.context("operator:test") as ctx:
            for i in range(n):
                audit.record(ctx, action, client_id=client_id, n=i)
    finally:
        store.engine.dispose()


def _size() -> int:
    store = _store()
    try:
        with store.read_session() as session, session.begin():
            return auditlog.head(session).size
    finally:
        store.engine.dispose()


def _truncate(size: int) -> None:
    """What a dishonest operator could do to the database: cut the log back to ``size`` events
    (head, leaves, stored subtrees and later checkpoints), as a restored old copy would be."""
    store = _store()
    try:
        with store.session() as session, session.begin():
            leaves = session.scalars(
                select(AuditEvent.leaf_hash).where(AuditEvent.seq < size).order_by(AuditEvent.seq)
            ).all()
            compact = merkle.CompactRange()
            compact.extend(leaves)
            session.execute(delete(AuditEvent).where(AuditEvent.seq >= size))
            for level, idx in session.execute(select(LogNode.level, LogNode.idx)).all():
                if (idx + 1) << level > size:
                    session.execute(
                        delete(LogNode).where(LogNode.level == level, LogNode.idx == idx)
                    )
            session.execute(delete(LogCheckpoint).where(LogCheckpoint.size > size))
            session.execute(
                update(LogState)
                .where(LogState.id == 1)
                .values(size=size, compact=compact.to_bytes())
            )
    finally:
        store.engine.dispose()


def test_key_and_checkpoint(logged: Run, tmp_path: Path) -> None:
    key = Verifier.parse(ok(logged("audit", "key")).out.strip())
    info = json.loads(ok(logged("audit", "key", "--json")).out)
    assert info["key"] == key.key_string() and info["origin"]
    note = ok(logged("audit", "checkpoint")).out
    cp = verify_checkpoint(note, key, info["origin"])
    assert cp.size == _size()
    out = tmp_path / "cp.note"
    ok(logged("audit", "checkpoint", "--out", str(out)))
    assert out.read_text() == note and oct(out.stat().st_mode & 0o777) == "0o600"
    one_line_error(logged("audit", "checkpoint", "--out", str(out)), "refusing to overwrite")
    assert ok(logged("audit", "checkpoint", "--size", str(cp.size))).out == note
    one_line_error(logged("audit", "checkpoint", "--size", str(cp.size + 50)), "no checkpoint")


def test_log_lists_with_filters(logged: Run) -> None:
    page = json.loads(ok(logged("audit", "log", "--json")).out)
    assert [e["index"] for e in page["entries"]] == list(range(_size()))
    acme = json.loads(ok(logged("audit", "log", "--client", "Acme", "--json")).out)["entries"]
    assert acme and all(e["event"]["action"].startswith("client.") for e in acme)
    assert len({e["event"]["client_id"] for e in acme}) == 1
    adds = json.loads(ok(logged("audit", "log", "--action", "client.add", "--json")).out)
    assert len(adds["entries"]) == 2
    paged = json.loads(ok(logged("audit", "log", "--limit", "1", "--after", "0", "--json")).out)
    assert [e["index"] for e in paged["entries"]] == [1] and paged["next_after"] == 1
    future = ok(logged("audit", "log", "--since", "2999-01-01"))
    assert "no events match" in future.out
    table = ok(logged("audit", "log", "--limit", "2"))
    assert "index" in table.out and "more: --after 1" in table.err
    one_line_error(logged("audit", "log", "--client", "Nobody"), "no client")
    assert logged("audit", "log", "--since", "last tuesday").code == 2
    proofs = json.loads(ok(logged("audit", "log", "--proofs", "--json")).out)
    cp = verify_checkpoint(proofs["checkpoint"]["note"], Verifier.parse(_key(logged)))
    for e in proofs["entries"]:
        leaf = merkle.leaf_hash(base64.b64decode(e["leaf"]))
        proof = [base64.b64decode(h) for h in e["proof"]]
        merkle.verify_inclusion(leaf, e["index"], cp.size, proof, cp.root)


def _key(run: Run) -> str:
    return ok(run("audit", "key")).out.strip()


def _other_key() -> str:
    return Verifier(
        name="other.log", public_key=Ed25519PrivateKey.generate().public_key()
    ).key_string()


def test_export_and_verify(logged: Run, tmp_path: Path) -> None:
    key = _key(logged)
    saved = tmp_path / "saved.note"
    ok(logged("audit", "checkpoint", "--out", str(saved)))
    _record(5)
    export = tmp_path / "log.jsonl"
    ok(logged("audit", "export", "--out", str(export)))
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    one_line_error(logged("audit", "export", "--out", str(export)), "refusing to overwrite")

    good = ok(logged("audit", "verify", str(export)))
    assert "verified" in good.out and f"size         {_size()}" in good.out
    assert "key was read from the file" in good.err  # not pinned: warned
    key_file = tmp_path / "log.vkey"
    key_file.write_text(key + "\n")
    pinned = ok(
        logged("audit", "verify", str(export), "--key", str(key_file), "--checkpoint", str(saved))
    )
    assert "warning" not in pinned.err
    report = json.loads(ok(logged("audit", "verify", str(export), "--key", key, "--json")).out)
    assert report["events"] == report["size"] == _size() and report["key_pinned"] is True
    assert (
        report["root"]
        == base64.b64encode(
            verify_checkpoint(ok(logged("audit", "checkpoint")).out, Verifier.parse(key)).root
        ).decode()
    )

    # one field of one event edited: a finding (exit 1) naming the event
    lines = export.read_bytes().splitlines(keepends=True)
    for i, line in enumerate(lines):
        obj = orjson.loads(line)
        if obj.get("type") == "event" and obj["index"] == 3:
            obj["event"]["actor"] = "user:nobody"
            lines[i] = orjson.dumps(obj) + b"\n"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(lines))
    failed(logged("audit", "verify", str(edited), "--key", key), "event 3", "edited")
    # an event removed
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_bytes(
        b"".join(
            ln
            for ln in export.read_bytes().splitlines(keepends=True)
            if b'"index":4,' not in ln or b'"type":"event"' not in ln
        )
    )
    failed(logged("audit", "verify", str(dropped), "--key", key), "event 4")
    # checkpoints signed by another key than the pinned one
    failed(logged("audit", "verify", str(export), "--key", _other_key()), "does not verify")

    # not a log export at all, a missing file, a bad key: usage errors (exit 2, one line)
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\x01 not json\n")
    one_line_error(logged("audit", "verify", str(garbage)), "not a Custody log export")
    one_line_error(logged("audit", "verify", str(tmp_path / "missing.jsonl")), "cannot read")
    one_line_error(logged("audit", "verify", str(export), "--key", "nonsense"), "verifier key")
    one_line_error(
        logged("audit", "verify", str(export), "--checkpoint", str(tmp_path / "none")),
        "cannot read",
    )


def test_verify_with_a_later_saved_checkpoint_finds_the_truncation(
    logged: Run, tmp_path: Path
) -> None:
    key = _key(logged)
    early = tmp_path / "early.jsonl"
    ok(logged("audit", "export", "--out", str(early)))
    _record(3)
    later = tmp_path / "later.note"
    ok(logged("audit", "checkpoint", "--out", str(later)))
    failed(
        logged("audit", "verify", str(early), "--key", key, "--checkpoint", str(later)),
        "truncated or rolled back",
    )


def test_filtered_and_csv_exports(logged: Run, tmp_path: Path) -> None:
    key = _key(logged)
    acme = tmp_path / "acme.jsonl"
    ok(logged("audit", "export", "--out", str(acme), "--client", "Acme"))
    result = json.loads(ok(logged("audit", "verify", str(acme), "--key", key, "--json")).out)
    assert result["view"] == "filtered" and result["events"] >= 1
    sheet = tmp_path / "log.csv"
    ok(logged("audit", "export", "--out", str(sheet), "--format", "csv", "--action", "client.add"))
    rows = list(csv.reader(io.StringIO(sheet.read_text())))
    assert tuple(rows[0]) == auditlog.CSV_COLUMNS and len(rows) == 3
    assert {r[rows[0].index("action")] for r in rows[1:]} == {"client.add"}


def test_proofs(logged: Run) -> None:
    key = _key(logged)
    first = verify_checkpoint(ok(logged("audit", "checkpoint")).out, Verifier.parse(key))
    _record(6)
    second = verify_checkpoint(ok(logged("audit", "checkpoint")).out, Verifier.parse(key))
    inclusion = ok(logged("audit", "proof", "inclusion", "1", "--verify", "--key", key))
    assert f"event 1 is in the log of size {second.size}" in inclusion.err
    assert "warning" not in inclusion.err
    data = json.loads(
        ok(logged("audit", "proof", "inclusion", "1", "--size", str(first.size), "--json")).out
    )
    assert data["size"] == first.size and data["index"] == 1
    consistency = ok(
        logged(
            "audit",
            "proof",
            "consistency",
            str(first.size),
            str(second.size),
            "--verify",
            "--key",
            key,
        )
    )
    assert "is a prefix" in consistency.err
    shown = json.loads(
        ok(logged("audit", "proof", "consistency", "0", str(second.size), "--json")).out
    )
    assert shown == {"old": 0, "new": second.size, "hashes": []}
    tofu = ok(logged("audit", "proof", "consistency", "0", str(first.size), "--verify"))
    assert "no --key given" in tofu.err
    one_line_error(logged("audit", "proof", "consistency", "5", "2"), "larger")
    one_line_error(logged("audit", "proof", "inclusion", str(second.size + 100)), "no event")


def test_watch_across_growth(logged: Run, tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    first = ok(logged("audit", "watch", "--state", str(state)))
    assert "pinned the log key" in first.out and "trusting the key" in first.err
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    saved = json.loads(state.read_text())
    assert saved["key"] == _key(logged)
    assert "unchanged" in ok(logged("audit", "watch", "--state", str(state))).out
    _record(4)
    grew = ok(logged("audit", "watch", "--state", str(state)))
    assert "consistent: the log grew" in grew.out
    assert json.loads(state.read_text())["checkpoint"] != saved["checkpoint"]
    # a state pinned to one key refuses another --key
    refused = logged("audit", "watch", "--state", str(state), "--key", _other_key())
    one_line_error(refused, "pins another key")
    # a state file that is not ours
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    one_line_error(logged("audit", "watch", "--state", str(junk)), "not a `custody audit watch`")


def test_watch_follows_a_log_key_rotation(logged: Run, tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    old_key = _key(logged)
    ok(logged("audit", "watch", "--state", str(state), "--key", old_key))
    _record(3)
    ok(logged("key", "rotate", "log"))
    _record(3)
    new_key = _key(logged)
    assert new_key != old_key
    followed = ok(logged("audit", "watch", "--state", str(state)))
    assert "log key was rotated" in followed.out and "consistent" in followed.out
    assert json.loads(state.read_text())["key"] == new_key
    assert "unchanged" in ok(logged("audit", "watch", "--state", str(state))).out
    # The whole export verifies with either key pinned.
    export = tmp_path / "log.jsonl"
    ok(logged("audit", "export", "--out", str(export)))
    for key in (old_key, new_key):
        ok(logged("audit", "verify", str(export), "--key", key))


def test_watch_first_run_with_the_wrong_key_is_a_finding(logged: Run, tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    result = logged("audit", "watch", "--state", str(state), "--key", _other_key())
    failed(result, "does not verify with the key")
    assert not state.exists()


def _evidence(result: Result, saved_note: str) -> None:
    """Both checkpoints are printed: the one kept, and the one served now."""
    assert saved_note in result.out
    served = result.out.split("served now by", 1)[1].split("\n", 1)[1]
    assert served.strip() and served != saved_note


def test_watch_reports_truncation(logged: Run, tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    keep = _size()
    _record(5)
    ok(logged("audit", "watch", "--state", str(state), "--key", _key(logged)))
    before = state.read_bytes()
    saved_note = json.loads(before)["checkpoint"]
    _truncate(keep)
    result = logged("audit", "watch", "--state", str(state))
    failed(result, "truncated or rolled back", f"was {keep + 5} events, now {keep}")
    _evidence(result, saved_note)
    assert state.read_bytes() == before  # the evidence is kept: the state is not overwritten


def test_watch_reports_rewriting(logged: Run, tmp_path: Path) -> None:
    state = tmp_path / "watch.json"
    keep = _size()
    _record(5)
    ok(logged("audit", "watch", "--state", str(state), "--key", _key(logged)))
    before = state.read_bytes()
    saved_note = json.loads(before)["checkpoint"]
    # The same number of events, but other ones: another root for a size already seen.
    _truncate(keep)
    _record(5, action="test.rewritten")
    result = logged("audit", "watch", "--state", str(state))
    failed(result, "rewritten or forked", "two different signed roots")
    _evidence(result, saved_note)
    # Rewritten and grown past the saved size: the consistency proof fails.
    _record(3, action="test.rewritten")
    result = logged("audit", "watch", "--state", str(state))
    failed(result, "rewritten or forked", "does not extend")
    _evidence(result, saved_note)
    assert state.read_bytes() == before
