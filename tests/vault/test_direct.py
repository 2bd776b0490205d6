"""Statements run on the driver (vault.db.direct) store and read exactly what SQLAlchemy would,
and a failed unit of work of the group commit leaves nothing behind."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from tests.conftest import Vault
from vault.db.direct import DirectStatement, pipelined
from vault.db.models import Lease, Secret
from vault.db.writer import GroupWriter
from vault.services import clients, secrets

LEASES = Lease.__table__
SECRETS = Secret.__table__
WHEN = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.fixture
def secret_id(vault: Vault) -> str:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        return secrets.add_secret(ctx, "Acme", title="Router", value="r0uter-pass").id


def _lease(secret_id: str, client_id: str, lease_id: str) -> dict[str, Any]:
    return {
        "id": lease_id,
        "secret_id": secret_id,
        "client_id": client_id,
        "user_id": None,
        "holder": "carol",
        "reason": "fix VPN",
        "ticket": None,
        "version": 1,
        "exclusive": True,
        "created_at": WHEN,
        "expires_at": WHEN + timedelta(hours=1),
    }


def test_rows_written_directly_are_stored_as_sqlalchemy_stores_them(
    vault: Vault, secret_id: str
) -> None:
    columns = list(_lease(secret_id, "", "").keys())
    direct = DirectStatement(insert(LEASES).values({c: bindparam(c) for c in columns}))
    read = DirectStatement(
        select(LEASES.c.id, LEASES.c.exclusive, LEASES.c.created_at, LEASES.c.released_at).where(
            LEASES.c.secret_id == bindparam("secret_id")
        )
    )
    with vault.store.engine.connect() as conn, conn.begin():
        client_id = conn.execute(select(SECRETS.c.client_id)).scalar_one()
        conn.execute(insert(LEASES), _lease(secret_id, client_id, "by-sqlalchemy"))
        assert direct.rowcount(conn, _lease(secret_id, client_id, "direct")) == 1
        # The raw stored values (SQLite: text and 0/1) are the same either way...
        raw = conn.execute(
            text(
                "SELECT id, exclusive, created_at, expires_at FROM leases WHERE secret_id = :s "
                "ORDER BY id"
            ),
            {"s": secret_id},
        ).all()
        assert raw[0][1:] == raw[1][1:]
        # ... and read back identically, through SQLAlchemy and directly.
        through_orm = conn.execute(
            select(LEASES.c.id, LEASES.c.exclusive, LEASES.c.created_at, LEASES.c.released_at)
            .where(LEASES.c.secret_id == secret_id)
            .order_by(LEASES.c.id)
        ).all()
        directly = sorted(read.all(conn, {"secret_id": secret_id}))
        assert [tuple(row) for row in through_orm] == [tuple(row) for row in directly]
        assert directly[0].created_at == WHEN and directly[0].exclusive is True
        assert directly[0].released_at is None


def test_python_side_defaults_apply_as_in_sqlalchemy(vault: Vault, secret_id: str) -> None:
    """``secrets.updated_at`` has ``onupdate=utcnow``: a direct UPDATE sets it too."""
    mark = DirectStatement(
        update(SECRETS).where(SECRETS.c.id == bindparam("id")).values(needs_rotation=True)
    )
    with vault.store.engine.connect() as conn, conn.begin():
        before = conn.execute(select(SECRETS.c.updated_at)).scalar_one()
        assert mark.rowcount(conn, {"id": secret_id}) == 1
        assert mark.rowcount(conn, {"id": "no such secret"}) == 0
        row = conn.execute(select(SECRETS.c.updated_at, SECRETS.c.needs_rotation)).one()
    assert row.needs_rotation is True and row.updated_at > before


def test_driver_errors_are_sqlalchemy_errors(vault: Vault, secret_id: str) -> None:
    duplicate = DirectStatement(
        insert(SECRETS).from_select(
            [c.name for c in SECRETS.c], select(*SECRETS.c).where(SECRETS.c.id == bindparam("id"))
        )
    )
    with vault.store.engine.connect() as conn, conn.begin():
        with pytest.raises(IntegrityError):
            duplicate.rowcount(conn, {"id": secret_id})


def test_statements_of_a_connection_share_one_cursor_until_one_fails(
    vault: Vault, secret_id: str
) -> None:
    """Direct statements reuse their connection's cursor (a new one per statement cost
    psycopg a quarter of a statement's CPU). One that fails drops it - SQLAlchemy's handler
    may close it - and the connection's next statement runs on a new one."""
    from vault.db.direct import _CURSOR

    title = DirectStatement(select(SECRETS.c.title).where(SECRETS.c.id == bindparam("id")))
    duplicate = DirectStatement(
        insert(SECRETS).from_select(
            [c.name for c in SECRETS.c], select(*SECRETS.c).where(SECRETS.c.id == bindparam("id"))
        )
    )
    with vault.store.engine.connect() as conn:
        with conn.begin():
            assert title.first(conn, {"id": secret_id}).title == "Router"
            first = conn.connection.info[_CURSOR][1]
            assert title.first(conn, {"id": secret_id}).title == "Router"
            assert conn.connection.info[_CURSOR][1] is first
        with conn.begin(), pytest.raises(IntegrityError):
            duplicate.rowcount(conn, {"id": secret_id})
        assert _CURSOR not in conn.connection.info
        with conn.begin():
            assert title.all(conn, {"id": secret_id})[0].title == "Router"
            assert conn.connection.info[_CURSOR][1] is not first


