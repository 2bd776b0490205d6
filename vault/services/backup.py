"""Backups and restores, and the check of a database's log that a restore ends with.

A backup is **one SQLite database file** whatever the engine it was taken from: the whole
schema (at its revision) with every row - sealed root key, sealed vault identity and log key,
wrapped client keys, sealed fields, the log and its checkpoints. So the same file restores
onto SQLite or PostgreSQL, and a client opens it with ``custody recover`` and its own escrow
identity, no server needed (principle 1: the client can always leave).

Consistency while the vault runs:

* from SQLite, SQLite's online backup API copies the pages of one read snapshot (never a
  file copy of a live WAL database, which can tear);
* from PostgreSQL, every table is read in one ``REPEATABLE READ, READ ONLY`` transaction, so
  all rows come from the same snapshot (what ``pg_dump`` does too).

A restore refuses a backup from a newer schema (or no schema), refuses a target that already
holds a vault, migrates an older backup forward, and verifies the log - every leaf re-derived
from its event, the tree rebuilt, every checkpoint's root and signature checked - before the
restored data becomes visible (a renamed file on SQLite, a committed transaction on
PostgreSQL). A backup that fails the check restores nothing.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.orm import Session

from vault.db import engine as db
from vault.db.models import AuditEvent, Base, LogCheckpoint, LogState, VaultKey, VaultMeta
from vault.errors import Conflict, InvalidInput, SchemaError
from vault.log import merkle
from vault.log.errors import LogError
from vault.log.events import encode, event_object
from vault.log.note import Checkpoint, Verifier, open_note

BATCH = 2000
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class LogCheck:
    """What :func:`check_log` established about a database's log."""

    size: int
    checkpoints: int
    root: bytes
    keys: int


@dataclass(frozen=True)
class BackupInfo:
    path: str
    revision: str
    vault_id: str
    events: int
    bytes: int
    taken_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "revision": self.revision,
            "vault_id": self.vault_id,
            "events": self.events,
            "bytes": self.bytes,
            "taken_at": self.taken_at.isoformat(),
        }


@dataclass(frozen=True)
class RestoreInfo:
    revision_in_backup: str
    revision: str
    vault_id: str
    log: LogCheck

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision_in_backup": self.revision_in_backup,
            "revision": self.revision,
            "vault_id": self.vault_id,
            "log_size": self.log.size,
            "log_checkpoints": self.log.checkpoints,
        }


# --- the log of a database --------------------------------------------------------------------


def check_log(session: Session) -> LogCheck:
    """Verify the log as stored: each event's leaf re-derived from its columns and equal to
    the stored leaf hash, indexes gap-free from 0, the rebuilt root equal to every stored
    checkpoint's root (each signed by one of the vault's log keys) and to the log head.
    Raises :class:`LogError` naming the first problem."""
    keys = [
        Verifier.parse(k)
        for k in session.scalars(select(VaultKey.public).where(VaultKey.purpose == "log"))
    ]
    state = session.get(LogState, 1)
    if state is None:
        raise LogError("the database has no log head")
    stored = {cp.size: cp for cp in session.scalars(select(LogCheckpoint))}
    for cp in stored.values():
        if not keys:
            raise LogError("the database has checkpoints but no log key")
        try:
            text_, _ = open_note(cp.note, keys)
            note = Checkpoint.parse(text_)
        except LogError as exc:
            raise LogError(f"the checkpoint of size {cp.size} does not verify: {exc}") from None
        if note.size != cp.size or note.root != cp.root or note.origin != state.origin:
            raise LogError(f"the checkpoint of size {cp.size} does not match its signed note")
    columns = [c for c in AuditEvent.__table__.c if c.name not in ("id",)]
    rows = session.execute(
        select(*columns).order_by(AuditEvent.seq).execution_options(yield_per=BATCH)
    )
    compact = merkle.CompactRange()
    if 0 in stored and stored[0].root != merkle.EMPTY_ROOT:
        raise LogError("the checkpoint of the empty log has the wrong root")
    for row in rows:
        if row.seq != compact.size:
            raise LogError(f"event {compact.size} is missing (found {row.seq} next)")
        digest = merkle.leaf_hash(encode(event_object(row.seq, dict(row._mapping))))
        if digest != row.leaf_hash:
            raise LogError(f"event {row.seq} does not match its leaf hash (it was edited)")
        compact.append(digest)
        at = stored.get(compact.size)
        if at is not None and at.root != compact.root():
            raise LogError(
                f"events before {compact.size} do not hash to the root of the checkpoint of "
                "that size (an event was changed, added or removed)"
            )
    if any(size > compact.size for size in stored):
        raise LogError(f"a checkpoint is beyond the {compact.size} events stored (truncated)")
    head = merkle.CompactRange.from_bytes(state.compact)
    if head.size != compact.size or head.root() != compact.root() or state.size != head.size:
        raise LogError("the log head does not match the events stored")
    return LogCheck(size=compact.size, checkpoints=len(stored), root=compact.root(), keys=len(keys))


