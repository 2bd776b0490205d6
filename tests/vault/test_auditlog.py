"""The transparency log in the database: appends, proofs, checkpoints, scope, concurrency."""

from __future__ import annotations

import io
import itertools
import multiprocessing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import String, cast, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.conftest import Vault
from vault.config import Settings
from vault.db.models import AuditEvent, LogCheckpoint, LogNode
from vault.errors import Forbidden, NotFound, Sealed, StorageError
from vault.log import merkle
from vault.log.events import json_value, leaf_bytes
from vault.log.note import Verifier, verify_checkpoint
from vault.log.verify import LogVerificationError, verify_export
from vault.services import Principal, audit, auditlog, clients, secrets


def _leaf_hashes(vault: Vault) -> list[bytes]:
    with vault.store.session() as s:
        return list(s.scalars(select(AuditEvent.leaf_hash).order_by(AuditEvent.seq)))


_titles = itertools.count()
_EVENT_COLUMNS = [c.name for c in AuditEvent.__table__.columns if c.name != "id"]


def _fill(vault: Vault, n: int, client: str = "Acme") -> None:
    with vault.ctx() as ctx:
        if client not in {c.name for c in clients.list_clients(ctx)}:
            clients.add_client(ctx, client)
        secrets.add_secrets(
            ctx,
            client,
            [secrets.NewSecret(title=f"s{next(_titles)}", value="v" * 16) for _ in range(n)],
        )


def test_events_are_leaves_in_order_with_no_gaps(vault: Vault) -> None:
    _fill(vault, 20)
    with vault.store.session() as s:
        rows = s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        assert [r.seq for r in rows] == list(range(len(rows)))
        for r in rows:
            fields = {k: getattr(r, k) for k in ("at", "actor", "role", "source", "action")}
            fields.update(
                outcome=r.outcome,
                client_id=r.client_id,
                subject_kind=r.subject_kind,
                subject_id=r.subject_id,
                detail=r.detail,
            )
            assert r.leaf_hash == merkle.leaf_hash(leaf_bytes(r.seq, fields))
        now = auditlog.head(s)
    assert now.size == len(rows)
    assert now.root == merkle.root_from_leaf_hashes(r.leaf_hash for r in rows)


def test_a_rolled_back_transaction_leaves_no_gap(vault: Vault) -> None:
    _fill(vault, 2)
    size = len(_leaf_hashes(vault))
    with pytest.raises(RuntimeError), vault.ctx() as ctx:
        audit.record(ctx, "test.doomed")
        raise RuntimeError("roll back")
    with vault.ctx() as ctx:
        audit.record(ctx, "test.kept")
    with vault.store.session() as s:
        last = s.execute(select(AuditEvent).order_by(AuditEvent.seq.desc())).scalars().first()
        assert last is not None and last.seq == size and last.action == "test.kept"
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "test.doomed")) is None


def test_proofs_from_the_database_match_the_pure_tree(vault: Vault) -> None:
    # 300 leaves: stored subtrees at level 4 (16 leaves) and 8 (256 leaves) are both used.
    _fill(vault, 299)
    hashes = _leaf_hashes(vault)
    n = len(hashes)
    assert n >= 300
    with vault.store.session() as s:
        levels = set(s.scalars(select(LogNode.level)))
        assert levels == {4, 8}
        for index, size in [(0, 1), (0, n), (n - 1, n), (17, 255), (255, 257), (129, 300), (5, 16)]:
            proof = auditlog.inclusion_proof(s, index, size)
            assert proof == merkle.inclusion_proof(index, size, hashes.__getitem__)
            root = merkle.root_from_leaf_hashes(hashes[:size])
            merkle.verify_inclusion(hashes[index], index, size, proof, root)
        for old, new in [(1, n), (16, 256), (17, 300), (255, 256), (256, n), (100, 101)]:
            proof = auditlog.consistency_proof(s, old, new)
            assert proof == merkle.consistency_proof(old, new, hashes.__getitem__)
            merkle.verify_consistency(
                old,
                new,
                merkle.root_from_leaf_hashes(hashes[:old]),
                merkle.root_from_leaf_hashes(hashes[:new]),
                proof,
            )
        many = auditlog.inclusion_proofs(s, [0, 7, 200], n)
        assert many == [merkle.inclusion_proof(i, n, hashes.__getitem__) for i in (0, 7, 200)]
        with pytest.raises(merkle.ProofError):
            auditlog.inclusion_proof(s, 0, n + 1)


