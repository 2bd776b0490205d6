"""Settings from the environment, read in one place.

``CUSTODY_HOME``          data directory (default ``./custody-data``)
``CUSTODY_DATABASE_URL``  SQLAlchemy URL (default: SQLite file ``$CUSTODY_HOME/custody.db``);
                          PostgreSQL: ``postgresql+psycopg://user@host/db``
``CUSTODY_UNSEAL_FILE``   file holding the unseal passphrase, or shares one per line
``CUSTODY_UNSEAL_PASSPHRASE``  the unseal passphrase itself (for services; prefer the file)
``CUSTODY_ALLOW_WEAK_KDF``     "1" lets ``init`` use cheap Argon2id parameters (tests only)
``CUSTODY_CHECKPOINT_EVENTS``  the server signs a log checkpoint once this many events arrived
                               since the latest one (default 1000) ...
``CUSTODY_CHECKPOINT_SECONDS`` ... or once the latest one is this old and the log has grown at
                               all (default 60); docs/audit-log.md, "Checkpoints"
``CUSTODY_RATE_LIMIT``         requests a minute one client address may make (token bucket,
                               bursts up to a minute's worth; default 600; 0 = no limit)
``CUSTODY_LOGIN_RATE_LIMIT``   the same for sign-in and unseal attempts (default 10; 0 = none).
                               Each server process keeps its own buckets: api/ratelimit.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "custody-data"
DATABASE_FILE = "custody.db"
DEFAULT_CHECKPOINT_EVENTS = 1000
DEFAULT_CHECKPOINT_SECONDS = 60.0
DEFAULT_RATE_LIMIT = 600.0
DEFAULT_LOGIN_RATE_LIMIT = 10.0


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    unseal_file: Path | None
    unseal_passphrase_set: bool
    allow_weak_kdf: bool
    checkpoint_events: int = DEFAULT_CHECKPOINT_EVENTS
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    rate_limit_per_minute: float = DEFAULT_RATE_LIMIT
    sign_in_rate_limit_per_minute: float = DEFAULT_LOGIN_RATE_LIMIT

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
            checkpoint_events=int(
                _positive(env, "CUSTODY_CHECKPOINT_EVENTS", DEFAULT_CHECKPOINT_EVENTS, whole=True)
            ),
            checkpoint_seconds=_positive(
                env, "CUSTODY_CHECKPOINT_SECONDS", DEFAULT_CHECKPOINT_SECONDS, whole=False
            ),
            rate_limit_per_minute=_rate(env, "CUSTODY_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            sign_in_rate_limit_per_minute=_rate(
                env, "CUSTODY_LOGIN_RATE_LIMIT", DEFAULT_LOGIN_RATE_LIMIT
            ),
        )


def _positive(env: dict[str, str], name: str, default: float, *, whole: bool) -> float:
    """A positive number from ``env[name]`` (a whole number if ``whole``), else ``default``."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        from vault.errors import InvalidInput

        kind = "a whole number" if whole else "a number"
        raise InvalidInput(f"{name} must be {kind} above zero", field=name)
    return value


def _rate(env: dict[str, str], name: str, default: float) -> float:
    """Requests a minute from ``env[name]``: a number from 0 (no limit) up, else ``default``."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        from vault.errors import InvalidInput

        raise InvalidInput(f"{name} must be requests a minute (0: no limit)", field=name)
    return value


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def database_url_for(target: str) -> str:
    """Accept either a URL or a path to a SQLite file (``recover --db FILE``)."""
    return target if "://" in target else sqlite_url(Path(target))
