"""Store.read_context: reads outside the group commit, refusing writes, recording their events."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from tests.conftest import Vault
from vault.db.models import AuditEvent, Client
from vault.errors import CustodyError
from vault.services import audit, auditlog, clients, logviews, readiness, secrets


def _events(vault: Vault, action: str) -> int:
    counted = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    with vault.store.read_session() as s, s.begin():
        return int(s.scalar(counted) or 0)


def test_a_read_context_refuses_writes_and_keeps_none(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the engines word it differently
        with vault.store.read_context("operator:test", vault.keys) as ctx:
            ctx.session.add(Client(name="Sneaky", name_key="sneaky", wrapped_key=b"k"))
            ctx.session.flush()
    # SQLite: "attempt to write a readonly database" (a StorageError, from it); PostgreSQL:
    # "cannot execute INSERT in a read-only transaction"
    said = f"{refused.value} {refused.value.__cause__}".lower()
    assert "readonly database" in said or "read-only transaction" in said, said
    with vault.store.read_session() as s, s.begin():
        assert s.scalars(select(Client.name)).all() == ["Acme"]
    # the pooled connection is not left read-only for the writers after it
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Beta")


def test_events_of_a_read_are_recorded_when_it_ends_and_then_runs_with_them(
    vault: Vault,
) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    ran: list[str] = []
    units = vault.store.writer.units if vault.store.writer else 0
    with vault.store.read_context("operator:test", vault.keys) as ctx:
        audit.record(ctx, "test.read", subject_kind="client", subject_id="x")
        assert _events(vault, "test.read") == 0  # not yet: written after the read
    assert _events(vault, "test.read") == 1
    with vault.store.read_context(
        "operator:test", vault.keys, then=lambda ctx: ran.append(ctx.actor)
    ):
        pass
    assert ran == ["operator:test"]
    if vault.store.writer is not None:
        assert vault.store.writer.units == units + 2  # one short write each, no more
        with vault.store.read_context("operator:test", vault.keys) as ctx:
            clients.list_clients(ctx)  # records nothing: no write at all
        assert vault.store.writer.units == units + 2


def test_a_failed_read_records_nothing(vault: Vault) -> None:
    with pytest.raises(CustodyError):
        with vault.store.read_context("operator:test", vault.keys) as ctx:
            audit.record(ctx, "test.read", subject_kind="client", subject_id="x")
            clients.get_client(ctx, "Nobody")
    assert _events(vault, "test.read") == 0


def _read_beside_a_writer(
    vault: Vault, read: Callable[[], None], read_done: threading.Event, what: str
) -> None:
    """Run ``read`` - a read_context that sets ``read_done`` once its reads are done, inside
    its block - while another transaction holds the write path (the group commit's mutex; on
    SQLite the database's write lock too). Its reads must finish meanwhile; the end of its
    block (recording its events, storing what it deferred) waits for the writer. Returns once
    both have ended."""
    holding, release, exited = threading.Event(), threading.Event(), threading.Event()

    def writer() -> None:
        with vault.ctx() as ctx:
            clients.add_client(ctx, "Beta")
            holding.set()
            release.wait(30)

    def reader() -> None:
        read()
        exited.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        other = threading.Thread(target=reader)
        other.start()
        assert read_done.wait(5), f"{what} waited for the writer"
        assert not exited.is_set()  # what it writes waits until the writer lets go
    finally:
        release.set()
        thread.join()
    other.join(30)
    assert exited.is_set()


def test_a_slow_report_does_not_wait_for_a_writer(vault: Vault) -> None:
    """The readiness report reads while another transaction holds the write path; only
    recording its event waits for it."""
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="r0uter-pass")
    found: list[int] = []
    read = threading.Event()

    def report() -> None:
        with vault.store.read_context("operator:test", vault.keys) as ctx:
            found.append(readiness.readiness(ctx, "Acme").score)
            read.set()

    _read_beside_a_writer(vault, report, read, "the report's reads")
    assert found and _events(vault, "report.readiness") == 1


def test_a_checkpoint_signed_in_a_read_is_stored_right_after_it(vault: Vault) -> None:
    """An auditor's read of the log cuts a fresh checkpoint in its read-only snapshot; the
    checkpoint is stored as the read ends, before its answer is handed out."""
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    with vault.store.read_context("operator:test", vault.keys) as ctx:
        cut = logviews.checkpoint(ctx)
        assert auditlog.latest_checkpoint(ctx.session) is None or (
            auditlog.latest_checkpoint(ctx.session).size < cut.size  # type: ignore[union-attr]
        )
    with vault.store.read_session() as s, s.begin():
        stored = auditlog.checkpoint_at(s, cut.size)
        assert (stored.note, stored.root) == (cut.note, cut.root)
        assert auditlog.head(s).size == cut.size  # reading the log recorded no event
    # nothing grew: the next read hands out the stored one and writes nothing
    units = vault.store.writer.units if vault.store.writer else 0
    with vault.store.read_context("operator:test", vault.keys) as ctx:
        assert logviews.checkpoint(ctx).note == cut.note
    assert (vault.store.writer.units if vault.store.writer else 0) == units
    # in a write transaction the same call stores it in that transaction
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Beta")
    with vault.ctx() as ctx:
        fresh = logviews.checkpoint(ctx)
        assert auditlog.latest_checkpoint(ctx.session).size == fresh.size  # type: ignore[union-attr]


def test_a_log_export_does_not_wait_for_a_writer(vault: Vault) -> None:
    """An auditor's export of the whole log reads while another transaction holds the write
    path; only storing its fresh checkpoint waits for it."""
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    exported = io.BytesIO()
    written = threading.Event()

    def export() -> None:
        with vault.store.read_context("operator:test", vault.keys) as ctx:
            auditlog.export_jsonl(ctx, exported, logviews.event_filter(ctx))
            written.set()

    _read_beside_a_writer(vault, export, written, "the log export")
    header, *lines = exported.getvalue().splitlines()
    assert b'"size":1' in header or b'"size": 1' in header, header
    with vault.store.read_session() as s, s.begin():
        assert auditlog.latest_checkpoint(s).size >= 1  # type: ignore[union-attr]
