"""Services: the library API that both the HTTP API and the CLI call.

Each function takes a :class:`Context` (a database session, the unsealed key ring when the
operation needs keys, and the :class:`Principal` acting) and does one user-level operation,
recording an audit event in the same transaction. The caller commits.

Authorization lives here, next to the data, so every face gets the same rules: a principal
sees only the clients in its scope (anything else is "not found", so existence does not
leak), and each operation names the roles that may perform it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

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

    def __post_init__(self) -> None:
        if self.principal is None:
            self.principal = Principal.operator(self.actor)

    def keyring(self) -> KeyRing:
        if self.keys is None:
            raise Sealed("the vault is sealed: unseal it to read or write secret values")
        return self.keys

    def require(self, *roles: str) -> None:
        """Refuse unless the principal has one of ``roles`` (the operator always may)."""
        if self.principal.role != OPERATOR and self.principal.role not in roles:
            raise Forbidden(f"a {self.principal.role} may not do this")