def _lease_ids(vault: Vault) -> set[str]:
    with vault.store.engine.connect() as conn:
        return set(conn.execute(select(LEASES.c.id)).scalars())


def test_a_committing_pipeline_keeps_all_its_writes_and_leaves_the_caller_nothing_to_commit(
    vault: Vault, secret_id: str
) -> None:
    """``pipelined(conn, commit=True)``: on PostgreSQL the block's statements and the COMMIT go
    in one round trip; on SQLite they run one by one and the caller commits. Either way the
    caller's own commit afterwards ends the transaction with every write kept."""
    write = DirectStatement(insert(LEASES).values({c: bindparam(c) for c in _lease("", "", "")}))
    with vault.store.engine.connect() as conn:
        conn.begin()
        client_id = conn.execute(select(SECRETS.c.client_id)).scalar_one()
        with pipelined(conn, commit=True):
            write.rowcount(conn, _lease(secret_id, client_id, "lease-1"))
            write.run_many(conn, [_lease(secret_id, client_id, f"lease-{i}") for i in (2, 3)])
        if vault.store.engine.dialect.name == "postgresql":
            assert int(conn.connection.driver_connection.info.transaction_status) == 0  # idle
        conn.commit()
    assert _lease_ids(vault) == {"lease-1", "lease-2", "lease-3"}


def test_a_statement_that_fails_in_a_pipeline_fails_it_and_nothing_after_it_runs(
    vault: Vault, secret_id: str
) -> None:
    write = DirectStatement(insert(LEASES).values({c: bindparam(c) for c in _lease("", "", "")}))
    with vault.store.engine.connect() as conn:
        conn.begin()
        client_id = conn.execute(select(SECRETS.c.client_id)).scalar_one()
        with pytest.raises(IntegrityError), pipelined(conn, commit=True):
            write.rowcount(conn, _lease(secret_id, client_id, "lease-1"))
            write.rowcount(conn, _lease(secret_id, client_id, "lease-1"))  # the same key again
            write.rowcount(conn, _lease(secret_id, client_id, "lease-2"))
        conn.rollback()
        assert _lease_ids(vault) == set()  # nothing committed: not the first, not the third
        with conn.begin():  # and the connection goes on
            write.rowcount(conn, _lease(secret_id, client_id, "lease-4"))
    assert _lease_ids(vault) == {"lease-4"}


def test_a_failed_unit_of_work_keeps_none_of_its_writes(vault: Vault, secret_id: str) -> None:
    with pytest.raises(RuntimeError), vault.ctx() as ctx:
        ctx.connection().execute(
            update(SECRETS).where(SECRETS.c.id == secret_id).values(title="Renamed")
        )
        ctx.session.get(Secret, secret_id).url = "https://example.test"  # type: ignore[union-attr]
        ctx.session.flush()
        raise RuntimeError("the unit fails after writing through both")
    with vault.store.session() as session:
        secret = session.get(Secret, secret_id)
        assert secret is not None and secret.title == "Router" and secret.url is None


def _until_queued(writer: GroupWriter, count: int) -> None:
    """Wait (10 s at most) until ``count`` threads queue for ``writer``'s mutex."""
    deadline = time.monotonic() + 10
    while writer._mutex.waiting < count and time.monotonic() < deadline:
        time.sleep(0.001)


def _open_batch(vault: Vault, secret_id: str, opened: threading.Event, others: int) -> None:
    """A unit of work that sets the secret's url, then holds its batch open until ``others``
    units queue behind it: they join this batch."""
    writer = vault.store.writer
    assert writer is not None
    with vault.ctx() as ctx:
        ctx.connection().execute(
            update(SECRETS).where(SECRETS.c.id == secret_id).values(url="https://a.test")
        )
        opened.set()
        _until_queued(writer, others)


