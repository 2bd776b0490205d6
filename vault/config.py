"""Settings from the environment, read in one place.

``CUSTODY_HOME``          data directory (default ``./custody-data``)
``CUSTODY_DATABASE_URL``  SQLAlchemy URL (default: SQLite file ``$CUSTODY_HOME/custody.db``);
                          PostgreSQL: ``postgresql+psycopg://user@host/db``
``CUSTODY_UNSEAL_FILE``   file holding the unseal passphrase, or shares one per line
``CUSTODY_UNSEAL_PASSPHRASE``  the unseal passphrase itself (for services; prefer the file)
``CUSTODY_ALLOW_WEAK_KDF``     "1" lets ``init`` use cheap Argon2id parameters (tests only)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "custody-data"
DATABASE_FILE = "custody.db"


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    unseal_file: Path | None
    unseal_passphrase_set: bool
    allow_weak_kdf: bool

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        home = Path(env.get("CUSTODY_HOME") or DEFAULT_HOME)
        url = env.get("CUSTODY_DATABASE_URL") or sqlite_url(home / DATABASE_FILE)
        unseal_file = env.get("CUSTODY_UNSEAL_FILE")
        return cls(
            home=home,
            database_url=url,
            unseal_file=Path(unseal_file) if unseal_file else None,
            unseal_passphrase_set=bool(env.get("CUSTODY_UNSEAL_PASSPHRASE")),
            allow_weak_kdf=env.get("CUSTODY_ALLOW_WEAK_KDF") == "1",
        )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def database_url_for(target: str) -> str:
    """Accept either a URL or a path to a SQLite file (``recover --db FILE``)."""
    return target if "://" in target else sqlite_url(Path(target))
