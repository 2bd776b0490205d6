"""A seeded vault for the reliability checks: two clients, one person per role, a few secrets
and inventory records - built once, reused by the fuzzers, the abuse tests, the crash and load
scripts (which run it against a real uvicorn server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vault.config import Settings, sqlite_url
from vault.crypto import age
from vault.keys import KeyRing, UnsealSecret
from vault.services import clients, inventory, secrets, users
from vault.store import Store, init_vault

PASSPHRASE = "correct horse battery staple"
PW = "a long enough password"

#: username -> (role, client it belongs to)
PEOPLE: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "cons_a": ("consultant", None),
    "client_a": ("client", "Acme"),
    "auditor": ("auditor", None),
}


@dataclass
class Seeded:
    settings: Settings
    store: Store
    keys: KeyRing
    ids: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        """A fresh full session token for ``username`` (as a sign-in with TOTP would give)."""
        with self.store.context("operator:test", self.keys) as ctx:
            user = users.get_user(ctx, username)
            return users._new_token(ctx, user, scope="full", ttl=users.SESSION_TTL)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a uvicorn server (or the CLI) on this vault."""
        return {
            "CUSTODY_HOME": str(self.settings.home),
            "CUSTODY_DATABASE_URL": self.settings.database_url,
            "CUSTODY_UNSEAL_PASSPHRASE": PASSPHRASE,
            "CUSTODY_ALLOW_WEAK_KDF": "1",
            **extra,
        }


def settings_for(home: Path, database_url: str | None = None) -> Settings:
    return Settings(
        home=home,
        database_url=database_url or sqlite_url(home / "custody.db"),
        unseal_file=None,
        unseal_passphrase_set=False,
        allow_weak_kdf=True,
        # the in-process fuzzer sends everything from one address: no rate limit there
        rate_limit_per_minute=0,
        sign_in_rate_limit_per_minute=0,
    )


def seed(settings: Settings, *, secrets_per_client: int = 3) -> Seeded:
    """Initialise a vault at ``settings`` and fill it with a small cast."""
    init_vault(settings, passphrase=PASSPHRASE, weak_kdf=True, admin=None)
    store = Store.open(settings)
    keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    out = Seeded(settings=settings, store=store, keys=keys)
    escrow = age.X25519Identity.generate()
    with store.context("operator:seed", keys) as ctx:
        a = clients.add_client(ctx, "Acme", recipients=[str(escrow.recipient)])
        b = clients.add_client(ctx, "Globex")
        out.ids.update(client_a=a.id, client_b=b.id, recipient_a=a.recipients[0].id)
        for name, (role, client) in PEOPLE.items():
            users.create_user(ctx, name, role=role, password=PW, client_name=client)
        users.grant(ctx, "cons_a", "Acme")
        for i in range(secrets_per_client):
            s = secrets.add_secret(ctx, "Acme", title=f"Router {i}", value=f"r0uter-{i}")
            out.ids[f"secret_a{i}"] = s.id
        out.ids["totp_a"] = secrets.add_secret(
            ctx, "Acme", title="M365 2FA", kind="totp", value="JBSWY3DPEHPK3PXP"
        ).id
        out.ids["secret_b"] = secrets.add_secret(ctx, "Globex", title="Firewall", value="fw").id
        inventory.add_record(ctx, "vendor", "Acme", name="Gandi", account_number="ACC-1")
        inventory.add_record(ctx, "domain", "Acme", name="acme.example")
        inventory.add_record(ctx, "vendor", "Globex", name="OVH")
    return out
