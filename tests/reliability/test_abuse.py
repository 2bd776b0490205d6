"""Abuse, against a real uvicorn server over a real SQLite vault: password guessing is
throttled, a token is dead after logout, a removed grant bites on the very next request, the
security headers are there, and the size and rate limits hold.

Each check talks from its own loopback address (127.0.0.N) so the per-address rate limits of
one check do not spill into another. CUSTODY_FULL_RELIABILITY=1 makes the guessing run longer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import MAX_BODY_BYTES, create_app
from api.state import ServerState
from tests.reliability.seed import PW, Seeded, seed, settings_for
from tests.server import uvicorn_server
from vault.db.models import AuditEvent
from vault.services import users

FULL = os.environ.get("CUSTODY_FULL_RELIABILITY") == "1"
#: how long the guessing runs; long enough in CI to see the first lock lapse (30 s)
GUESS_SECONDS = 300.0 if FULL else 34.0
RATE_LIMIT = 120  # requests a minute per address, for this server
LOGIN_RATE_LIMIT = 10


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    vault = seed(settings_for(tmp_path_factory.mktemp("abuse") / "custody-data"))
    try:
        yield vault
    finally:
        vault.store.engine.dispose()


@pytest.fixture(scope="module")
def server(seeded: Seeded) -> Iterator[str]:
    env = seeded.env(
        CUSTODY_RATE_LIMIT=str(RATE_LIMIT), CUSTODY_LOGIN_RATE_LIMIT=str(LOGIN_RATE_LIMIT)
    )
    with uvicorn_server(env) as url:
        yield url


def http_from(url: str, address: str) -> httpx.Client:
    """A client whose requests come from ``address`` (any 127.0.0.N reaches the server)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def guess_ceiling(seconds: float) -> int:
    """The most password checks one account allows in ``seconds``, by the documented backoff
    (vault/services/users.py): LOCK_AFTER free failures, then a lock of FIRST_LOCK doubling per
    failure up to MAX_LOCK - for an attacker who waits out every lock exactly."""
    checks, t = users.LOCK_AFTER, 0.0
    lock = users.FIRST_LOCK
    while True:
        t += lock.total_seconds()
        if t > seconds:
            return checks
        checks += 1
        lock = min(lock * 2, users.MAX_LOCK)


def test_guess_ceiling_follows_the_backoff() -> None:
    assert guess_ceiling(10) == users.LOCK_AFTER
    assert guess_ceiling(31) == users.LOCK_AFTER + 1
    assert guess_ceiling(3600) <= users.LOCK_AFTER + 8
    assert timedelta(minutes=15) <= users.MAX_LOCK


def _password_checks(seeded: Seeded, username: str) -> tuple[int, int]:
    """(failed sign-ins whose password was checked, all failed sign-ins) for ``username``."""
    with seeded.store.session() as s:
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.login", AuditEvent.outcome == "denied"
            )
        ).all()
    mine = [e for e in events if e.detail.get("username") == username]
    return sum(1 for e in mine if e.detail.get("why") == "password"), len(mine)


def test_password_guessing_is_throttled(seeded: Seeded, server: str) -> None:
    sent = limited = 0
    started = time.monotonic()
    with http_from(server, "127.0.0.2") as http:
        while time.monotonic() - started < GUESS_SECONDS:
            r = http.post(
                "/auth/login", json={"username": "auditor", "password": f"guess number {sent}"}
            )
            sent += 1
            assert r.status_code in (401, 429), r.text
            if r.status_code == 429:
                limited += 1
                assert int(r.headers["retry-after"]) >= 1
                time.sleep(min(float(r.headers["retry-after"]), 1.0))
        elapsed = time.monotonic() - started
        checked, failed = _password_checks(seeded, "auditor")
        per_minute = checked * 60 / elapsed
        print(
            f"\nbrute force: {sent} guesses sent in {elapsed:.0f} s, {limited} refused by the "
            f"rate limit, {failed} refused by sign-in, {checked} password checks "
            f"({per_minute:.1f} a minute; ceiling {guess_ceiling(elapsed)} in {elapsed:.0f} s)"
        )
        assert checked <= guess_ceiling(elapsed)
        assert limited > 0
        # and the right password is refused too while the account is locked
        time.sleep(7)  # one sign-in token back in the bucket
        r = http.post("/auth/login", json={"username": "auditor", "password": PW})
        assert r.status_code == 401, r.text


def test_spraying_many_accounts_is_rate_limited(server: str) -> None:
    """The account lock does not stop one guess each at many accounts: the per-address sign-in
    limit does."""
    seconds, passed = 6.0, 0
    started = time.monotonic()
    with http_from(server, "127.0.0.3") as http:
        i = 0
        while time.monotonic() - started < seconds:
            r = http.post("/auth/login", json={"username": f"user{i}", "password": "x" * 12})
            i += 1
            passed += r.status_code != 429
    elapsed = time.monotonic() - started
    ceiling = LOGIN_RATE_LIMIT + elapsed * LOGIN_RATE_LIMIT / 60 + 1
    print(f"\nspraying: {passed} of {i} sign-in attempts got through in {elapsed:.1f} s")
    assert passed <= ceiling


