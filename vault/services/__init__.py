"""Services: the library API that both the HTTP API and the CLI call.

Each function takes a :class:`Context` (a database session, the unsealed key ring when the
operation needs keys, and the :class:`Principal` acting) and does one user-level operation,
recording an audit event in the same transaction. The caller commits.

Authorization lives here, next to the data, so every face gets the same rules: a principal
sees only the clients in its scope (anything else is "not found", so existence does not
leak), and each operation names the roles that may perform it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from vault.crypto.fields import FieldCipher
from vault.db.models import Client
from vault.errors import Forbidden, Sealed
from vault.keys import KeyRing

OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    """Who is acting. ``clients`` is the set of client ids in scope; None means every client.

    The local operator (a person at the vault's host holding the unseal passphrase) is a
    principal too: role "operator", every client."""

    name: str
    role: str
    user_id: str | None = None
    clients: frozenset[str] | None = None

    @classmethod
    def operator(cls, name: str) -> Principal:
        return cls(name=name, role=OPERATOR)

    def sees(self, client_id: str) -> bool:
        return self.clients is None or client_id in self.clients


@dataclass
class Context:
    session: Session
    actor: str
    keys: KeyRing | None = None
    principal: Principal = field(default=None)  # type: ignore[assignment]
    #: where the request came from (an IP address), for the audit log
    source: str | None = None
    #: the API token of this request, if any (so sign-out can revoke exactly it)
    token_id: str | None = None
    #: audit events waiting to be appended to the log when the transaction commits
    #: (``Store.context`` sets it; None appends at once)
    pending_events: list[dict[str, Any]] | None = None
    #: the transaction's Connection, when the caller has one apart from the Session (a unit of
    #: work of ``Store.context``); see :meth:`connection`
    core_connection: Connection | None = field(default=None, repr=False)
    #: small writes a read-only transaction could not make (``Store.read_context`` sets it):
    #: run right after it, in the write transaction that records its events; see
    #: :meth:`write_after`
    deferred_writes: list[Callable[[Context], None]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.principal is None:
            self.principal = Principal.operator(self.actor)

    def connection(self) -> Connection:
        """The transaction's Connection, for Core statements: the unit of work's own when it
        has one, so that a service that needs no ORM never begins the Session (its savepoint
        and bookkeeping cost more than the statements of a check-out); else the Session's."""
        if self.core_connection is not None:
            return self.core_connection
        return self.session.connection()

    def write_after(self, write: Callable[[Context], None]) -> None:
        """Make the small write ``write(ctx)`` part of this operation: at once in a write
        transaction; in a read-only one (``Store.read_context``), right after it - with its
        audit events, before the operation's block returns, so nothing it handed out is
        unrecorded. (A checkpoint an auditor's read signs is stored this way.)"""
        if self.deferred_writes is None:
            write(self)
        else:
            self.deferred_writes.append(write)

    def keyring(self) -> KeyRing:
        if self.keys is None:
            raise Sealed("the vault is sealed: unseal it to read or write secret values")
        return self.keys

    def lock_client_key(self, client: Client, *, exclusive: bool = False) -> None:
        """Hold ``client``'s key row until this transaction ends and make sure ``client``
        carries its latest wrapped key.

        Every write of a value sealed under a client key takes the shared lock (through
        :meth:`sealing_cipher`); re-wrapping or rotating the client key takes the exclusive
        one. So a rotation never interleaves with a write that would seal new data under the
        key it is replacing. (PostgreSQL: ``FOR SHARE`` / ``FOR UPDATE``, and a waiter reads
        the row as the rotation left it. SQLite: one writer at a time already, and a
        transaction whose snapshot a writer overtook fails instead of writing.)"""
        statement = (
            select(Client.wrapped_key, Client.key_mac)
            .where(Client.id == client.id)
            .with_for_update(read=not exclusive)
        )
        row = self.session.execute(statement).one()
        if row.wrapped_key != client.wrapped_key:
            set_committed_value(client, "wrapped_key", row.wrapped_key)
            set_committed_value(client, "key_mac", row.key_mac)

    def sealing_cipher(self, client: Client) -> FieldCipher:
        """The field cipher to seal new values of ``client`` with (see lock_client_key)."""
        self.lock_client_key(client)
        return self.keyring().cipher(client)

    def require(self, *roles: str) -> None:
        """Refuse unless the principal has one of ``roles`` (the operator always may)."""
        if self.principal.role != OPERATOR and self.principal.role not in roles:
            raise Forbidden(f"a {self.principal.role} may not do this")
