"""API fixtures: the app in-process (httpx TestClient) over a real store on each engine, and a
cast of signed-in people."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.state import ServerState
from tests.conftest import Vault
from vault.crypto import age
from vault.db.models import User, utcnow
from vault.services import clients, inventory, secrets, users
from vault.services.users import _totp_location

PW = "a long enough password"


@pytest.fixture
def state(vault: Vault) -> ServerState:
    return ServerState(store=vault.store, keys=vault.keys)


@pytest.fixture
def api(state: ServerState) -> Iterator[TestClient]:
    """The app in-process. Any 5xx answer anywhere in the API suite fails the test."""
    server_errors: list[str] = []

    def no_server_errors(response: httpx.Response) -> None:
        if response.status_code >= 500:
            response.read()
            server_errors.append(
                f"{response.request.method} {response.request.url.path}: "
                f"{response.status_code} {response.text[:200]}"
            )

    app = create_app(state, sweep_leases=False, checkpoints=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.event_hooks["response"].append(no_server_errors)
        yield client
    assert not server_errors, server_errors


@dataclass
class Cast:
    """Signed-in people, and the objects of clients A and B."""

    vault: Vault
    api: TestClient
    ids: dict[str, str]

    def seed(self, username: str) -> str:
        with self.vault.store.session() as s:
            user = s.scalars(select(User).where(User.username == username)).one()
            return self.vault.keys.vault_cipher.open_text(user.totp_ct, _totp_location(user))

    def code(self, username: str, steps: int = 0) -> str:
        return pyotp.TOTP(self.seed(username)).at(utcnow().timestamp() + 30 * steps)

    def token(self, username: str) -> str:
        """A fresh full session token (as a sign-in would give), without a TOTP round trip."""
        with self.vault.ctx(actor="test") as ctx:
            user = users.get_user(ctx, username)
            return users._new_token(ctx, user, scope="full", ttl=users.SESSION_TTL)

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}


PEOPLE = {
    "admin": ("admin", None),
    "cons_a": ("consultant", None),
    "cons_none": ("consultant", None),
    "client_a": ("client", "Acme"),
    "client_b": ("client", "Globex"),
    "auditor": ("auditor", None),
}


@pytest.fixture
def cast(vault: Vault, api: TestClient) -> Cast:
    ids: dict[str, str] = {}
    escrow = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        a = clients.add_client(ctx, "Acme", recipients=[str(escrow.recipient)])
        b = clients.add_client(ctx, "Globex")
        ids.update(client_a=a.id, client_b=b.id, recipient_a=a.recipients[0].id)
        for name, (role, client) in PEOPLE.items():
            user = users.create_user(ctx, name, role=role, password=PW, client_name=client)
            users.begin_totp_enrollment(ctx, user)
        users.grant(ctx, "cons_a", "Acme")
        ids["secret_a"] = secrets.add_secret(
            ctx, "Acme", title="Router", value="r0uter", username="admin"
        ).id
        ids["totp_a"] = secrets.add_secret(
            ctx, "Acme", title="M365 2FA", kind="totp", value="JBSWY3DPEHPK3PXP"
        ).id
        ids["secret_b"] = secrets.add_secret(ctx, "Globex", title="Firewall", value="fw").id
        inventory.add_record(ctx, "vendor", "Acme", name="Gandi", account_number="ACC-1")
        inventory.add_record(ctx, "vendor", "Globex", name="OVH")
    c = Cast(vault=vault, api=api, ids=ids)
    seeds = {name: c.seed(name) for name in PEOPLE}
    with vault.ctx() as ctx:
        for name, seed in seeds.items():
            # The code is made just before it is checked: on a loaded machine, codes made
            # for everyone up front could fall out of the accepted window before the last.
            code = pyotp.TOTP(seed).at(utcnow().timestamp() - 30)
            users.confirm_totp(ctx, users.get_user(ctx, name), code)
    return c