# --- backup -------------------------------------------------------------------------------------


def _private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def _copy_rows(source: Connection, target: Connection, progress: Progress | None) -> int:
    """Copy every table's rows (parents before children). Returns the audit event count."""
    events = 0
    for table in Base.metadata.sorted_tables:
        result = source.execute(select(table).execution_options(yield_per=BATCH))
        copied = 0
        for rows in result.partitions(BATCH):
            target.execute(insert(table), [dict(r._mapping) for r in rows])
            copied += len(rows)
            if progress is not None:
                progress(table.name, copied)
        if table.name == AuditEvent.__tablename__:
            events = copied
    return events


def _empty_tables(target: Connection) -> None:
    for table in reversed(Base.metadata.sorted_tables):
        target.execute(table.delete())


def backup(url: str, out: Path, *, progress: Progress | None = None) -> BackupInfo:
    """Write a consistent backup of the database at ``url`` to ``out`` (a new file, 0600)."""
    out = Path(out)
    if out.exists():
        raise Conflict(f"{out} exists: give a new file name", field="out")
    engine = db.make_engine(url)
    try:
        db.check_schema(engine)
        revision = db.head_revision()
        try:
            out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            message = f"cannot write in {out.parent}: {exc.strerror}"
            raise InvalidInput(message, field="out") from None
        # Beside the target, so the final rename is atomic (never across file systems).
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            partial = Path(tmp) / "backup.db"
            _private_file(partial)
            if engine.dialect.name == "sqlite":
                events = _backup_sqlite(engine, partial)
            else:
                events = _backup_by_rows(engine, partial, progress)
            with Session(db.make_engine(f"sqlite:///{partial}", read_only=True)) as session:
                meta = session.get(VaultMeta, 1)
                if meta is None:
                    raise SchemaError("that database holds no vault: nothing to back up")
                vault_id = meta.vault_id
                session.get_bind().dispose()  # type: ignore[union-attr]
            _private_file(out)
            os.replace(partial, out)
    finally:
        engine.dispose()
    return BackupInfo(
        path=str(out),
        revision=revision,
        vault_id=vault_id,
        events=events,
        bytes=out.stat().st_size,
        taken_at=datetime.now(UTC),
    )


def _backup_sqlite(engine: Engine, partial: Path) -> int:
    target = sqlite3.connect(partial)
    try:
        raw = engine.raw_connection()
        try:
            source = raw.driver_connection
            assert isinstance(source, sqlite3.Connection)
            # pages=-1: the whole database in one step, from one read snapshot.
            source.backup(target, pages=-1)
        finally:
            raw.close()
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        (events,) = target.execute("SELECT count(*) FROM audit_events").fetchone()
        target.commit()
    finally:
        target.close()
    return int(events)


def _backup_by_rows(engine: Engine, partial: Path, progress: Progress | None) -> int:
    target_engine = db.make_engine(f"sqlite:///{partial}")
    try:
        db.upgrade(target_engine)
        with target_engine.begin() as target, engine.connect() as source:
            source = source.execution_options(isolation_level="REPEATABLE READ")
            with source.begin():
                if engine.dialect.name == "postgresql":
                    source.execute(text("SET TRANSACTION READ ONLY"))
                _empty_tables(target)
                events = _copy_rows(source, target, progress)
    finally:
        target_engine.dispose()
    plain = sqlite3.connect(partial, isolation_level=None)
    try:
        plain.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        plain.close()
    return events


