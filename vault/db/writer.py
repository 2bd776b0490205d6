"""Group commit (SQLite and PostgreSQL): many transactions, one fsync.

SQLite has one writer at a time, and with ``synchronous=FULL`` every commit waits for an fsync
of the WAL (2-15 ms on the disks we run on). One commit per request caps a server at a few
hundred durable writes per second however little CPU each takes. So the writes of one process
share a transaction:

* a thread that wants to write takes the process's writer mutex; the first one opens the
  *batch* (``BEGIN IMMEDIATE`` on one connection, after an exclusive ``flock`` on
  ``<database>-writer`` so that several server processes hand the write lock to each other,
  woken by the kernel the moment it is released, instead of polling in SQLite's busy
  handler, which sleeps up to 100 ms at a time);
* each unit of work runs in a SAVEPOINT of that transaction (a :class:`Unit`: the Connection
  for Core statements, and a Session of its own that begins - in a nested SAVEPOINT - only if
  the unit uses the ORM): its failure rolls back only its own writes (``ROLLBACK TO``), exactly
  as a transaction of its own would. The first unit of a batch needs no savepoint: if it fails,
  the transaction - holding nothing else - is rolled back and the next unit begins a new one;
* the thread that finishes while nobody else is waiting for the mutex (or that fills the batch
  to :data:`MAX_BATCH`) commits - one fsync for everyone in the batch - and wakes the others.
  Nobody returns before the COMMIT that holds its writes has returned, so what a caller was
  told is done is on disk (durable, as with one transaction per request).

PostgreSQL gets the same treatment, for a different reason: every transaction that records an
audit event locks the log head row until it commits (leaf indexes follow commit order with no
gaps), so commits - and their fsyncs - queue one by one on that row however many connections
write. There a batch appends the audit events of all its units at once, right before its
COMMIT: the head row is locked only for that append and the commit, one fsync covers the whole
batch, and batches of other processes run their units meanwhile. (No flock: PostgreSQL has
row locks. Units of two processes' batches that update the same rows in opposite orders can
deadlock; PostgreSQL then fails one statement, its unit is rolled back (to its savepoint, or
with the batch if it was the first), and the Store turns the error into a StorageError, "try
again": tests/reliability/test_concurrency.py.)

On SQLite too a batch appends its units' audit events at once before its COMMIT: one move of
the log head per batch rather than one per unit, and the leaves are hashed outside any unit.

Units of work in a batch see each other's writes, as consecutive transactions would - except
the log rows, which exist from the batch's end (on both engines). If the COMMIT itself fails
(disk full, I/O error) every unit in the batch fails with :class:`~vault.errors.StorageError`,
and none of their writes is kept.

Threads take the writer mutex in the order they asked for it (:class:`_FairLock`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from vault.db.direct import run_sql, transaction_alive
from vault.errors import StorageError

log = logging.getLogger("custody.db")

#: most units of work per commit (bounds the latency a batch adds to its first member)
MAX_BATCH = 64


@dataclass
class _Batch:
    done: threading.Event = field(default_factory=threading.Event)
    members: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    failed: BaseException | None = None
    #: the savepoint of the last unit, left open when it succeeded: the next unit releases it
    #: in the round trip that opens its own, and the COMMIT releases the last one
    open_savepoint: str | None = None


class _FairLock:
    """A mutex handed to waiting threads in the order they asked for it.

    ``threading.Lock`` lets a thread that has just arrived take the lock ahead of threads that
    have waited for several batches (whoever holds the GIL when it is released wins); under a
    steady load that starves a few requests for hundreds of milliseconds - the p99. Here the
    holder hands the lock straight to the longest waiter."""

    __slots__ = ("_guard", "_queue", "_held")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._queue: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._queue.append(turn)
        turn.acquire()  # released by the holder when it hands over: we hold the mutex now

    def release(self) -> None:
        with self._guard:
            if self._queue:
                self._queue.popleft().release()  # still held: now by that waiter
            else:
                self._held = False

    @property
    def waiting(self) -> int:
        """Threads waiting for the lock now."""
        return len(self._queue)


class GroupWriter:
    """The write path of one process, SQLite or PostgreSQL (see the module documentation)."""

    def __init__(
        self,
        engine: Engine,
        lock_path: str | None,
        *,
        append_events: Callable[[Connection, list[dict[str, Any]]], object] | None = None,
    ) -> None:
        self.engine = engine
        #: when set, units hand their audit events to :meth:`defer` and the batch appends them
        #: all at once, right before its COMMIT
        self.append_events = append_events
        self._mutex = _FairLock()
        self._conn: Connection | None = None
        self._batch: _Batch | None = None
        self._lock_fd: int | None = None
        self._lock_path = lock_path
        self._local = threading.local()
        #: batches committed and units of work in them (for benchmarks)
        self.commits = 0
        self.units = 0

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A Session whose writes are committed (durably) before this block's exit returns."""
        with self.unit() as unit:
            yield unit.session

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        """A unit of work whose writes are committed (durably) before this block's exit
        returns."""
        if getattr(self._local, "inside", False):
            # Nested in a unit of work of this thread: a savepoint of the same batch.
            assert self._conn is not None
            outer, self._local.events = self._local.events, None  # its events: appended inline
            self._local.depth += 1
            try:
                with _run_unit(self._conn, _SAVEPOINT.format(self._local.depth)) as unit:
                    yield unit
            finally:
                self._local.depth -= 1
                self._local.events = outer
            return
        self._mutex.acquire()
        try:
            if self._conn is None:
                self._open()
        except BaseException:
            self._mutex.release()
            raise
        batch = self._batch
        conn = self._conn
        assert batch is not None and conn is not None
        self._local.inside = True
        self._local.depth = 1
        events: list[dict[str, Any]] = []
        self._local.events = events
        # The first unit of a batch needs no savepoint: the transaction holds nothing else, so
        # if the unit fails the whole of it is rolled back and the next unit opens a new batch.
        # Two statements fewer (round trips, on PostgreSQL) for every uncontended request.
        first = batch.members == 0
        failed_first = False
        savepoint = None if first else _SAVEPOINT.format(1)
        release_first, batch.open_savepoint = batch.open_savepoint, None
        try:
            with _run_unit(conn, savepoint, release_first=release_first, keep=True) as unit:
                yield unit
            batch.open_savepoint = savepoint
            batch.events.extend(events)  # only a unit whose savepoint was kept
        except BaseException:
            failed_first = first
            raise
        finally:
            self._local.inside = False
            self._local.events = None
            if failed_first:
                try:
                    self._abandon(batch)
                finally:
                    self._mutex.release()
            else:
                batch.members += 1
                if self._mutex.waiting == 0 or batch.members >= MAX_BATCH:
                    try:
                        self._commit(batch)
                    finally:
                        self._mutex.release()
                else:
                    self._mutex.release()
                    batch.done.wait()
        if batch.failed is not None:
            raise StorageError("the database did not commit this change; try again") from None

    @property
    def defers_events(self) -> bool:
        """Whether audit events of a unit of work running now go to :meth:`defer`."""
        return self.append_events is not None and getattr(self._local, "events", None) is not None

    def defer(self, events: list[dict[str, Any]]) -> None:
        """Audit events of the current unit of work, appended to the log at the batch's commit
        (if the unit's savepoint is released)."""
        self._local.events.extend(events)

    def _open(self) -> None:
        if self._lock_path is not None:
            # Opened per batch (microseconds, against a commit's milliseconds), so a Store that
            # is dropped leaves no file descriptor behind.
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            except BaseException:
                self._unlock()
                raise
        try:
            conn = self.engine.connect()
            try:
                conn.begin()  # BEGIN IMMEDIATE on SQLite (vault.db.engine)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self._unlock()
            raise
        self._conn, self._batch = conn, _Batch()

    def _commit(self, batch: _Batch) -> None:
        conn = self._take_batch()
        committed = False
        try:
            if batch.events and self.append_events is not None:
                self.append_events(conn, batch.events)
            if not transaction_alive(conn):
                # The database rolled the whole transaction back by itself (SQLite on an I/O
                # error or a full disk; PostgreSQL after an error outside any savepoint).
                raise StorageError("the write transaction was rolled back by the database")
            conn.commit()
            committed = True
            self.commits += 1
            self.units += batch.members
        except BaseException as exc:
            batch.failed = exc
        finally:
            self._close(conn, batch, roll_back=not committed)

    def _abandon(self, batch: _Batch) -> None:
        """Roll the open batch back - it holds nothing but its failed first unit - and close
        it."""
        self._close(self._take_batch(), batch, roll_back=True)

    def _take_batch(self) -> Connection:
        """The open batch's connection; the writer has no open batch from now on."""
        conn = self._conn
        assert conn is not None
        self._conn, self._batch = None, None
        return conn

    def _close(self, conn: Connection, batch: _Batch, *, roll_back: bool) -> None:
        """End a batch: roll it back if asked, give the connection and the write lock back,
        wake its units."""
        try:
            if roll_back:
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the connection is discarded below anyway
                    conn.invalidate()
        finally:
            conn.close()
            self._unlock()
            batch.done.set()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # releases the flock