def test_token_refused_after_logout(seeded: Seeded, server: str) -> None:
    token = seeded.token("cons_a")
    auth = {"Authorization": f"Bearer {token}"}
    with http_from(server, "127.0.0.1") as http:
        assert http.get("/auth/me", headers=auth).status_code == 200
        assert http.post("/auth/logout", headers=auth).status_code == 204
        for _ in range(3):  # replayed, again and again
            assert http.get("/auth/me", headers=auth).status_code == 401
            assert http.get("/clients", headers=auth).status_code == 401


def test_removed_grant_bites_on_the_next_request(seeded: Seeded, server: str) -> None:
    client = seeded.ids["client_a"]
    secret = seeded.ids["secret_a1"]
    consultant = {"Authorization": f"Bearer {seeded.token('cons_a')}"}
    admin = {"Authorization": f"Bearer {seeded.token('admin')}"}
    with http_from(server, "127.0.0.1") as http:
        assert http.get(f"/clients/{client}/secrets", headers=consultant).status_code == 200
        assert http.delete(f"/grants/cons_a/{client}", headers=admin).status_code == 204
        try:
            listed = http.get(f"/clients/{client}/secrets", headers=consultant)
            assert listed.status_code in (403, 404), listed.text
            out = http.post(
                f"/clients/{client}/secrets/{secret}/checkout",
                headers=consultant,
                json={"reason": "after removal"},
            )
            assert out.status_code in (403, 404), out.text
            assert "r0uter" not in out.text
        finally:
            restored = http.put(f"/grants/cons_a/{client}", headers=admin, json={})
            assert restored.status_code == 200, restored.text


EXPECTED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def test_security_headers(seeded: Seeded, server: str) -> None:
    admin = {"Authorization": f"Bearer {seeded.token('admin')}"}
    with http_from(server, "127.0.0.1") as http:
        answers = [
            http.get("/clients", headers=admin),
            http.get("/clients"),  # 401
            http.get("/nowhere"),  # 404
            http.get("/health"),
        ]
    for r in answers:
        for name, value in EXPECTED_HEADERS.items():
            assert r.headers.get(name) == value, (r.request.url.path, name)
        assert "strict-transport-security" not in r.headers  # plain HTTP: no HSTS
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_hsts_over_tls(seeded: Seeded) -> None:
    app = create_app(
        ServerState(store=seeded.store, keys=seeded.keys), sweep_leases=False, checkpoints=False
    )
    with TestClient(app, base_url="https://custody.example") as tls:
        r = tls.get("/health")
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_body_limit_declared_and_chunked(seeded: Seeded, server: str) -> None:
    admin = {"Authorization": f"Bearer {seeded.token('admin')}"}
    big = b'{"title": "x", "value": "' + b"v" * (MAX_BODY_BYTES + 10) + b'"}'
    client = seeded.ids["client_a"]

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    with http_from(server, "127.0.0.1") as http:
        headers = {**admin, "content-type": "application/json"}
        declared = http.post(f"/clients/{client}/secrets", headers=headers, content=big)
        assert declared.status_code == 413, declared.text
        chunked = http.post(f"/clients/{client}/secrets", headers=headers, content=chunks())
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert chunked.status_code == 413, chunked.text
        assert chunked.json()["error"]["code"] == "too_large"
        # the server is still fine afterwards
        assert http.get("/clients", headers=admin).status_code == 200


def test_rate_limit_per_address(server: str) -> None:
    statuses: list[int] = []
    retry_after = None
    started = time.monotonic()
    with http_from(server, "127.0.0.4") as http:
        for _ in range(RATE_LIMIT * 3):
            r = http.get("/sys/seal-status")
            statuses.append(r.status_code)
            if r.status_code == 429:
                retry_after = r.headers.get("retry-after")
                assert r.json()["error"]["code"] == "rate_limited"
                if statuses.count(429) >= 10:
                    break
    elapsed = time.monotonic() - started
    with http_from(server, "127.0.0.5") as other:  # another address has its own allowance
        assert other.get("/sys/seal-status").status_code == 200
    passed = statuses.count(200)
    print(f"\nrate limit: {passed} of {len(statuses)} passed in {elapsed:.1f} s")
    assert set(statuses) == {200, 429}
    assert statuses[:RATE_LIMIT] == [200] * RATE_LIMIT  # the burst allowance
    assert passed <= RATE_LIMIT + elapsed * RATE_LIMIT / 60 + 1  # then the steady rate
    assert retry_after is not None and int(retry_after) >= 1
