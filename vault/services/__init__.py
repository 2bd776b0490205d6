"""Services: the library API that both the HTTP API and the CLI call.

Each function takes a :class:`Context` (a database session, the unsealed key ring when the
operation needs keys, and who is acting) and does one user-level operation, recording an
audit event in the same transaction. The caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from vault.errors import Sealed
from vault.keys import KeyRing


@dataclass
class Context:
    session: Session
    actor: str
    keys: KeyRing | None = None

    def keyring(self) -> KeyRing:
        if self.keys is None:
            raise Sealed("the vault is sealed: unseal it to read or write secret values")
        return self.keys
