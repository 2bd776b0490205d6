"""What the running server holds: the store, and the keys once unsealed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from vault.keys import KeyRing
from vault.store import Store


@dataclass
class ServerState:
    store: Store
    keys: KeyRing | None = None
    #: shares given one by one to the unseal endpoint, until there are enough
    pending_shares: list[str] = field(default_factory=list, repr=False)
    require_totp: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: failed unseal attempts in a row, and until when the next one is refused (monotonic)
    unseal_failures: int = 0
    unseal_blocked_until: float = 0.0

    @property
    def sealed(self) -> bool:
        return self.keys is None