def test_checkpoints_are_signed_by_the_pinned_log_key(vault: Vault) -> None:
    _fill(vault, 3)
    with vault.ctx() as ctx:
        first = auditlog.sign(ctx.session, vault.keys)
        again = auditlog.sign(ctx.session, vault.keys)
        key = Verifier.parse(auditlog.verifier_key(ctx.session))
        origin = auditlog.head(ctx.session).origin
    assert again.size == first.size and again.note == first.note
    checkpoint = verify_checkpoint(first.note, key, origin)
    assert checkpoint.size == len(_leaf_hashes(vault))
    assert checkpoint.root == merkle.root_from_leaf_hashes(_leaf_hashes(vault))
    assert key.name == origin
    # the key survives sealing: a second unseal opens the same log key
    from tests.conftest import TEST_PASSPHRASE
    from vault.keys import UnsealSecret

    keys = vault.store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    assert keys.log_signer is not None and keys.log_signer.verifier == key
    _fill(vault, 1)
    with vault.ctx() as ctx:
        second = auditlog.sign(ctx.session, keys)
    assert second.size > first.size
    with vault.ctx(keys=False) as ctx, pytest.raises(Sealed):
        _fill(vault, 1)
        auditlog.sign(ctx.session, None)


def test_checkpoint_due_by_count_and_age(vault: Vault) -> None:
    from datetime import timedelta

    from vault.db.models import utcnow

    with vault.store.session() as s:
        assert auditlog.checkpoint_due(s, every_events=10, every_seconds=60, now=utcnow())
    with vault.ctx() as ctx:
        auditlog.sign(ctx.session, vault.keys)
    with vault.store.session() as s:
        assert not auditlog.checkpoint_due(s, every_events=10, every_seconds=60, now=utcnow())
    _fill(vault, 2)
    with vault.store.session() as s:
        now = utcnow()
        assert not auditlog.checkpoint_due(s, every_events=10, every_seconds=60, now=now)
        assert auditlog.checkpoint_due(s, every_events=2, every_seconds=60, now=now)
        later = now + timedelta(seconds=61)
        assert auditlog.checkpoint_due(s, every_events=10, every_seconds=60, now=later)


def _principal(role: str, clients_: frozenset[str] | None) -> Principal:
    return Principal(name=f"user:{role}", role=role, user_id=None, clients=clients_)


def test_each_role_sees_its_own_view(vault: Vault) -> None:
    _fill(vault, 3, "Acme")
    _fill(vault, 2, "Globex")
    with vault.ctx() as ctx:
        acme = clients.get_client(ctx, "Acme").id
        globex = clients.get_client(ctx, "Globex").id
        everything = auditlog.list_entries(ctx, auditlog.EventFilter(), limit=1000)
    session = vault.store.session()
    from vault.services import Context

    def view(principal: Principal, **filters: Any) -> list[int]:
        ctx = Context(session=session, actor=principal.name, principal=principal)
        return [
            e.index for e in auditlog.list_entries(ctx, auditlog.EventFilter(**filters), limit=1000)
        ]

    try:
        all_idx = [e.index for e in everything]
        acme_idx = [e.index for e in everything if e.event["client_id"] == acme]
        assert view(_principal("auditor", None)) == all_idx
        assert view(_principal("admin", None)) == all_idx
        assert view(_principal("client", frozenset([acme]))) == acme_idx
        assert view(_principal("auditor", frozenset([acme]))) == acme_idx
        assert view(_principal("auditor", None), client_id=acme) == acme_idx
        with pytest.raises(NotFound):
            view(_principal("client", frozenset([acme])), client_id=globex)
        with pytest.raises(Forbidden):
            view(_principal("consultant", frozenset([acme, globex])))
        assert view(_principal("auditor", None), action="client.add") == [
            e.index for e in everything if e.event["action"] == "client.add"
        ]
        page = view(_principal("auditor", None))[:2]
        ctx = Context(session=session, actor="a", principal=_principal("auditor", None))
        nxt = auditlog.list_entries(ctx, auditlog.EventFilter(), after=page[-1], limit=2)
        assert [e.index for e in nxt] == all_idx[2:4]
        with pytest.raises(NotFound):
            auditlog.entry_visible(
                Context(
                    session=session, actor="c", principal=_principal("client", frozenset([acme]))
                ),
                next(e.index for e in everything if e.event["client_id"] == globex),
            )
    finally:
        session.close()


