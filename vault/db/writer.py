"""Group commit for SQLite: many transactions, one fsync.

SQLite has one writer at a time, and with ``synchronous=FULL`` every commit waits for an fsync
of the WAL (2-15 ms on the disks we run on). One commit per request caps a server at a few
hundred durable writes per second however little CPU each takes. So the writes of one process
share a transaction:

* a thread that wants to write takes the process's writer mutex; the first one opens the
  *batch* (``BEGIN IMMEDIATE`` on one connection, after an exclusive ``flock`` on
  ``<database>-writer`` so that several server processes hand the write lock to each other in
  FIFO order, woken by the kernel, instead of polling in SQLite's busy handler, which sleeps up
  to 100 ms at a time);
* each unit of work runs in a SAVEPOINT of that transaction, in a Session of its own: its
  failure rolls back only its own writes (``ROLLBACK TO``), exactly as a transaction of its own
  would;
* the thread that finishes while nobody else is waiting for the mutex (or that fills the batch
  to :data:`MAX_BATCH`) commits - one fsync for everyone in the batch - and wakes the others.
  Nobody returns before the COMMIT that holds its writes has returned, so what a caller was
  told is done is on disk (durable, as with one transaction per request).

Units of work in a batch see each other's writes, as consecutive transactions would. If the
COMMIT itself fails (disk full, I/O error) every unit in the batch fails with
:class:`~vault.errors.StorageError`, and none of their writes is kept.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from vault.errors import StorageError

#: most units of work per commit (bounds the latency a batch adds to its first member)
MAX_BATCH = 64


@dataclass
class _Batch:
    done: threading.Event = field(default_factory=threading.Event)
    members: int = 0
    failed: BaseException | None = None


class GroupWriter:
    """The SQLite write path of one process (see the module documentation)."""

    def __init__(self, engine: Engine, lock_path: str | None) -> None:
        self.engine = engine
        self._mutex = threading.Lock()
        self._counter = threading.Lock()
        self._waiting = 0
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
        if getattr(self._local, "inside", False):
            # Nested in a unit of work of this thread: a savepoint of the same batch.
            assert self._conn is not None
            with _savepoint_session(self._conn) as session:
                yield session
            return
        with self._counter:
            self._waiting += 1
        self._mutex.acquire()
        with self._counter:
            self._waiting -= 1
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
        try:
            with _savepoint_session(conn) as session:
                yield session
        finally:
            self._local.inside = False
            batch.members += 1
            if self._waiting == 0 or batch.members >= MAX_BATCH:
                try:
                    self._commit(batch)
                finally:
                    self._mutex.release()
            else:
                self._mutex.release()
                batch.done.wait()
        if batch.failed is not None:
            raise StorageError("the database did not commit this change; try again") from None

    def _open(self) -> None:
        if self._lock_path is not None:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn = self.engine.connect()
            try:
                conn.begin()  # BEGIN IMMEDIATE (vault.db.engine)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self._unlock()
            raise
        self._conn, self._batch = conn, _Batch()

    def _commit(self, batch: _Batch) -> None:
        conn = self._conn
        assert conn is not None
        self._conn, self._batch = None, None
        try:
            driver = conn.connection.driver_connection
            if driver is not None and not driver.in_transaction:
                # SQLite rolled the whole transaction back by itself (I/O error, disk full).
                raise StorageError("the write transaction was rolled back by the database")
            conn.commit()
            self.commits += 1
            self.units += batch.members
        except BaseException as exc:
            batch.failed = exc
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001, S110 - the connection is discarded below anyway
                conn.invalidate()
        finally:
            conn.close()
            self._unlock()
            batch.done.set()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


@contextmanager
def _savepoint_session(conn: Connection) -> Iterator[Session]:
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        with session.begin():
            yield session
    finally:
        session.close()