class Unit:
    """One unit of work: ``connection`` for Core statements (the hot paths run theirs on it
    directly), ``session`` for the ORM. Both write in the unit's savepoint."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # Created now (a few microseconds) but it begins - a SAVEPOINT of its own inside the
        # unit's, SQLAlchemy's unit-of-work bookkeeping - only when first used: a unit that
        # runs Core statements alone never pays for it (a hundred microseconds or more).
        self.session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )


_SAVEPOINT = "custody_unit_{}"


@contextmanager
def _run_unit(
    conn: Connection,
    savepoint: str | None,
    *,
    release_first: str | None = None,
    keep: bool = False,
) -> Iterator[Unit]:
    """Run a unit of work in ``conn``'s transaction, in the SAVEPOINT named ``savepoint`` if
    given: rolled back to when the block raises; released when it ends, unless ``keep`` (the
    caller then has it released later: ``release_first`` of the next unit, or the COMMIT).
    Without a savepoint, the caller rolls back the whole transaction if the unit fails.

    ``release_first`` is the previous unit's savepoint, released in the same round trip that
    opens this one: on PostgreSQL every statement of a unit is a round trip, and the units of
    a batch run one after the other, so a round trip fewer per unit is throughput.

    The savepoint statements go straight to the driver: SQLAlchemy's own (``begin_nested``)
    cost some 70 microseconds of Python a unit. SQLAlchemy need not know of this savepoint:
    the unit's Session nests its own inside and releases or rolls it back first."""
    name = savepoint
    if name is not None:
        opening = [f"SAVEPOINT {name}"]
        if release_first is not None:
            opening.insert(0, f"RELEASE SAVEPOINT {release_first}")
        _run_together(conn, opening)
    unit = Unit(conn)
    try:
        yield unit
        if unit.session.in_transaction():
            unit.session.commit()  # flushes, releases the Session's savepoint
    except BaseException:
        unit.session.close()  # rolls the Session's savepoint back, if it began
        if name is None:
            raise
        try:
            _run_together(conn, [f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}"])
        except Exception:  # noqa: BLE001 - the unit's own error is the one to report
            # The database lost the transaction (SQLite rolls it all back on an I/O error or
            # a full disk; a broken connection): drop the connection, so that the batch's
            # COMMIT fails every unit rather than keep any part of this one.
            log.warning("could not roll back to %s; failing the batch", name, exc_info=True)
            conn.invalidate()
        raise
    unit.session.close()
    if name is not None and not keep:
        run_sql(conn, f"RELEASE SAVEPOINT {name}")


def _run_together(conn: Connection, statements: list[str]) -> None:
    """Statements without parameters or results: in one round trip on PostgreSQL (a simple
    query may hold several); one by one on SQLite, whose driver takes one at a time (and
    which has no round trips)."""
    if conn.dialect.name == "sqlite":
        for statement in statements:
            run_sql(conn, statement)
    else:
        run_sql(conn, "; ".join(statements))