def _export(vault: Vault, **filters: Any) -> bytes:
    out = io.BytesIO()
    with vault.ctx() as ctx:
        auditlog.export_jsonl(ctx, out, auditlog.EventFilter(**filters))
    return out.getvalue()


def _key(vault: Vault) -> Verifier:
    with vault.store.session() as s:
        return Verifier.parse(auditlog.verifier_key(s))


def test_whole_export_verifies_and_catches_edits(vault: Vault) -> None:
    _fill(vault, 30)
    with vault.ctx() as ctx:
        saved = auditlog.sign(ctx.session, vault.keys).note
    _fill(vault, 5)
    data = _export(vault)
    report = verify_export(io.BytesIO(data), key=_key(vault), saved_checkpoint=saved)
    assert report.events == report.size == len(_leaf_hashes(vault))
    assert report.key_pinned and report.checkpoints == 2

    lines = data.splitlines(keepends=True)
    first_event = next(i for i, raw in enumerate(lines) if b'"type":"event"' in raw)
    target = lines[first_event + 4]
    edited = target.replace(b'"outcome":"ok"', b'"outcome":"no"', 1)
    assert edited != target
    with pytest.raises(LogVerificationError) as caught:
        verify_export(
            lines[: first_event + 4] + [edited] + lines[first_event + 5 :], key=_key(vault)
        )
    assert caught.value.index == 4 and "field was edited" in str(caught.value)

    dropped = lines[: first_event + 7] + lines[first_event + 8 :]
    with pytest.raises(LogVerificationError) as caught:
        verify_export(dropped, key=_key(vault))
    assert caught.value.index == 7

    # the log as it was at the saved checkpoint, cut short: truncation is reported
    with vault.ctx() as ctx:
        later = auditlog.sign(ctx.session, vault.keys).note
    with pytest.raises(LogVerificationError, match="truncated"):
        verify_export(io.BytesIO(data), key=_key(vault), saved_checkpoint=_grow_and_sign(vault))
    assert later


def _grow_and_sign(vault: Vault) -> str:
    _fill(vault, 1)
    with vault.ctx() as ctx:
        return auditlog.sign(ctx.session, vault.keys).note


def test_a_client_view_verifies_with_inclusion_proofs(vault: Vault) -> None:
    _fill(vault, 5, "Acme")
    _fill(vault, 5, "Globex")
    with vault.ctx() as ctx:
        acme = clients.get_client(ctx, "Acme").id
    data = _export(vault, client_id=acme)
    report = verify_export(io.BytesIO(data), key=_key(vault))
    assert report.view == "filtered" and report.events == 6  # client.add + 5 secrets
    edited = data.replace(b'"title":"s', b'"title":"S', 1)
    assert edited != data
    with pytest.raises(LogVerificationError):
        verify_export(io.BytesIO(edited), key=_key(vault))