def test_failed_units_first_or_later_in_a_batch_keep_none_of_their_writes(
    vault: Vault, secret_id: str
) -> None:
    """The first unit of a batch runs without a savepoint (its failure rolls back the whole
    transaction), the ones after it in savepoints: either way a failed unit leaves nothing and
    the others' writes are committed."""
    writer = vault.store.writer
    assert writer is not None

    def rename(title: str, *, fail: bool) -> None:
        with vault.ctx() as ctx:
            ctx.connection().execute(
                update(SECRETS).where(SECRETS.c.id == secret_id).values(title=title)
            )
            if fail:
                raise RuntimeError("the unit fails after writing")

    second_waits = threading.Event()
    with pytest.raises(RuntimeError):
        rename("Failed alone", fail=True)
    commits = writer.commits
    # the second unit queues behind this one, in its batch
    thread = threading.Thread(target=_open_batch, args=(vault, secret_id, second_waits, 1))
    thread.start()
    second_waits.wait(10)
    with pytest.raises(RuntimeError):
        rename("Failed second", fail=True)
    thread.join()
    assert writer.commits == commits + 1  # both units were in one batch
    with vault.store.session() as session:
        secret = session.get(Secret, secret_id)
        assert secret is not None and secret.title == "Router"
        assert secret.url == "https://a.test"
    rename("Renamed", fail=False)
    with vault.store.session() as session:
        assert session.scalar(select(SECRETS.c.title)) == "Renamed"


def test_the_writer_mutex_is_handed_over_in_arrival_order() -> None:
    """Threads queue for the group commit's mutex first come, first served: a thread that just
    arrived never overtakes one that has waited (that starvation was the load test's p99)."""
    import threading

    from vault.db.writer import _FairLock

    lock = _FairLock()
    order: list[int] = []
    lock.acquire()
    threads = []
    for i in range(8):

        def take(i: int = i) -> None:
            lock.acquire()
            order.append(i)
            lock.release()

        thread = threading.Thread(target=take)
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while lock.waiting < i + 1 and time.monotonic() < deadline:
            time.sleep(0.001)  # thread i is queued before thread i + 1 starts
    assert lock.waiting == 8
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == list(range(8))
    assert lock.waiting == 0
    lock.acquire()  # free again: taken at once
    lock.release()


def test_units_after_a_failed_one_in_the_same_batch_keep_their_writes(
    vault: Vault, secret_id: str
) -> None:
    """A unit leaves its savepoint open for the next unit to release (one round trip fewer on
    PostgreSQL). Four units in one batch - kept, failed, kept, kept with a nested unit that
    failed inside it - keep exactly what a transaction each would have kept."""
    writer = vault.store.writer
    assert writer is not None
    queued = threading.Event()

    def write(column: str, value: str, *, fail: bool = False, nested_fails: bool = False) -> None:
        with vault.ctx() as ctx:
            ctx.connection().execute(
                update(SECRETS).where(SECRETS.c.id == secret_id).values({column: value})
            )
            if nested_fails:
                with pytest.raises(RuntimeError), vault.ctx() as inner:
                    inner.connection().execute(
                        update(SECRETS).where(SECRETS.c.id == secret_id).values(kind="nested")
                    )
                    raise RuntimeError("the nested unit fails after writing")
            if fail:
                raise RuntimeError("the unit fails after writing")

    def failing() -> None:
        with pytest.raises(RuntimeError):
            write("url", "https://failed.test", fail=True)

    commits = writer.commits
    # the three others queue behind the first unit: one batch
    threads = [threading.Thread(target=_open_batch, args=(vault, secret_id, queued, 3))]
    threads[0].start()
    assert queued.wait(10)
    for i, target in enumerate(
        (
            failing,
            lambda: write("generate_charset", "digits"),
            lambda: write("title", "Kept", nested_fails=True),
        )
    ):
        threads.append(threading.Thread(target=target))
        threads[-1].start()
        _until_queued(writer, i + 1)  # queued in this order
    for thread in threads:
        thread.join(10)
    assert writer.commits == commits + 1
    with vault.store.session() as session:
        secret = session.get(Secret, secret_id)
        assert secret is not None
        assert (secret.url, secret.generate_charset, secret.title) == (
            "https://a.test",
            "digits",
            "Kept",
        )
        assert secret.kind != "nested"


def test_a_postgresql_read_reuses_the_connection_returned_last(
    request: pytest.FixtureRequest,
) -> None:
    """The server's pool hands out the connection given back last (LIFO): a process's short
    reads keep a few PostgreSQL backends busy instead of waking every pooled one in turn."""
    from tests.conftest import fresh_pg_schema
    from vault.db.engine import make_engine

    backend = "SELECT pg_backend_pid()"
    with fresh_pg_schema(request, "pool") as url:
        engine = make_engine(url)
        try:
            with engine.connect() as first, engine.connect() as second:
                first_pid = first.exec_driver_sql(backend).scalar()
                second_pid = second.exec_driver_sql(backend).scalar()
            # `second` went back to the pool first, `first` last
            assert first_pid != second_pid
            with engine.connect() as again:
                assert again.exec_driver_sql(backend).scalar() == first_pid
        finally:
            engine.dispose()
