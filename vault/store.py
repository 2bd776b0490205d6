"""Opening a store: engine, schema guard, unsealing, and transactions around services."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from vault.config import Settings
from vault.crypto.sealing import KdfParams
from vault.crypto.shares import combine_shares, split_secret
from vault.db import engine as db
from vault.db.models import VaultMeta
from vault.db.writer import GroupWriter
from vault.errors import InvalidInput, StorageError, UnsealError
from vault.keys import KeyRing, UnsealSecret, check_new_passphrase, initialize, load_meta
from vault.services import Context, Principal, auditlog

#: SQLSTATEs of PostgreSQL undoing a transaction because another one got in its way
_COLLISIONS = {"40P01", "40001"}  # deadlock_detected, serialization_failure


@contextmanager
def _storage_errors() -> Iterator[None]:
    """The database could not carry out a statement - PostgreSQL broke a deadlock between two
    processes' transactions, a connection was lost, SQLite's file is locked or full: the
    caller's transaction did not happen, which is a StorageError (HTTP 503, CLI exit 2), not
    a driver's error escaping as an internal one."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) in _COLLISIONS:
            message = (
                "this change ran into another one made at the same moment, and the database "
                "undid it: nothing was changed; try again"
            )
        else:
            message = "the database could not carry this out: nothing was changed; try again"
        raise StorageError(message) from exc