def test_another_key_is_caught_when_the_key_is_pinned(vault: Vault) -> None:
    from vault.log.note import Signer, generate_signer

    _fill(vault, 3)
    data = _export(vault)
    with vault.store.session() as s:
        origin = auditlog.head(s).origin
    forger = Signer.parse(generate_signer(origin)[0])
    lines = data.splitlines(keepends=True)
    import orjson

    from vault.log.note import Checkpoint, sign_checkpoint

    forged = []
    for raw in lines:
        obj = orjson.loads(raw)
        if obj["type"] == "checkpoint":
            cp = verify_checkpoint(obj["note"], _key(vault))
            obj["note"] = sign_checkpoint(Checkpoint(cp.origin, cp.size, cp.root), forger)
            raw = orjson.dumps(obj) + b"\n"
        elif obj["type"] == "header":
            obj["log_key"] = forger.verifier.key_string()
            raw = orjson.dumps(obj) + b"\n"
        forged.append(raw)
    assert verify_export(forged).key_pinned is False  # unpinned, the forgery cannot be told
    with pytest.raises(LogVerificationError, match="checkpoint does not verify"):
        verify_export(forged, key=_key(vault))


# --- the SQLite append on the DBAPI connection --------------------------------------------------


def _odd_events() -> list[dict[str, Any]]:
    """Events whose columns need converting on the way in: a whole second (no microseconds to
    print), a time not in UTC, non-ASCII and nested detail with a tuple, None columns."""
    at = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    nothing = dict.fromkeys(("role", "source", "client_id", "subject_kind", "subject_id"))
    return [
        {**nothing, "at": at, "actor": "operator:é", "action": "test.odd", "outcome": "ok",
         "detail": {"name": "Zoë ✓", "nested": {"list": (1, None, True, "x")}, "n": 2**40}},
        {"at": datetime(2026, 11, 23, 14, 30, 1, 5, tzinfo=timezone(timedelta(hours=2))),
         "actor": "operator:test", "action": "test.odd", "outcome": "denied", "role": "admin",
         "client_id": "c-1", "subject_kind": "secret", "subject_id": "s-1", "source": "cli",
         "detail": {}},
    ]  # fmt: skip


def test_appended_rows_are_stored_as_sqlalchemy_stores_them(vault: Vault) -> None:
    # On SQLite the append runs on the DBAPI connection: its rows must hold exactly what a
    # SQLAlchemy INSERT of the same values holds, read back the same, and verify.
    events = _odd_events()
    with vault.store.write_session() as s:
        size = auditlog.append(s, events)
        s.execute(
            insert(AuditEvent),
            [
                {
                    **e,
                    "seq": -1 - i,
                    "leaf_hash": b"twin",
                    "detail": json_value(e.get("detail") or {}),
                }
                for i, e in enumerate(events)
            ],
        )
    table = AuditEvent.__table__
    sqlite = vault.store.engine.dialect.name == "sqlite"
    stored_as = [  # each column's stored value as text and its type in the database
        f(table.c[c])
        for c in _EVENT_COLUMNS
        if c not in ("seq", "leaf_hash")
        for f in (
            lambda col: cast(col, String),
            func.typeof if sqlite else lambda col: cast(func.pg_typeof(col), String),
        )
    ]
    with vault.store.session() as s:
        stored = s.execute(
            select(AuditEvent.seq, *stored_as)
            .where(AuditEvent.action == "test.odd")
            .order_by(AuditEvent.id)
        ).all()
    assert [r[0] for r in stored] == [size - 2, size - 1, -1, -2]
    assert [r[1:] for r in stored[:2]] == [r[1:] for r in stored[2:]]

    with vault.store.session() as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "test.odd", AuditEvent.seq >= 0)
        ).all()
        for row, given in zip(rows, events, strict=True):
            assert row.at == given["at"] and row.at.tzinfo is not None
            assert row.detail == json_value(given.get("detail") or {})
            for name in ("actor", "outcome", "role", "source", "client_id", "subject_id"):
                assert getattr(row, name) == given.get(name)
            fields = {c: getattr(row, c) for c in _EVENT_COLUMNS if c not in ("seq", "leaf_hash")}
            assert row.leaf_hash == merkle.leaf_hash(leaf_bytes(row.seq, fields))
        s.execute(delete(AuditEvent).where(AuditEvent.seq < 0))
        s.commit()
    report = verify_export(io.BytesIO(_export(vault)), key=_key(vault))
    assert report.events == report.size == size


