"""50 concurrent check-outs of one exclusive secret through a real uvicorn server: exactly one
wins, 49 get 409, and the log holds all 50 attempts - on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import select

from tests.conftest import TEST_PASSPHRASE, Vault
from tests.server import uvicorn_server
from vault.db.models import AuditEvent
from vault.services import clients, secrets, users

ATTEMPTS = 50
PW = "a long enough password"


def test_exclusive_race(vault: Vault) -> None:
    tokens = []
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secret_id = secrets.add_secret(
            ctx, "Acme", title="Domain admin", value="d0main!", exclusive=True
        ).id
        client_id = clients.get_client(ctx, "Acme").id
        for i in range(5):
            user = users.create_user(ctx, f"c{i}", role="consultant", password=PW)
            users.grant(ctx, f"c{i}", "Acme")
            tokens += [
                users._new_token(ctx, user, scope="full", ttl=users.SESSION_TTL)
                for _ in range(ATTEMPTS // 5)
            ]
    env = {
        "CUSTODY_DATABASE_URL": vault.settings.database_url,
        "CUSTODY_UNSEAL_PASSPHRASE": TEST_PASSPHRASE,
    }
    with uvicorn_server(env) as url:
        barrier = threading.Barrier(ATTEMPTS)

        def attempt(token: str) -> int:
            with httpx.Client(base_url=url, timeout=60) as http:
                barrier.wait()
                response = http.post(
                    f"/clients/{client_id}/secrets/{secret_id}/checkout",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"reason": "race"},
                )
                return response.status_code

        with ThreadPoolExecutor(ATTEMPTS) as pool:
            statuses = list(pool.map(attempt, tokens))
    assert sorted(statuses) == [200] + [409] * (ATTEMPTS - 1), statuses
    with vault.store.session() as s:
        events = (
            s.scalars(select(AuditEvent).where(AuditEvent.subject_id == secret_id)).all()
            + s.scalars(select(AuditEvent).where(AuditEvent.action == "api.refused")).all()
        )
    won = [e for e in events if e.action == "secret.checkout" and e.outcome == "ok"]
    lost = [e for e in events if e.action == "api.refused" and e.detail.get("error") == "conflict"]
    assert len(won) == 1 and len(lost) == ATTEMPTS - 1