@dataclass
class Store:
    engine: Engine
    settings: Settings
    # SQLite has one writer at a time: the writes of this process share transactions and
    # fsyncs (group commit, vault/db/writer.py), and processes hand the write lock to each
    # other through a lock file instead of SQLite's sleeping busy handler.
    writer: GroupWriter | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Read-only transactions: on SQLite they take no write lock (and refuse writes, PRAGMA
        # query_only); on PostgreSQL they begin READ ONLY.
        read_only: dict[str, Any] = {db.READ_ONLY_OPTION: True}
        if self.engine.dialect.name == "postgresql":
            read_only["postgresql_readonly"] = True
        self._read_engine = self.engine.execution_options(**read_only)
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # A batch appends its units' audit events at once, right before its COMMIT: one move
        # of the log head per batch instead of one per unit.
        dialect = self.engine.dialect.name
        if self.writer is None and dialect in ("sqlite", "postgresql"):
            # SQLite's processes hand its single write lock to each other through a flock
            lock_path = db.sqlite_lock_path(self.engine) if dialect == "sqlite" else None
            # On PostgreSQL the append commits the batch in the round trip of its last writes.
            append = functools.partial(auditlog.append, commit=True)
            self.writer = GroupWriter(self.engine, lock_path, append_events=append)

    @classmethod
    def open(cls, settings: Settings) -> Store:
        engine = db.make_engine(settings.database_url)
        db.check_schema(engine)
        return cls(engine=engine, settings=settings)

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """One write transaction (a savepoint of a group commit on SQLite)."""
        with self._write_unit() as (session, _connection):
            yield session

    @contextmanager
    def _write_unit(self) -> Iterator[tuple[Session, Connection | None]]:
        """One write transaction: its Session, and its Connection for Core statements when
        there is one apart from the Session (a unit of work of the group commit)."""
        with _storage_errors():
            if self.writer is not None:
                with self.writer.unit() as unit:
                    yield unit.session, unit.connection
            else:
                with self.session() as session, session.begin():
                    yield session, None

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def read_session(self) -> Session:
        """A session for reads only: never in the group commit, no write lock on SQLite; its
        transactions refuse writes on both engines."""
        return Session(self._read_engine, expire_on_commit=False)

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A connection for one consistent read: a single statement, which is its own
        snapshot. On PostgreSQL in autocommit (no BEGIN/COMMIT round trips); on SQLite a
        direct statement (vault.db.direct) runs in autocommit too, and one through SQLAlchemy
        in a read transaction that takes no write lock."""
        engine = (
            self._read_engine if self.engine.dialect.name == "sqlite" else self._autocommit_engine
        )
        with _storage_errors(), engine.connect() as conn:
            yield conn

    def meta(self) -> VaultMeta:
        with self.session() as session:
            return load_meta(session)

    def unseal(self, secret: UnsealSecret) -> KeyRing:
        with self.read_session() as session, session.begin():
            keys = KeyRing.unseal(session, secret)
        if keys.log_signer is None:  # a vault from before the transparency log: make its key
            with self.write_session() as session:
                keys = KeyRing.unseal(session, secret, writable=True)
        keys.reload = lambda: self.refresh_keys(keys)
        return keys

    def refresh_keys(self, keys: KeyRing) -> bool:
        """Load a vault identity or log key rotated (by any process) since ``keys`` was
        unsealed. Cheap when nothing changed: one indexed read."""
        with self.read_session() as session, session.begin():
            return keys.refresh(session)

    @contextmanager
    def read_context(
        self,
        actor: str | Principal,
        keys: KeyRing | None = None,
        *,
        source: str | None = None,
        then: Callable[[Context], None] | None = None,
    ) -> Iterator[Context]:
        """An operation that only reads - a listing, a report: one read-only transaction,
        outside the group commit and, on SQLite, without the write lock, so a report that
        takes a while (the readiness report compares every password) holds up no writer. The
        audit events it records - and ``then``, a small write of the caller's (a token's last
        use), and those the operation asked for (``Context.write_after``: a checkpoint it
        signed) - are written afterwards in a short write transaction of their own, before this
        block's exit returns: nothing read is handed out unrecorded. A write inside the block
        fails: the transaction is read-only on both engines."""
        principal = _principal(actor)
        with _storage_errors(), self.read_session() as session, session.begin():
            ctx = _new_context(session, principal, keys, source)
            writes = ctx.deferred_writes = []
            yield ctx
            events = list(ctx.pending_events or ())
        if then is not None:
            writes.insert(0, then)
        if events or writes:
            with self.context(principal, keys, source=source) as after:
                for write in writes:
                    write(after)
                assert after.pending_events is not None
                after.pending_events.extend(events)

    @contextmanager
    def context(
        self,
        actor: str | Principal,
        keys: KeyRing | None = None,
        *,
        source: str | None = None,
    ) -> Iterator[Context]:
        """One transaction: committed when the block ends, rolled back on any exception, so
        a failed operation writes nothing (neither its records nor its audit event).

        ``actor`` is a Principal, or a plain name for the local operator."""
        with self._write_unit() as (session, connection):
            ctx = _new_context(session, _principal(actor), keys, source, connection)
            yield ctx
            # The audit events join the log last, so the log head stays locked only while
            # the transaction commits.
            if ctx.pending_events:
                if self.writer is not None and self.writer.defers_events:
                    self.writer.defer(ctx.pending_events)  # appended at the batch's commit
                else:
                    auditlog.append(ctx.connection(), ctx.pending_events)
                ctx.pending_events.clear()


def _principal(actor: str | Principal) -> Principal:
    """``actor`` as a Principal: a plain name is the local operator."""
    return actor if isinstance(actor, Principal) else Principal.operator(actor)


def _new_context(
    session: Session,
    principal: Principal,
    keys: KeyRing | None,
    source: str | None,
    connection: Connection | None = None,
) -> Context:
    """A Context on ``session`` (and ``connection`` for Core statements, when the unit of work
    has one), collecting its audit events."""
    return Context(
        session=session,
        actor=principal.name,
        keys=keys,
        principal=principal,
        source=source,
        pending_events=[],
        core_connection=connection,
    )


@dataclass(frozen=True)
class InitResult:
    vault_id: str
    recipient: str
    shares: list[str] | None
    admin: str | None = None
    #: the first admin's initial password, shown once (TOTP enrolment follows at sign-in)
    admin_password: str | None = field(default=None, repr=False)


def init_vault(
    settings: Settings,
    *,
    passphrase: str | None = None,
    shares: tuple[int, int] | None = None,
    weak_kdf: bool = False,
    admin: str | None = "admin",
) -> InitResult:
    """Create the database (migrated to head) and a new vault in it.

    With ``shares=(threshold, count)`` the unseal secret is random and returned split into
    SLIP-39 mnemonic shares; otherwise it is ``passphrase``."""
    if admin is not None:
        from vault.services.validation import clean_name

        admin = clean_name(admin, "admin")  # refuse a bad name before anything is created
    if weak_kdf and not settings.allow_weak_kdf:
        raise InvalidInput("weak KDF parameters need CUSTODY_ALLOW_WEAK_KDF=1 (tests only)")
    if shares is None:
        if passphrase is None:
            raise InvalidInput("a passphrase or shares are required", field="passphrase")
        check_new_passphrase(passphrase)
        secret = UnsealSecret.from_passphrase(passphrase)
        mnemonics = None
    else:
        raw, mnemonics = split_secret(*shares)
        secret = UnsealSecret(raw)
    engine = db.make_engine(settings.database_url, create_dirs=True)
    try:
        db.upgrade(engine)
        kdf = KdfParams.weak_for_tests() if weak_kdf else KdfParams.recommended()
        with Session(engine) as session, session.begin():
            meta = initialize(
                session,
                secret,
                kdf=kdf,
                share_threshold=shares[0] if shares else None,
                share_count=shares[1] if shares else None,
            )
            vault_id = meta.vault_id
        store = Store(engine=engine, settings=settings)
        keys = store.unseal(secret)  # proves the sealed vault opens before we report success
        password = None
        if admin:
            from vault.services import users

            password = users.new_bootstrap_password()
            with store.context("operator:init", keys) as ctx:
                users.create_user(ctx, admin, role="admin", password=password)
        return InitResult(
            vault_id=vault_id,
            recipient=str(keys.recipient),
            shares=mnemonics,
            admin=admin,
            admin_password=password,
        )
    finally:
        engine.dispose()


# --- where the unseal secret comes from ------------------------------------------------------


def unseal_secret_from(
    meta: VaultMeta,
    settings: Settings,
    *,
    env: dict[str, str],
    prompt: Callable[[str], str] | None,
) -> UnsealSecret:
    """Read the unseal secret from CUSTODY_UNSEAL_FILE, CUSTODY_UNSEAL_PASSPHRASE or a prompt
    (in that order) - never from a command-line argument."""
    text: str | None = None
    if settings.unseal_file is not None:
        try:
            text = settings.unseal_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UnsealError(f"cannot read CUSTODY_UNSEAL_FILE: {exc.strerror}") from None
        text = text.rstrip("\r\n")
    elif env.get("CUSTODY_UNSEAL_PASSPHRASE"):
        text = env["CUSTODY_UNSEAL_PASSPHRASE"]
    if meta.seal_mode == "shares":
        if text is not None:
            return UnsealSecret(combine_shares(text.splitlines()))
        if prompt is None:
            raise UnsealError("the vault is sealed with shares: set CUSTODY_UNSEAL_FILE")
        threshold = meta.share_threshold or 0
        given = [prompt(f"Share {i + 1} of {threshold}") for i in range(threshold)]
        return UnsealSecret(combine_shares(given))
    if text is None:
        if prompt is None:
            raise UnsealError("no unseal passphrase: set CUSTODY_UNSEAL_FILE or run interactively")
        text = prompt("Unseal passphrase")
    return UnsealSecret.from_passphrase(text)