# --- restore ------------------------------------------------------------------------------------


def _backup_revision(path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"no backup file at {path}", field="backup")
    with path.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise InvalidInput(f"{path} is not a Custody backup (not a SQLite file)")
    engine = db.make_engine(f"sqlite:///{path}", read_only=True)
    try:
        revision = db.current_revision(engine)
    except Exception:  # noqa: BLE001 - a damaged file: say so in one line
        raise InvalidInput(f"{path} is not a Custody backup (unreadable)") from None
    finally:
        engine.dispose()
    if revision is None:
        raise SchemaError(f"{path} holds no Custody schema")
    if revision not in db._known_revisions():
        raise SchemaError(
            f"that backup is at schema {revision}, newer than this Custody: restore it with a "
            "newer custody"
        )
    return revision


def _target_is_empty(url: str) -> bool:
    try:
        engine = db.make_engine(url)
    except Exception:  # noqa: BLE001 - no SQLite file yet
        return True
    try:
        return db.current_revision(engine) is None
    finally:
        engine.dispose()


def restore(backup_path: Path, url: str, *, progress: Progress | None = None) -> RestoreInfo:
    """Restore ``backup_path`` into the empty database at ``url`` (see the module docstring)."""
    backup_path = Path(backup_path)
    revision = _backup_revision(backup_path)
    if not _target_is_empty(url):
        raise Conflict(
            "the target database already holds a Custody schema: restore into an empty one "
            "(a new CUSTODY_HOME, or a new PostgreSQL database)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        # Work on a copy: the backup itself is never changed (it may be the only one).
        work = Path(tmp) / "restore.db"
        shutil.copyfile(backup_path, work)
        work_engine = db.make_engine(f"sqlite:///{work}")
        try:
            if revision != db.head_revision():
                db.upgrade(work_engine)
            with Session(work_engine) as session:
                check_log(session)  # refuse a damaged backup before touching the target
            if url.startswith("sqlite"):
                log = _restore_sqlite(work_engine, url)
            else:
                log = _restore_by_rows(work_engine, url, progress)
            with Session(work_engine) as session:
                meta = session.get(VaultMeta, 1)
                if meta is None:
                    raise SchemaError("that backup holds no vault")
                vault_id = meta.vault_id
        finally:
            work_engine.dispose()
    return RestoreInfo(
        revision_in_backup=revision, revision=db.head_revision(), vault_id=vault_id, log=log
    )


def _restore_sqlite(work_engine: Engine, url: str) -> LogCheck:
    path = Path(url.split("///", 1)[1])
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".restoring")
    if partial.exists():
        partial.unlink()
    _private_file(partial)
    target = sqlite3.connect(partial)
    try:
        raw = work_engine.raw_connection()
        try:
            source = raw.driver_connection
            assert isinstance(source, sqlite3.Connection)
            source.backup(target, pages=-1)
        finally:
            raw.close()
    finally:
        target.close()
    check_engine = db.make_engine(f"sqlite:///{partial}")
    try:
        with Session(check_engine) as session:
            log = check_log(session)
    finally:
        check_engine.dispose()
    os.replace(partial, path)
    return log


def _restore_by_rows(work_engine: Engine, url: str, progress: Progress | None) -> LogCheck:
    target_engine = db.make_engine(url)
    try:
        db.upgrade(target_engine)
        with work_engine.connect() as source, target_engine.begin() as target:
            _empty_tables(target)
            _copy_rows(source, target, progress)
            _reset_sequences(target)
            log = check_log(Session(bind=target))
            # Leaving the block commits; any error above rolls everything back.
    finally:
        target_engine.dispose()
    return log


def _reset_sequences(target: Connection) -> None:
    """After rows were inserted with their ids, move PostgreSQL's serial sequences past them."""
    if target.dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        column = table.autoincrement_column
        if column is None:
            continue
        top = target.execute(select(func.max(column))).scalar()
        if top is None:
            continue
        target.execute(
            text("SELECT setval(pg_get_serial_sequence(:table, :column), :value)"),
            {"table": table.name, "column": column.name, "value": top},
        )
