"""Sign-in with TOTP, enrolment, lockout, tokens, sign-out, and the sealed server."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.state import ServerState
from tests.api.conftest import PW, Cast
from tests.conftest import TEST_PASSPHRASE, Vault
from vault.db.models import AuditEvent
from vault.services import users


def _login(api: TestClient, username: str, password: str = PW, totp: str | None = None):
    return api.post("/auth/login", json={"username": username, "password": password, "totp": totp})


def test_health_and_docs(api: TestClient) -> None:
    assert api.get("/health").json() == {
        "status": "ok",
        "sealed": False,
        "version": api.get("/health").json()["version"],
    }
    schema = api.get("/openapi.json").json()
    assert "/clients/{client}/secrets/{secret}/checkout" in schema["paths"]


def test_first_sign_in_enrols_totp(vault: Vault, api: TestClient) -> None:
    with vault.ctx() as ctx:
        users.create_user(ctx, "newbie", role="consultant", password=PW)
    first = _login(api, "newbie")
    assert first.status_code == 200 and first.json()["scope"] == "enroll"
    enroll_headers = {"Authorization": f"Bearer {first.json()['token']}"}
    assert api.get("/clients", headers=enroll_headers).status_code == 403  # enrol first
    uri = api.post("/auth/totp/enroll", headers=enroll_headers).json()["otpauth_uri"]
    import pyotp

    totp = pyotp.parse_uri(uri)
    assert (
        api.post(
            "/auth/totp/confirm", headers=enroll_headers, json={"code": totp.now()}
        ).status_code
        == 204
    )
    assert api.get("/auth/me", headers=enroll_headers).status_code == 401  # enrolment token ended
    assert _login(api, "newbie").status_code == 401  # now the code is required
    import time

    time.sleep(0)  # the confirm code was step N; the next sign-in needs a newer code
    code = totp.at(int(time.time()) + 30)
    full = _login(api, "newbie", totp=code)
    assert full.status_code == 200 and full.json()["scope"] == "full"


def test_replayed_code_refused(cast: Cast) -> None:
    code = cast.code("cons_a", 1)
    assert _login(cast.api, "cons_a", totp=code).status_code == 200
    again = _login(cast.api, "cons_a", totp=code)
    assert again.status_code == 401


def test_one_answer_for_every_failure(cast: Cast) -> None:
    answers = {
        _login(cast.api, "nobody", totp="123456").json()["error"]["message"],
        _login(cast.api, "cons_a", password="wrong password!", totp=cast.code("cons_a")).json()[
            "error"
        ]["message"],
        _login(cast.api, "cons_a", totp="000000").json()["error"]["message"],
    }
    assert answers == {users.LOGIN_FAILED}


def test_lockout_engages_and_failures_are_logged(cast: Cast) -> None:
    for _ in range(users.LOCK_AFTER):
        assert _login(cast.api, "cons_a", password="guess guess guess").status_code == 401
    assert _login(cast.api, "cons_a", totp=cast.code("cons_a", 1)).status_code == 401
    with cast.vault.store.session() as s:
        denied = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.login", AuditEvent.outcome == "denied"
            )
        ).all()
    assert len(denied) == users.LOCK_AFTER + 1
    assert all(e.source for e in denied)  # the source address is recorded


def test_logout_and_revoked_tokens(cast: Cast) -> None:
    token = _login(cast.api, "cons_a", totp=cast.code("cons_a", 1)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert cast.api.get("/auth/me", headers=headers).json()["username"] == "cons_a"
    assert cast.api.post("/auth/logout", headers=headers).status_code == 204
    assert cast.api.get("/auth/me", headers=headers).status_code == 401


def test_api_tokens_listed_and_revoked(cast: Cast) -> None:
    headers = cast.headers("cons_a")
    created = cast.api.post("/auth/tokens", headers=headers, json={"label": "backup script"})
    assert created.status_code == 201
    script = {"Authorization": f"Bearer {created.json()['token']}"}
    assert cast.api.get("/auth/me", headers=script).status_code == 200
    listed = cast.api.get("/auth/tokens", headers=headers).json()
    assert "token" not in listed[0] and any(t["label"] == "backup script" for t in listed)
    cast.api.delete(f"/auth/tokens/{created.json()['id']}", headers=headers)
    assert cast.api.get("/auth/me", headers=script).status_code == 401


def test_disabled_user_and_removed_grant_take_effect_next_request(cast: Cast) -> None:
    consultant = cast.headers("cons_a")
    admin = cast.headers("admin")
    url = f"/clients/{cast.ids['client_a']}/secrets"
    assert cast.api.get(url, headers=consultant).status_code == 200
    assert cast.api.delete("/grants/cons_a/Acme", headers=admin).status_code == 204
    assert cast.api.get(url, headers=consultant).status_code == 404
    assert (
        cast.api.patch("/users/cons_a", headers=admin, json={"disabled": True}).status_code == 200
    )
    assert cast.api.get("/auth/me", headers=consultant).status_code == 401


def test_sealed_server_refuses_then_unseals(vault: Vault) -> None:
    state = ServerState(store=vault.store)  # no keys: sealed
    with TestClient(create_app(state)) as api:
        assert api.get("/health").json()["sealed"] is True
        refused = api.get("/clients")
        assert refused.status_code == 503 and "sealed" in refused.json()["error"]["message"]
        wrong = api.post("/sys/unseal", json={"passphrase": "not it at all"})
        assert wrong.status_code == 401
        assert (
            api.post("/sys/unseal", json={"passphrase": TEST_PASSPHRASE}).json()["sealed"] is False
        )
        assert api.get("/clients").status_code == 401  # now just unauthenticated


@pytest.mark.parametrize(
    "body",
    [
        {"username": "x"},
        {"username": "x", "password": "y", "extra": 1},
        [],
    ],
)
def test_bad_login_bodies_are_422_with_field(api: TestClient, body: object) -> None:
    response = api.post("/auth/login", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_unseal_failures_are_throttled(vault: Vault) -> None:
    state = ServerState(store=vault.store)
    with TestClient(create_app(state, sweep_leases=False)) as api:
        statuses = [
            api.post("/sys/unseal", json={"passphrase": f"guess {i}"}).status_code for i in range(5)
        ]
        assert statuses[:3] == [401, 401, 401] and 429 in statuses[3:]
        # even the right passphrase waits out the pause
        blocked = api.post("/sys/unseal", json={"passphrase": TEST_PASSPHRASE})
        assert blocked.status_code == 429 and "retry in" in blocked.json()["error"]["message"]


def test_unseal_with_shares_one_by_one(settings: object, tmp_path: object) -> None:
    from vault.config import Settings
    from vault.store import Store, init_vault

    assert isinstance(settings, Settings)
    result = init_vault(settings, shares=(2, 3), weak_kdf=True, admin=None)
    assert result.shares is not None
    store = Store.open(settings)
    with TestClient(create_app(ServerState(store=store), sweep_leases=False)) as api:
        bogus = api.post("/sys/unseal", json={"share": "not a share at all"})
        assert bogus.status_code == 401
        first = api.post("/sys/unseal", json={"share": result.shares[2]}).json()
        assert first == {"sealed": True, "shares_given": 1, "shares_needed": 2}
        assert api.post("/sys/unseal", json={"reset": True}).json()["shares_given"] == 0
        api.post("/sys/unseal", json={"share": result.shares[0]})
        done = api.post("/sys/unseal", json={"share": result.shares[1]}).json()
        assert done["sealed"] is False
        assert api.get("/health").json()["sealed"] is False
    store.engine.dispose()
