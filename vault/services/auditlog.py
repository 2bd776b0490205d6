"""The transparency log in the database: appending leaves, signing checkpoints, proofs, reads.

docs/audit-log.md is the specification. The pieces:

* ``audit_events`` - one row per event with its leaf index ``seq`` and ``leaf_hash``;
* ``log_state`` - one row, the head: size and compact range (the tree's right edge);
* ``log_nodes`` - hashes of perfect subtrees at levels 4, 8, 12, ... for O(log n) proofs;
* ``log_checkpoints`` - signed checkpoints (c2sp.org/tlog-checkpoint in a signed note).

:func:`append` runs inside the transaction of the action it records (``Store.context`` calls it
just before committing). It locks the head row, so with several server processes on
PostgreSQL the appends queue on that row and leaf indexes follow commit order with no gaps (a
rolled-back transaction rolls its head update back too) and no forks. SQLite has one writer at
a time anyway.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import secrets
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, TypeVar, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    and_,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vault.db.direct import DirectStatement, pipelined, transaction_alive
from vault.db.models import AuditEvent, LogCheckpoint, LogNode, LogState, VaultKey
from vault.errors import Forbidden, InvalidInput, NotFound, Sealed, StorageError
from vault.keys import KeyRing
from vault.log import merkle
from vault.log.errors import LogError, ProofError
from vault.log.events import (
    checkpoint_line,
    encode,
    event_object,
    export_header,
    export_line,
    format_time,
    stored_event_object,
)
from vault.log.note import Checkpoint, sign_checkpoint
from vault.log.verify import batched
from vault.services import OPERATOR, Context, Principal

#: levels of perfect subtrees kept in ``log_nodes`` (16, 256, 4096 ... leaves); the others are
#: recomputed from at most 8 stored hashes one stratum below
STORED_LEVELS = frozenset(range(4, 64, 4))
_STRATUM = 4
_T = TypeVar("_T")
#: the roles that may read events (each within its client scope)
READERS = ("admin", "auditor", "client")
MAX_PAGE = 1000

_EVENT_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.role,
    AuditEvent.source,
    AuditEvent.action,
    AuditEvent.outcome,
    AuditEvent.client_id,
    AuditEvent.subject_kind,
    AuditEvent.subject_id,
    AuditEvent.detail,
)


# --- appending ---------------------------------------------------------------------------------


#: benchmarks only (bench/bench_log_append.py): store events as a plain table - no leaf
#: index from the head, no hashing, no subtrees, but the same INSERT - to measure what the log
#: costs the check-out path
PLAIN_TABLE_FOR_BENCHMARKS = False


_EVENTS = cast(Table, AuditEvent.__table__)
_STATE = cast(Table, LogState.__table__)
_NODES = cast(Table, LogNode.__table__)
#: the log head this process last wrote, per engine - as stored, and as a compact range that
#: appends copy (never change: on PostgreSQL several threads append at once): lets an append
#: skip reading and parsing the head. Only a hint - the UPDATE that uses it is conditional on
#: the stored head being exactly this (the whole compact range, not just the size, so a
#: rolled-back append cannot fool it).
_last_head: weakref.WeakKeyDictionary[Engine, tuple[bytes, merkle.CompactRange]] = (
    weakref.WeakKeyDictionary()
)
#: per engine: whether this process's last append found the head moved by someone else
_moved_by_others: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def append(
    session: Session | Connection, events: Sequence[Mapping[str, Any]], *, commit: bool = False
) -> int:
    """Append ``events`` (audit columns) as the next leaves; returns the new tree size.

    One statement moves the head in the common case: an UPDATE conditional on the head being
    the one this process last wrote (on PostgreSQL, for a single event, the same statement
    inserts it). If another process (or a rolled-back transaction) moved the head, it is read
    under a row lock (SELECT ... FOR UPDATE) and the leaves are made again from there; a
    process whose last append found that goes straight to the lock next time (with several
    server processes, the head has mostly moved since a process's own last batch). Either
    way the head row is locked until commit, so concurrent appends queue. The common path's
    statements run on the driver (vault/db/direct.py): through SQLAlchemy each cost about 25 us
    of CPU, most of an append, on a path SQLite's single writer runs one at a time.

    On PostgreSQL, once the head has moved (or is locked), the writes that follow go in one
    round trip - and with ``commit``, the transaction's COMMIT with them (the group commit's
    batches: the head row stays locked, for other processes' batches, one round trip instead
    of three or four). SQLite has no round trips: there the caller commits.
    """
    if not events:
        return -1
    conn = session if isinstance(session, Connection) else session.connection()
    _in_transaction(conn)
    if PLAIN_TABLE_FOR_BENCHMARKS:
        _INSERT_EVENTS.run_many(conn, [_plain_row(e) for e in events])
        return -1
    engine = conn.engine
    cached = _last_head.get(engine)
    moved = inserted = False
    if cached is not None and not _moved_by_others.get(engine, False):
        old, last = cached
        compact = last.copy()
        rows, nodes = _make_leaves(compact, events)
        new = compact.to_bytes()
        head = {"old": old, "size": compact.size, "new": new}
        if len(rows) == 1 and conn.dialect.name == "postgresql":
            # One round trip: the head moves and the event is inserted in one statement, or
            # neither happens (the INSERT selects from the UPDATE's RETURNING).
            row = {name: rows[0].get(name) for name in _EVENT_ROW}
            moved = inserted = _MOVE_HEAD_AND_INSERT.first(conn, {**head, **row}) is not None
        else:  # SQLite has no DML inside WITH: two statements (cheap ones on the driver)
            moved = _MOVE_HEAD.rowcount(conn, head) == 1
    if not moved:
        head_row = _LOCK_HEAD.first(conn)
        if head_row is None:
            raise LogError("this vault has no transparency log head (run `custody db upgrade`)")
        compact = merkle.CompactRange.from_bytes(head_row.compact)
        if compact.size != head_row.size:
            raise LogError("the log head is inconsistent (size and compact range disagree)")
        if cached is not None:
            # With several server processes, a batch mostly finds the head moved by another
            # process since its own last append: then the next append locks the head at once
            # instead of trying the conditional move first (a round trip for nothing), until
            # it finds the head as it left it.
            _moved_by_others[engine] = head_row.compact != cached[0]
        rows, nodes = _make_leaves(compact, events)
        new = compact.to_bytes()
    # From here nothing needs an answer before the end: the head is moved already or locked
    # (its move cannot miss), so on PostgreSQL the rest and the COMMIT go in one round trip.
    with pipelined(conn, commit=commit):
        if not moved:
            _SET_HEAD.rowcount(conn, {"size": compact.size, "new": new})
        if not inserted:
            _INSERT_EVENTS.run_many(conn, rows)
        if nodes:
            _INSERT_NODES.run_many(conn, nodes)
    _last_head[engine] = (new, compact)
    return compact.size


def _in_transaction(conn: Connection) -> None:
    """Make sure the append's statements run inside the caller's transaction: they go to the
    driver, which SQLAlchemy's autobegin does not see."""
    if not conn.in_transaction():
        conn.begin()  # what SQLAlchemy's autobegin would do (BEGIN IMMEDIATE on SQLite)
    if conn.dialect.name == "sqlite" and not transaction_alive(conn):
        # SQLite rolled the transaction back by itself (an I/O error, a full disk): each
        # statement would now commit on its own, the head's move without the rest.
        raise StorageError("the write transaction was rolled back by the database")