def test_a_value_too_long_for_its_column_is_never_stored_cut_short(vault: Vault) -> None:
    """PostgreSQL refuses an actor longer than its column (VARCHAR(200)), as a plain INSERT
    does; SQLite keeps it whole. Either way no row holds less than its leaf was hashed from:
    an append that cut it short would leave a log that no longer verifies."""
    long_actor = "user:" + "x" * 300
    events = [{**e, "actor": long_actor} for e in _odd_events()]
    for batch in (events[:1], events):  # one event alone, and several at once
        try:
            with vault.store.write_session() as s:
                auditlog.append(s, batch)
        except DBAPIError:
            assert vault.store.engine.dialect.name == "postgresql"
        else:
            assert vault.store.engine.dialect.name == "sqlite"
    with vault.store.session() as s:
        actors = s.scalars(select(AuditEvent.actor).where(AuditEvent.action == "test.odd")).all()
    assert all(actor == long_actor for actor in actors)
    report = verify_export(io.BytesIO(_export(vault)), key=_key(vault))
    assert report.events == report.size


def test_an_append_on_a_connection_not_yet_in_a_transaction_begins_one(vault: Vault) -> None:
    before = len(_leaf_hashes(vault))
    with vault.store.engine.connect() as conn:
        auditlog.append(conn, _odd_events())
        assert conn.in_transaction()
        conn.rollback()  # the events and the head's move go together
    with vault.ctx() as ctx:
        audit.record(ctx, "test.kept")
    hashes = _leaf_hashes(vault)
    assert len(hashes) == before + 1
    with vault.store.session() as s:
        assert auditlog.head(s).root == merkle.root_from_leaf_hashes(hashes)


# SQLite alone rolls a transaction back by itself (on an I/O error or a full disk)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_append_outside_the_transaction_sqlite_dropped(vault: Vault) -> None:
    with vault.store.session() as s:
        before = auditlog.head(s)
    with vault.store.engine.connect() as conn:
        conn.begin()
        conn.exec_driver_sql("ROLLBACK")  # as SQLite does by itself; SQLAlchemy does not know
        with pytest.raises(StorageError):
            auditlog.append(conn, _odd_events())
        conn.rollback()
    with vault.store.session() as s:
        assert auditlog.head(s) == before  # nothing committed on its own


def test_a_database_error_in_an_append_is_raised_as_sqlalchemys(vault: Vault) -> None:
    with vault.store.session() as s:
        size = auditlog.head(s).size
    with vault.store.write_session() as s:  # a row squatting on the next leaf index
        s.execute(
            insert(AuditEvent),
            {"seq": size, "leaf_hash": b"", "actor": "x", "action": "test.squat", "detail": {}},
        )
    event = {**_odd_events()[1], "detail": {"marker": "do-not-show-this"}}
    with pytest.raises(IntegrityError) as caught, vault.store.write_session() as s:
        auditlog.append(s, [event])
    # the engines hide bound values from error messages (vault/db/engine.py)
    assert "do-not-show-this" not in str(caught.value)
    assert "do-not-show-this" not in repr(caught.value)


