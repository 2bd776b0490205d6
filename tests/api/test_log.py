"""The transparency log over HTTP: key, checkpoints, proofs, entries, exports, the checkpointer.

Every proof the server serves is checked here with the pure verifiers of ``vault.log`` against
the checkpoint the server signed - the way a client would, trusting nothing else it says.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ServerState
from tests.api.conftest import Cast
from tests.conftest import Vault
from vault.config import Settings
from vault.errors import InvalidInput
from vault.log import merkle
from vault.log.events import encode, event_object
from vault.log.note import Checkpoint, Verifier, verify_checkpoint
from vault.log.verify import LogVerificationError, verify_export
from vault.services import audit, auditlog
from vault.store import Store


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _size(vault: Vault) -> int:
    with vault.store.read_session() as session, session.begin():
        return auditlog.head(session).size


def _events(vault: Vault, n: int, client_id: str | None = None, **fields: Any) -> None:
    with vault.ctx() as ctx:
        for i in range(n):
            audit.record(ctx, "test.event", client_id=client_id, n=i, **fields)


def _key(cast: Cast, who: str = "auditor") -> Verifier:
    return Verifier.parse(cast.api.get("/log/key", headers=cast.headers(who)).json()["key"])


def _checkpoint(cast: Cast, who: str = "auditor", size: int | None = None) -> Checkpoint:
    params = {"size": size} if size is not None else None
    response = cast.api.get("/log/checkpoint", headers=cast.headers(who), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return verify_checkpoint(response.text, _key(cast, who))


def _index_of(vault: Vault, client_id: str) -> int:
    """The leaf index of some event about ``client_id``."""
    from sqlalchemy import select

    from vault.db.models import AuditEvent

    with vault.store.read_session() as session, session.begin():
        found = session.scalars(
            select(AuditEvent.seq).where(AuditEvent.client_id == client_id).limit(1)
        ).first()
    assert found is not None
    return found


def test_key_and_checkpoint_for_every_signed_in_role(cast: Cast) -> None:
    for who in ("admin", "cons_a", "cons_none", "client_a", "client_b", "auditor"):
        info = cast.api.get("/log/key", headers=cast.headers(who)).json()
        key = Verifier.parse(info["key"])
        assert info["origin"] and key.name
        cp = _checkpoint(cast, who)
        # the checkpoint is fresh: it covers every event so far (reading appended none)
        assert cp.size == _size(cast.vault) and cp.origin == info["origin"]
    assert cast.api.get("/log/key").status_code == 401
    assert cast.api.get("/log/checkpoint").status_code == 401


def test_reading_the_log_appends_no_event(cast: Cast) -> None:
    headers = cast.headers("auditor")
    before = _size(cast.vault)
    for path in ("/log/key", "/log/checkpoint", "/log/entries", "/log/export", "/log/checkpoints"):
        assert cast.api.get(path, headers=headers).status_code == 200, path
    assert cast.api.get("/log/proof/consistency?old=1&new=2", headers=headers).status_code == 200
    assert _size(cast.vault) == before


def test_checkpoint_of_a_size_and_the_history(cast: Cast) -> None:
    first = _checkpoint(cast)
    _events(cast.vault, 3)
    second = _checkpoint(cast)
    assert second.size == first.size + 3
    assert _checkpoint(cast, "client_a", size=first.size) == first
    missing = cast.api.get(
        "/log/checkpoint", params={"size": first.size + 1}, headers=cast.headers("auditor")
    )
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "size"
    history = cast.api.get("/log/checkpoints", headers=cast.headers("auditor")).json()
    sizes = [c["size"] for c in history]
    assert sizes == sorted(sizes) and {first.size, second.size} <= set(sizes)
    for c in history:
        assert _b64(c["root"]) == verify_checkpoint(c["note"], _key(cast)).root
    after = cast.api.get(
        "/log/checkpoints", params={"after": first.size}, headers=cast.headers("admin")
    ).json()
    assert [c["size"] for c in after] == [s for s in sizes if s > first.size]
    assert cast.api.get("/log/checkpoints", headers=cast.headers("client_a")).status_code == 403
    assert cast.api.get("/log/checkpoints", headers=cast.headers("cons_a")).status_code == 403


def test_inclusion_proofs_verify_against_the_served_checkpoint(cast: Cast) -> None:
    vault = cast.vault
    _events(vault, 20, client_id=cast.ids["client_a"])
    cp = _checkpoint(cast)
    headers = cast.headers("auditor")
    entries = {e["index"]: e for e in _all_entries(cast, "auditor", limit=1000)}
    for index in (0, 1, 7, 16, cp.size - 1):
        proof = cast.api.get(
            "/log/proof/inclusion", params={"index": index}, headers=headers
        ).json()
        assert proof["index"] == index and proof["size"] == cp.size
        leaf = _b64(entries[index]["leaf"])
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), index, cp.size, [_b64(h) for h in proof["hashes"]], cp.root
        )
    # an older tree size works too, against that size's checkpoint
    _events(vault, 5)
    _checkpoint(cast)
    proof = cast.api.get(
        "/log/proof/inclusion", params={"index": 3, "size": cp.size}, headers=headers
    ).json()
    assert proof["size"] == cp.size
    old = _checkpoint(cast, size=cp.size)
    merkle.verify_inclusion(
        merkle.leaf_hash(_b64(entries[3]["leaf"])),
        3,
        cp.size,
        [_b64(h) for h in proof["hashes"]],
        old.root,
    )


def test_inclusion_proofs_follow_the_client_scope(cast: Cast) -> None:
    vault = cast.vault
    _events(vault, 2, client_id=cast.ids["client_a"])
    _events(vault, 2, client_id=cast.ids["client_b"])
    ours, theirs = _index_of(vault, cast.ids["client_a"]), _index_of(vault, cast.ids["client_b"])
    cp = _checkpoint(cast, "client_a")

    def ask(who: str, index: int) -> Any:
        return cast.api.get(
            "/log/proof/inclusion", params={"index": index}, headers=cast.headers(who)
        )

    good = ask("client_a", ours)
    assert good.status_code == 200 and good.json()["size"] == cp.size
    # another client's event does not visibly exist, for a client contact
    refused = ask("client_a", theirs)
    assert refused.status_code == 404 and refused.json()["error"]["field"] == "index"
    assert ask("client_b", theirs).status_code == 200
    assert ask("auditor", theirs).status_code == 200
    assert ask("cons_a", ours).status_code == 403


def test_bad_proof_sizes_are_422_with_the_field(cast: Cast) -> None:
    headers = cast.headers("auditor")
    size = _checkpoint(cast).size
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/log/proof/inclusion", {"index": 0, "size": size + 1000}, "size"),
        ("/log/proof/inclusion", {"index": 2, "size": 2}, "index"),
        ("/log/proof/inclusion", {"index": -1}, "index"),
        ("/log/proof/inclusion", {"index": 2**70}, "index"),
        ("/log/proof/inclusion", {"index": "x"}, "index"),
        ("/log/proof/consistency", {"old": 3, "new": 2}, "old"),
        ("/log/proof/consistency", {"old": 1, "new": size + 1000}, "new"),
        ("/log/proof/consistency", {"old": 1, "new": 2**63}, "new"),
        ("/log/proof/consistency", {"old": 1}, "new"),
        ("/log/entries", {"limit": 0}, "limit"),
        ("/log/entries", {"limit": auditlog.MAX_PAGE + 1}, "limit"),
        ("/log/entries", {"after": -2}, "after"),
        ("/log/checkpoints", {"after": 2**64}, "after"),
        ("/log/entries", {"since": "yesterday"}, "since"),
        ("/log/entries", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01"}, "since"),
        ("/log/export", {"format": "xml"}, "format"),
    ]
    for path, params, field in cases:
        response = cast.api.get(path, params=params, headers=headers)
        assert response.status_code == 422, (path, params, response.text)
        assert field in (response.json()["error"]["field"] or ""), (path, params, response.text)


def test_consistency_proofs_verify_between_signed_checkpoints(cast: Cast) -> None:
    sizes = []
    for n in (1, 5, 16, 1):
        _events(cast.vault, n)
        sizes.append(_checkpoint(cast).size)
    headers = cast.headers("cons_a")  # a consultant may: it reveals no event
    checkpoints = {s: _checkpoint(cast, size=s) for s in sizes}
    for old in sizes:
        for new in sizes:
            if old > new:
                continue
            proof = cast.api.get(
                "/log/proof/consistency", params={"old": old, "new": new}, headers=headers
            ).json()
            assert (proof["old"], proof["new"]) == (old, new)
            merkle.verify_consistency(
                old,
                new,
                checkpoints[old].root,
                checkpoints[new].root,
                [_b64(h) for h in proof["hashes"]],
            )


def _all_entries(cast: Cast, who: str, limit: int = 3, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        query = {**params, "limit": limit, **({"after": after} if after is not None else {})}
        response = cast.api.get("/log/entries", params=query, headers=cast.headers(who))
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["entries"])
        if page["next_after"] is None:
            return found
        assert page["next_after"] == page["entries"][-1]["index"]
        after = page["next_after"]


def test_entries_pages_carry_fields_and_exact_leaf_bytes(cast: Cast) -> None:
    _events(cast.vault, 4, client_id=cast.ids["client_a"])
    entries = _all_entries(cast, "auditor")
    size = _size(cast.vault)
    assert [e["index"] for e in entries] == list(range(size))
    for e in entries:
        # anyone can recompute the leaf from the fields, and the tree from the leaves
        assert _b64(e["leaf"]) == encode(event_object(e["index"], e["event"]))
    root = merkle.root_from_leaf_hashes(merkle.leaf_hash(_b64(e["leaf"])) for e in entries)
    assert root == _checkpoint(cast).root


def test_entries_filters_and_scope(cast: Cast) -> None:
    vault, a, b = cast.vault, cast.ids["client_a"], cast.ids["client_b"]
    start = datetime.now(UTC)
    _events(vault, 3, client_id=a)
    _events(vault, 2, client_id=b, outcome="denied")
    with vault.ctx(actor="operator:someone-else") as ctx:
        audit.record(ctx, "test.other", client_id=a)

    everything = _all_entries(cast, "auditor")
    by_name = _all_entries(cast, "auditor", client="Acme")
    assert by_name == _all_entries(cast, "auditor", client=a)  # name or id
    assert by_name and {e["event"]["client_id"] for e in by_name} == {a}
    assert by_name == [e for e in everything if e["event"]["client_id"] == a]
    denied = _all_entries(cast, "auditor", outcome="denied")
    assert [e["event"]["client_id"] for e in denied] == [b, b]
    assert [e["event"]["actor"] for e in _all_entries(cast, "admin", actor="operator:someone-else")]
    assert {e["event"]["action"] for e in _all_entries(cast, "admin", action="test.other")} == {
        "test.other"
    }
    recent = _all_entries(cast, "auditor", since=start.isoformat())
    assert len(recent) == 6
    assert _all_entries(cast, "auditor", until=start.isoformat()) == everything[: -len(recent)]
    later = (start + timedelta(days=1)).replace(tzinfo=None).isoformat()  # no zone: UTC
    assert _all_entries(cast, "auditor", since=later) == []

    # a client contact sees its own client's events only; another client is "not found"
    mine = _all_entries(cast, "client_a")
    assert mine == by_name
    other = cast.api.get(
        "/log/entries", params={"client": "Globex"}, headers=cast.headers("client_a")
    )
    assert other.status_code == 404 and other.json()["error"]["field"] == "client"
    assert cast.api.get("/log/entries", headers=cast.headers("cons_a")).status_code == 403


def test_entries_with_proofs_verify_against_their_checkpoint(cast: Cast) -> None:
    _events(cast.vault, 5, client_id=cast.ids["client_a"])
    page = cast.api.get(
        "/log/entries", params={"proofs": "true", "limit": 50}, headers=cast.headers("client_a")
    ).json()
    cp = verify_checkpoint(page["checkpoint"]["note"], _key(cast))
    assert page["checkpoint"]["size"] == cp.size and _b64(page["checkpoint"]["root"]) == cp.root
    assert len(page["entries"]) >= 5
    for e in page["entries"]:
        merkle.verify_inclusion(
            merkle.leaf_hash(_b64(e["leaf"])),
            e["index"],
            cp.size,
            [_b64(h) for h in e["proof"]],
            cp.root,
        )
    plain = cast.api.get("/log/entries", headers=cast.headers("client_a")).json()
    assert plain["checkpoint"] is None and "proof" not in plain["entries"][0]


def _export(cast: Cast, who: str, **params: Any) -> bytes:
    response = cast.api.get("/log/export", params=params, headers=cast.headers(who))
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    assert int(response.headers["content-length"]) == len(response.content)
    return response.content


def test_jsonl_export_of_a_client_verifies_offline(cast: Cast) -> None:
    _events(cast.vault, 3, client_id=cast.ids["client_a"])
    _events(cast.vault, 3, client_id=cast.ids["client_b"])
    key = _key(cast)
    body = _export(cast, "client_a")
    lines = body.splitlines(keepends=True)
    report = verify_export(lines, key=key)
    assert report.view == "filtered" and report.key_pinned
    expected = [e["index"] for e in _all_entries(cast, "client_a")]
    assert report.events == len(expected) > 3
    events = [orjson.loads(line) for line in lines if b'"type":"event"' in line]
    assert [e["index"] for e in events] == expected
    assert {e["event"]["client_id"] for e in events} == {cast.ids["client_a"]}

    # an edited field is caught, naming the event
    victim = events[1]
    victim["event"]["actor"] = "user:nobody"
    edited = [
        orjson.dumps({"type": "event", **victim}) + b"\n"
        if b'"index":%d,' % victim["index"] in ln and b'"type":"event"' in ln
        else ln
        for ln in lines
    ]
    with pytest.raises(LogVerificationError) as caught:
        verify_export(edited, key=key)
    assert caught.value.index == victim["index"]


def test_whole_jsonl_export_verifies_with_every_checkpoint(cast: Cast) -> None:
    _checkpoint(cast)
    _events(cast.vault, 7)
    saved = cast.api.get("/log/checkpoint", headers=cast.headers("auditor")).text
    _events(cast.vault, 2)
    report = verify_export(
        _export(cast, "auditor").splitlines(keepends=True), key=_key(cast), saved_checkpoint=saved
    )
    assert report.view == "whole" and report.checkpoints >= 3
    assert report.size == report.events == _size(cast.vault)
    assert report.saved_size == verify_checkpoint(saved, _key(cast)).size


def test_csv_export_columns(cast: Cast) -> None:
    _events(cast.vault, 2, client_id=cast.ids["client_a"], outcome="denied")
    text = _export(cast, "auditor", format="csv", client="Acme", outcome="denied").decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == auditlog.CSV_COLUMNS
    assert len(rows) == 3
    entries = {e["index"]: e for e in _all_entries(cast, "auditor", client="Acme")}
    for row in rows[1:]:
        record = dict(zip(rows[0], row, strict=True))
        entry = entries[int(record["index"])]
        assert record["outcome"] == "denied" and record["client_id"] == cast.ids["client_a"]
        assert record["leaf_hash"] == merkle.leaf_hash(_b64(entry["leaf"])).hex()
        assert orjson.loads(record["detail"]) == entry["event"]["detail"]


def test_exports_follow_roles(cast: Cast) -> None:
    assert cast.api.get("/log/export", headers=cast.headers("cons_a")).status_code == 403
    refused = cast.api.get(
        "/log/export", params={"client": "Acme"}, headers=cast.headers("client_b")
    )
    assert refused.status_code == 404


# --- the checkpointer ----------------------------------------------------------------------------


def test_checkpoint_settings_from_the_environment() -> None:
    base = {"CUSTODY_DATABASE_URL": "sqlite:///x.db"}
    default = Settings.from_env(base)
    assert (default.checkpoint_events, default.checkpoint_seconds) == (1000, 60.0)
    chosen = Settings.from_env(
        {**base, "CUSTODY_CHECKPOINT_EVENTS": "3", "CUSTODY_CHECKPOINT_SECONDS": "0.5"}
    )
    assert (chosen.checkpoint_events, chosen.checkpoint_seconds) == (3, 0.5)
    for name, value in (
        ("CUSTODY_CHECKPOINT_EVENTS", "0"),
        ("CUSTODY_CHECKPOINT_EVENTS", "2.5"),
        ("CUSTODY_CHECKPOINT_SECONDS", "-1"),
        ("CUSTODY_CHECKPOINT_SECONDS", "nan"),
    ):
        with pytest.raises(InvalidInput) as caught:
            Settings.from_env({**base, name: value})
        assert caught.value.field == name


def _latest_size(vault: Vault) -> int | None:
    with vault.store.read_session() as session, session.begin():
        latest = auditlog.latest_checkpoint(session)
        return latest.size if latest is not None else None


def _wait_for(predicate: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_checkpointer_signs_after_n_events(vault: Vault) -> None:
    env = {
        "CUSTODY_DATABASE_URL": vault.settings.database_url,
        "CUSTODY_CHECKPOINT_EVENTS": "3",
        "CUSTODY_CHECKPOINT_SECONDS": "3600",
    }
    settings = dataclasses.replace(vault.settings, **_checkpoint_fields(Settings.from_env(env)))
    store = Store(engine=vault.store.engine, settings=settings)
    _events(vault, 2)
    with TestClient(create_app(ServerState(store=store, keys=vault.keys), sweep_leases=False)):
        # signed right after start (the vault is unsealed), covering every event so far
        assert _wait_for(lambda: _latest_size(vault) == _size(vault))
        signed = _size(vault)
        _events(vault, 2)  # fewer than 3: not due yet
        time.sleep(2.5)
        assert _latest_size(vault) == signed
        _events(vault, 1)  # now 3 since the latest checkpoint
        assert _wait_for(lambda: _latest_size(vault) == signed + 3)


def _checkpoint_fields(settings: Settings) -> dict[str, Any]:
    return {
        "checkpoint_events": settings.checkpoint_events,
        "checkpoint_seconds": settings.checkpoint_seconds,
    }


def test_checkpointer_signs_after_t_seconds_and_not_while_sealed(vault: Vault) -> None:
    settings = dataclasses.replace(vault.settings, checkpoint_events=1000, checkpoint_seconds=1)
    state = ServerState(store=Store(engine=vault.store.engine, settings=settings))  # sealed
    _events(vault, 1)
    with TestClient(create_app(state, sweep_leases=False)) as api:
        time.sleep(1.5)
        assert _latest_size(vault) != _size(vault)  # sealed: nothing signed
        from tests.conftest import TEST_PASSPHRASE

        assert api.post("/sys/unseal", json={"passphrase": TEST_PASSPHRASE}).status_code == 200
        # signed right after the unseal (which itself was logged)
        assert _wait_for(lambda: _latest_size(vault) == _size(vault))
        _events(vault, 1)
        assert _wait_for(lambda: _latest_size(vault) == _size(vault), seconds=6)