def _make_leaves(
    compact: merkle.CompactRange, events: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Give ``events`` the next leaf indexes, hash them into ``compact``; return the event rows
    and the subtree rows to store.

    A row's ``detail`` is the one its leaf encodes (checked, tuples made lists), so what the
    database gives back is what was hashed."""
    nodes: list[dict[str, Any]] = []

    def keep(level: int, idx: int, digest: bytes) -> None:
        if level in STORED_LEVELS:
            nodes.append({"level": level, "idx": idx, "hash": digest})

    rows = []
    for item in events:
        seq = compact.size
        leaf = event_object(seq, item)
        digest = merkle.leaf_hash(encode(leaf))
        compact.append(digest, keep)
        rows.append({**item, "detail": leaf["detail"], "seq": seq, "leaf_hash": digest})
    return rows, nodes


#: PLAIN_TABLE_FOR_BENCHMARKS: ``seq`` values of plain rows - negative, so never a leaf index;
#: consecutive, as a plain table's autoincremented key would be (its index grows at one end); from
#: a random start, so runs against one database do not collide
_plain_seq = itertools.count(-secrets.randbits(62) - 1, -1)


def _plain_row(event: Mapping[str, Any]) -> dict[str, Any]:
    """PLAIN_TABLE_FOR_BENCHMARKS: the event's row with no leaf index and no hash."""
    return {**event, "seq": next(_plain_seq), "leaf_hash": b""}


#: the statements of an append, built once
_HEAD_MOVE = (
    update(_STATE)
    .where(_STATE.c.id == 1, _STATE.c.compact == bindparam("old"))
    .values(size=bindparam("size"), compact=bindparam("new"))
)
_MOVE_HEAD = DirectStatement(_HEAD_MOVE)
#: the head when another process (or a rolled-back batch) moved it: every batch of the other
#: server process, with two of them - on the driver too
_LOCK_HEAD = DirectStatement(
    select(_STATE.c.size, _STATE.c.compact).where(_STATE.c.id == 1).with_for_update()
)
_SET_HEAD = DirectStatement(
    update(_STATE).where(_STATE.c.id == 1).values(size=bindparam("size"), compact=bindparam("new"))
)
#: every column of an event row but the autoincremented id
_EVENT_ROW = [c.name for c in _EVENTS.c if c.name != "id"]
#: an optional column a row leaves out is NULL, as in a Core INSERT of that row
_INSERT_EVENTS = DirectStatement(
    insert(_EVENTS).values({name: bindparam(name, None) for name in _EVENT_ROW})
)
_INSERT_NODES = DirectStatement(
    insert(_NODES).values({c.name: bindparam(c.name) for c in _NODES.c})
)


def _unbounded(column: Any) -> Any:
    """The type an event value is cast to in ``_MOVE_HEAD_AND_INSERT``: the column's, but
    VARCHAR(n) without its length. PostgreSQL cuts a value short without a word when it is
    cast to VARCHAR(n) - after it was hashed into its leaf, so the log would no longer
    verify; inserted from plain VARCHAR into the column, a value too long is refused, as a
    plain INSERT refuses it."""
    return String() if isinstance(column.type, String) else column.type


_MOVED = _HEAD_MOVE.returning(_STATE.c.id).cte("moved")
#: PostgreSQL: ``WITH moved AS (UPDATE head ... RETURNING id) INSERT INTO audit_events
#: SELECT <the event> FROM moved`` - the event is written only if the head moved
_MOVE_HEAD_AND_INSERT = DirectStatement(
    insert(_EVENTS)
    .from_select(
        _EVENT_ROW,
        select(
            *[
                sa_cast(bindparam(name, type_=_EVENTS.c[name].type), _unbounded(_EVENTS.c[name]))
                for name in _EVENT_ROW
            ]
        ).select_from(_MOVED),
    )
    .add_cte(_MOVED)
    .returning(_EVENTS.c.seq)
)


# --- head, key, checkpoints ------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    origin: str
    size: int
    root: bytes


def head(session: Session) -> Head:
    state = session.get(LogState, 1)
    if state is None:
        raise LogError("this vault has no transparency log head (run `custody db upgrade`)")
    compact = merkle.CompactRange.from_bytes(state.compact)
    return Head(origin=state.origin, size=compact.size, root=compact.root())


def verifier_key(session: Session) -> str:
    """The log's verifier key string (``name+hash+base64``): what auditors pin."""
    key = session.scalars(
        select(VaultKey)
        .where(VaultKey.purpose == "log", VaultKey.retired_at.is_(None))
        .order_by(VaultKey.created_at.desc())
    ).first()
    if key is None:
        raise LogError("the log key is made at the first unseal after upgrading: unseal once")
    return key.public


def log_keys(session: Session) -> list[str]:
    """Every verifier key the log has had, oldest first (more than one after a rotation)."""
    return list(
        session.scalars(
            select(VaultKey.public)
            .where(VaultKey.purpose == "log")
            .order_by(VaultKey.created_at, VaultKey.id)
        )
    )


def handovers(session: Session) -> list[tuple[str, LogCheckpoint]]:
    """Each log-key rotation's handover: (the new verifier key, the first checkpoint made
    under it - signed by the old key and the new one), oldest first."""
    keys = session.execute(
        select(VaultKey.id, VaultKey.public)
        .where(VaultKey.purpose == "log")
        .order_by(VaultKey.created_at, VaultKey.id)
    ).all()
    found = []
    for key in keys[1:]:
        first = session.scalars(
            select(LogCheckpoint)
            .where(LogCheckpoint.key_id == key.id)
            .order_by(LogCheckpoint.size)
            .limit(1)
        ).first()
        if first is not None:
            found.append((key.public, first))
    return found


def latest_checkpoint(session: Session) -> LogCheckpoint | None:
    return session.scalars(
        select(LogCheckpoint).order_by(LogCheckpoint.size.desc()).limit(1)
    ).first()


def checkpoint_at(session: Session, size: int) -> LogCheckpoint:
    found = session.get(LogCheckpoint, size)
    if found is None:
        raise NotFound(f"no checkpoint of tree size {size}", field="size")
    return found


def checkpoints(
    session: Session, *, after: int | None = None, limit: int = MAX_PAGE
) -> list[LogCheckpoint]:
    query = select(LogCheckpoint).order_by(LogCheckpoint.size).limit(limit)
    if after is not None:
        query = query.where(LogCheckpoint.size > after)
    return list(session.scalars(query))


def sign(session: Session, keys: KeyRing | None) -> LogCheckpoint:
    """A checkpoint of the log as it is now: the latest one if the tree has not grown since,
    else a newly signed one (idempotent across processes: the same size signs the same note).
    """
    now, note, _ = current_note(session, keys)
    keep(session, keys, now.size, now.root, note)
    return checkpoint_at(session, now.size)


def current_note(session: Session, keys: KeyRing | None) -> tuple[Head, str, LogCheckpoint | None]:
    """The head, a signed checkpoint note of it, and the latest stored checkpoint, without
    storing anything (the note is the latest stored one when the tree has not grown since).
    :func:`keep` stores it later - an export cuts its checkpoint in a read-only snapshot and
    stores it with its own event."""
    if keys is None or keys.log_signer is None or keys.log_key_id is None:
        raise Sealed("the vault is sealed: checkpoints are signed by the unsealed log key")
    current = session.scalars(
        select(VaultKey.id).where(VaultKey.purpose == "log", VaultKey.retired_at.is_(None))
    ).first()
    # The log key was rotated by another process: catch up rather than sign with a retired
    # key (a verifier would rightly refuse that checkpoint).
    if current != keys.log_key_id and (
        keys.reload is None or not keys.reload() or keys.log_key_id != current
    ):
        raise Sealed("the log key was rotated: unseal again to sign checkpoints")
    now = head(session)
    latest = latest_checkpoint(session)
    if latest is not None:
        if latest.size == now.size:
            return now, latest.note, latest
        if latest.size > now.size:
            raise LogError(
                f"the log has {now.size} events but was checkpointed at {latest.size}: "
                "it was truncated"
            )
    note = sign_checkpoint(
        Checkpoint(origin=now.origin, size=now.size, root=now.root), keys.log_signer
    )
    return now, note, latest


def keep(
    session: Session,
    keys: KeyRing | None,
    size: int,
    root: bytes,
    note: str,
    *,
    signed_at: datetime | None = None,
) -> None:
    """Store a checkpoint note signed by :func:`current_note` (nothing if that size is kept)."""
    if keys is None or keys.log_key_id is None:
        raise Sealed("the vault is sealed: checkpoints are signed by the unsealed log key")
    values = {
        "size": size,
        "root": root,
        "note": note,
        "key_id": keys.log_key_id,
        "signed_at": signed_at or datetime.now().astimezone(),
    }
    dialect = session.get_bind().dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(LogCheckpoint).values(values).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(LogCheckpoint).values(values).on_conflict_do_nothing()
    session.execute(statement)


def checkpoint_due(
    session: Session, *, every_events: int, every_seconds: float, now: datetime
) -> bool:
    """Whether the log has grown by ``every_events`` since the latest checkpoint, or has grown
    at all and that checkpoint is older than ``every_seconds``."""
    size = session.scalar(select(LogState.size).where(LogState.id == 1))
    if size is None:
        return False
    latest = session.execute(
        select(LogCheckpoint.size, LogCheckpoint.signed_at)
        .order_by(LogCheckpoint.size.desc())
        .limit(1)
    ).first()
    if latest is None:
        return True
    grown = size - latest.size
    age = (now - latest.signed_at).total_seconds()
    return bool(grown >= every_events or (grown > 0 and age >= every_seconds))


# --- proofs ------------------------------------------------------------------------------------


class _Tree:
    """Reads of leaf and subtree hashes for proofs, fetched in two batched queries.

    Proof generation never branches on hash values, so a first dry run with placeholder hashes
    learns every (level, index) a proof needs; one query per table fetches them; the second run
    uses the real hashes."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.leaves: dict[int, bytes] = {}
        self.nodes: dict[tuple[int, int], bytes] = {}
        self._want_leaves: set[int] = set()
        self._want_nodes: set[tuple[int, int]] = set()
        self._dry = True

    def node(self, level: int, idx: int) -> bytes:
        if level == 0:
            return self.leaf(idx)
        if level in STORED_LEVELS:
            if self._dry:
                self._want_nodes.add((level, idx))
                return bytes(32)
            try:
                return self.nodes[(level, idx)]
            except KeyError:
                raise LogError(f"log subtree ({level}, {idx}) is missing") from None
        # Rebuild from the stratum below: 2**(level % 4) perfect subtrees, paired upward.
        drop = level % _STRATUM
        base = level - drop
        layer = [self.node(base, (idx << drop) + k) for k in range(1 << drop)]
        while len(layer) > 1:
            layer = [merkle.node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
        return layer[0]

    def leaf(self, idx: int) -> bytes:
        if self._dry:
            self._want_leaves.add(idx)
            return bytes(32)
        try:
            return self.leaves[idx]
        except KeyError:
            raise LogError(f"log leaf {idx} is missing") from None

    def fetch(self) -> None:
        if self._want_leaves:
            rows = self.session.execute(
                select(AuditEvent.seq, AuditEvent.leaf_hash).where(
                    AuditEvent.seq.in_(sorted(self._want_leaves))
                )
            )
            self.leaves.update((seq, digest) for seq, digest in rows)
        if self._want_nodes:
            levels: dict[int, list[int]] = {}
            for level, idx in self._want_nodes:
                levels.setdefault(level, []).append(idx)
            for level, idxs in levels.items():
                rows = self.session.execute(
                    select(LogNode.idx, LogNode.hash).where(
                        LogNode.level == level, LogNode.idx.in_(sorted(idxs))
                    )
                )
                self.nodes.update(((level, idx), digest) for idx, digest in rows)
        self._dry = False
        self._want_leaves.clear()
        self._want_nodes.clear()


def _check_tree_size(session: Session, size: int) -> None:
    current = session.scalar(select(LogState.size).where(LogState.id == 1)) or 0
    if size > current:
        raise ProofError(f"tree size {size} is beyond the log's size {current}")


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 2.1.3.1)."""
    _check_tree_size(session, size)
    return _batched(
        session,
        lambda t: merkle.inclusion_proof(index, size, t.leaf, get_node_hash=t.node),
    )


def inclusion_proofs(session: Session, indexes: Sequence[int], size: int) -> list[list[bytes]]:
    """Audit paths of several leaves against one tree size, in two queries in all."""
    _check_tree_size(session, size)
    return _batched(
        session,
        lambda t: [merkle.inclusion_proof(i, size, t.leaf, get_node_hash=t.node) for i in indexes],
    )


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    """Proof that the tree of ``old_size`` leaves is a prefix of ``new_size`` (RFC 9162 2.1.4.1)."""
    _check_tree_size(session, new_size)
    return _batched(
        session,
        lambda t: merkle.consistency_proof(old_size, new_size, t.leaf, get_node_hash=t.node),
    )


def _batched(session: Session, build: Callable[[_Tree], _T]) -> _T:
    tree = _Tree(session)
    build(tree)
    tree.fetch()
    return build(tree)


# --- reading events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which events to read. ``client_id`` must already be checked against the caller's scope."""

    since: datetime | None = None
    until: datetime | None = None
    client_id: str | None = None
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None

    @property
    def empty(self) -> bool:
        return not any(
            (self.since, self.until, self.client_id, self.actor, self.action, self.outcome)
        )


def require_reader(ctx: Context) -> None:
    ctx.require(*READERS)


def sees_whole_log(principal: Principal) -> bool:
    return principal.role in ("admin", OPERATOR) or (
        principal.role == "auditor" and principal.clients is None
    )


def _scope(principal: Principal) -> ColumnElement[bool] | None:
    if sees_whole_log(principal):
        return None
    if principal.role not in READERS:
        raise Forbidden(f"a {principal.role} may not read the access log")
    return AuditEvent.client_id.in_(sorted(principal.clients or ()))


def _where(principal: Principal, filters: EventFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    scope = _scope(principal)
    if scope is not None:
        clauses.append(scope)
    if filters.client_id is not None:
        if not principal.sees(filters.client_id):
            raise NotFound("no such client", field="client")
        clauses.append(AuditEvent.client_id == filters.client_id)
    if filters.since is not None:
        clauses.append(AuditEvent.at >= filters.since)
    if filters.until is not None:
        clauses.append(AuditEvent.at < filters.until)
    for column, value in (
        (AuditEvent.actor, filters.actor),
        (AuditEvent.action, filters.action),
        (AuditEvent.outcome, filters.outcome),
    ):
        if value is not None:
            clauses.append(column == value)
    return clauses


@dataclass(frozen=True)
class Entry:
    """One event as the log holds it: its index, its fields, and the exact bytes hashed."""

    index: int
    event: dict[str, Any]
    leaf: bytes
    proof: list[bytes] = field(default_factory=list)

    def as_dict(self, *, with_proof: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "event": self.event,
            "leaf": base64.b64encode(self.leaf).decode("ascii"),
        }
        if with_proof:
            out["proof"] = [base64.b64encode(h).decode("ascii") for h in self.proof]
        return out


def _entry(row: Any) -> Entry:
    obj = stored_event_object(row.seq, row._mapping)
    return Entry(index=row.seq, event=obj, leaf=encode(obj))


def _query(
    principal: Principal, filters: EventFilter, *, below: int | None, after: int | None
) -> Select[Any]:
    clauses = _where(principal, filters)
    if below is not None:
        clauses.append(AuditEvent.seq < below)
    if after is not None:
        clauses.append(AuditEvent.seq > after)
    return select(*_EVENT_COLUMNS).where(and_(True, *clauses)).order_by(AuditEvent.seq)


def list_entries(
    ctx: Context,
    filters: EventFilter,
    *,
    after: int | None = None,
    limit: int = 100,
    below: int | None = None,
) -> list[Entry]:
    """One page of the events the caller may see, oldest first, after leaf index ``after``."""
    require_reader(ctx)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    query = _query(ctx.principal, filters, below=below, after=after).limit(limit)
    return [_entry(row) for row in ctx.session.connection().execute(query)]


def iter_entries(
    session: Session, principal: Principal, filters: EventFilter, *, below: int
) -> Iterator[Entry]:
    query = _query(principal, filters, below=below, after=None)
    # Core, not the Session: rows of plain columns need none of the ORM's loading, which
    # cost more than the database's fetch (an export reads every event once).
    result = session.connection().execute(query.execution_options(yield_per=2000))
    for row in result:
        yield _entry(row)


def entry_visible(ctx: Context, index: int) -> Entry:
    """The event at ``index`` if the caller may see it, else NotFound."""
    require_reader(ctx)
    query = _query(ctx.principal, EventFilter(), below=None, after=None).where(
        AuditEvent.seq == index
    )
    row = ctx.session.connection().execute(query).first()
    if row is None:
        raise NotFound(f"no event {index} that you may see", field="index")
    return _entry(row)


# --- export ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "index",
    "at",
    "actor",
    "role",
    "source",
    "action",
    "outcome",
    "client_id",
    "subject_kind",
    "subject_id",
    "detail",
    "leaf_hash",
)


def export_checkpoint(ctx: Context) -> LogCheckpoint:
    """The checkpoint an export or a proof is cut at: a fresh one when the vault is unsealed,
    else the latest signed one.

    A checkpoint signed here is stored with the operation (``Context.write_after``): in its
    transaction, or - for a read-only one, an auditor's page or download - right after it,
    before the answer goes out. So reading the log never holds up the vault's writers for
    longer than that one row."""
    if ctx.keys is not None and ctx.keys.log_signer is not None:
        now, note, latest = current_note(ctx.session, ctx.keys)
        if latest is not None and latest.size == now.size:
            return latest
        cut = LogCheckpoint(
            size=now.size,
            root=now.root,
            note=note,
            key_id=ctx.keys.log_key_id,
            signed_at=datetime.now().astimezone(),
        )
        ctx.write_after(
            lambda later: keep(
                later.session, later.keys, cut.size, cut.root, cut.note, signed_at=cut.signed_at
            )
        )
        return cut
    latest = latest_checkpoint(ctx.session)
    if latest is None:
        raise Sealed("the log has no checkpoint yet: unseal the vault to sign one")
    return latest


def export_jsonl(
    ctx: Context, out: BinaryIO, filters: EventFilter, *, progress: Any = None
) -> dict[str, Any]:
    """Write the log (or the caller's view of it) as JSON Lines (docs/audit-log.md, "Export").

    The whole log - for a caller who sees all of it and asked for no filter - carries every
    checkpoint up to the cut, so a verifier recomputes the tree and checks each signature. A
    filtered or client-scoped view carries the cut checkpoint and an inclusion proof per event.
    Returns the header.
    """
    require_reader(ctx)
    cut = export_checkpoint(ctx)
    whole = filters.empty and sees_whole_log(ctx.principal)
    header = export_header(
        head(ctx.session).origin,
        verifier_key(ctx.session),
        cut.size,
        "whole" if whole else "filtered",
        log_keys=log_keys(ctx.session),
        exported_at=format_time(datetime.now().astimezone()),
    )
    write = out.write
    write(orjson.dumps(header) + b"\n")
    notes = checkpoints(ctx.session, limit=10**9) if whole else [cut]
    for checkpoint in notes:
        if checkpoint.size < cut.size:
            write(checkpoint_line(checkpoint.note) + b"\n")
    # the cut last: in a read-only transaction it is signed but not stored yet
    write(checkpoint_line(cut.note) + b"\n")
    entries = iter_entries(ctx.session, ctx.principal, filters, below=cut.size)
    count = 0
    for batch in batched(entries, 500):
        proofs = (
            inclusion_proofs(ctx.session, [e.index for e in batch], cut.size) if not whole else None
        )
        for i, entry in enumerate(batch):
            proof = proofs[i] if proofs is not None else None
            write(export_line(entry.leaf, entry.index, proof) + b"\n")
        count += len(batch)
        if progress is not None:
            progress(len(batch))
    header["events"] = count
    return header


def export_csv(ctx: Context, out: BinaryIO, filters: EventFilter) -> int:
    """The caller's view of the log as CSV for a SIEM (no proofs: use JSON Lines to verify)."""
    require_reader(ctx)
    size = head(ctx.session).size
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in iter_entries(ctx.session, ctx.principal, filters, below=size):
        writer.writerow(csv_row(entry))
        count += 1
    text.detach()
    return count


def csv_row(entry: Entry) -> list[Any]:
    e = entry.event
    return [
        entry.index,
        e["at"],
        e["actor"],
        e["role"] or "",
        e["source"] or "",
        e["action"],
        e["outcome"],
        e["client_id"] or "",
        e["subject_kind"] or "",
        e["subject_id"] or "",
        orjson.dumps(e["detail"], option=orjson.OPT_SORT_KEYS).decode("utf-8"),
        merkle.leaf_hash(entry.leaf).hex(),
    ]