def test_the_benchmarks_plain_table_mode_leaves_the_log_alone(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    with vault.store.session() as s:
        before = auditlog.head(s)
    monkeypatch.setattr(auditlog, "PLAIN_TABLE_FOR_BENCHMARKS", True)
    for _ in range(2):
        with vault.ctx() as ctx:
            audit.record_many(ctx, [audit.event("test.plain", n=n) for n in range(3)])
    with vault.store.session() as s:
        seqs = list(s.scalars(select(AuditEvent.seq).where(AuditEvent.action == "test.plain")))
        assert len(set(seqs)) == 6 and all(seq < 0 for seq in seqs)
        assert auditlog.head(s) == before


# --- concurrency: several processes append at once ---------------------------------------------


def _writer(settings: Settings, worker: int, rounds: int) -> int:
    from vault.store import Store

    store = Store.open(settings)
    committed = 0
    try:
        for i in range(rounds):
            try:
                with store.context(f"operator:w{worker}") as ctx:
                    for k in range(1 + i % 3):
                        audit.record(ctx, "test.append", worker=worker, round=i, k=k)
                    if i % 7 == 3:
                        raise RuntimeError("rolled back on purpose")
                committed += 1 + i % 3
            except RuntimeError:
                pass
    finally:
        store.engine.dispose()
    return committed


def test_concurrent_writers_in_several_processes_make_one_gapless_log(vault: Vault) -> None:
    before = len(_leaf_hashes(vault))
    workers, rounds = 4, 40
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        counts = pool.starmap(_writer, [(vault.settings, w, rounds) for w in range(workers)])
    with vault.store.session() as s:
        rows = s.execute(
            select(
                AuditEvent.seq, AuditEvent.leaf_hash, AuditEvent.detail, AuditEvent.action
            ).order_by(AuditEvent.seq)
        ).all()
        size = auditlog.head(s).size
        root = auditlog.head(s).root
    appended = [r for r in rows if r.action == "test.append"]
    assert len(appended) == sum(counts)  # nothing lost, nothing from rolled-back rounds
    assert [r.seq for r in rows] == list(range(len(rows))) and size == len(rows)  # no gaps
    assert size == before + sum(counts)
    assert root == merkle.root_from_leaf_hashes(r.leaf_hash for r in rows)  # one tree, no fork
    per_worker: dict[int, list[tuple[int, int]]] = {}
    for r in appended:
        per_worker.setdefault(r.detail["worker"], []).append((r.detail["round"], r.detail["k"]))
    for got in per_worker.values():
        assert got == sorted(got)  # each writer's events in its own commit order
    assert not any(r.detail["round"] % 7 == 3 for r in appended)


def test_upgrade_backfills_existing_events_into_the_log(database_url: str) -> None:
    from alembic import command

    from vault.db import engine as db

    engine = db.make_engine(database_url, create_dirs=True)
    try:
        command.upgrade(db._alembic_config(engine), "0003")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO vault_meta (id, vault_id, created_at, seal_mode, kdf, "
                    "sealed_root) VALUES (1, 'v-1', '2026-01-01 00:00:00+00:00', 'passphrase', "
                    "'{}', :b)"
                ),
                {"b": b"x"},
            )
            for i in range(40):
                conn.execute(
                    text(
                        "INSERT INTO audit_events (at, actor, action, outcome, detail) VALUES "
                        "(:at, 'operator:old', 'old.event', 'ok', :d)"
                    ),
                    {"at": f"2026-01-01 00:00:{i:02d}.000001+00:00", "d": f'{{"n": {i}}}'},
                )
        command.upgrade(db._alembic_config(engine), "head")
        from sqlalchemy.orm import Session

        with Session(engine) as s:
            rows = s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
            assert [r.detail["n"] for r in rows] == list(range(40))
            assert [r.seq for r in rows] == list(range(40))
            now = auditlog.head(s)
            assert now.size == 40 and now.origin == "custody.vault/v-1"
            assert now.root == merkle.root_from_leaf_hashes(r.leaf_hash for r in rows)
            assert s.scalar(select(LogCheckpoint.size)) is None
            assert set(s.scalars(select(LogNode.level))) == {4}
    finally:
        engine.dispose()


def test_parallel_file_verification_agrees_with_sequential(
    vault: Vault, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.log import verify

    _fill(vault, 150)
    path = tmp_path / "log.jsonl"
    path.write_bytes(_export(vault))
    monkeypatch.setattr(verify, "PARALLEL_THRESHOLD", 0)
    one = verify.verify_export_file(path, key=_key(vault), jobs=1)
    two = verify.verify_export_file(path, key=_key(vault), jobs=2)
    assert (one.events, one.root, one.checkpoints) == (two.events, two.root, two.checkpoints)
    lines = path.read_bytes().splitlines(keepends=True)
    at = next(i for i, raw in enumerate(lines) if b'"index":120,' in raw)
    lines[at] = lines[at].replace(b'"outcome":"ok"', b'"outcome":"ko"')
    path.write_bytes(b"".join(lines))
    with pytest.raises(LogVerificationError) as caught:
        verify.verify_export_file(path, key=_key(vault), jobs=2)
    assert caught.value.index == 120


def test_a_process_that_finds_the_head_moved_locks_it_at_once_until_it_is_alone_again(
    vault: Vault,
) -> None:
    """Two stores on one database, as two server processes: appending in turn, each finds the
    head moved by the other and from then on locks it straight away; alone again, a store
    finds the head as it left it and goes back to the conditional move. The log stays one
    gapless tree throughout."""
    from vault.store import Store

    other = Store.open(vault.settings)
    try:
        mine = vault.store

        def record(store: Store, action: str, events: int = 1) -> None:
            with store.context("operator:test", vault.keys) as ctx:
                for _ in range(events):
                    audit.record(ctx, action)

        record(mine, "test.a")
        record(other, "test.b")
        assert not auditlog._moved_by_others.get(mine.engine, False)
        record(mine, "test.a")  # the conditional move misses: the other moved the head
        assert auditlog._moved_by_others[mine.engine]
        record(other, "test.b", events=3)  # several events in one append take the lock too
        record(mine, "test.a")  # locked at once; the head had moved again
        assert auditlog._moved_by_others[mine.engine]
        record(mine, "test.a", events=2)  # locked at once; the head was as it left it
        assert not auditlog._moved_by_others[mine.engine]
        record(mine, "test.a")  # the conditional move again
        assert not auditlog._moved_by_others[mine.engine]
        record(other, "test.b")
        assert auditlog._moved_by_others[other.engine]
    finally:
        other.engine.dispose()
    with vault.store.session() as s:
        rows = s.execute(
            select(AuditEvent.seq, AuditEvent.leaf_hash, AuditEvent.action).order_by(AuditEvent.seq)
        ).all()
        head = auditlog.head(s)
    assert [r.seq for r in rows] == list(range(len(rows))) and head.size == len(rows)
    assert head.root == merkle.root_from_leaf_hashes(r.leaf_hash for r in rows)
    assert [r.action for r in rows if r.action.startswith("test.")] == (
        ["test.a", "test.b", "test.a"] + ["test.b"] * 3 + ["test.a"] * 4 + ["test.b"]
    )


def test_leaves_rebuilt_from_stored_rows_are_the_leaves_that_were_hashed(vault: Vault) -> None:
    """Pages and exports rebuild each leaf from its row without checking the fields again
    (stored_event_object): the bytes are the checked encoding's, byte for byte, and hash to
    the stored leaf hash - for optional fields left empty, text beyond ASCII, nested detail."""
    from vault.log.events import encode, event_object, stored_event_object

    with vault.ctx() as ctx:
        audit.record(ctx, "test.bare", subject_kind=None, subject_id=None)
        audit.record(
            ctx,
            "test.rich",
            client_id="c-1",
            subject_kind="secret",
            subject_id="s-1",
            reason="Zoë's ticket #42 – 日本",
            nested={"list": [1, "two", None, True, {"deep": [-(2**53) + 1]}], "empty": {}},
        )
    with vault.store.session() as s:
        rows = s.execute(
            select(AuditEvent.leaf_hash, *auditlog._EVENT_COLUMNS).order_by(AuditEvent.seq)
        ).all()
    assert {r.action for r in rows} >= {"test.bare", "test.rich"}
    for row in rows:
        rebuilt = encode(stored_event_object(row.seq, row._mapping))
        assert rebuilt == encode(event_object(row.seq, row._mapping))
        assert merkle.leaf_hash(rebuilt) == row.leaf_hash
