"""Key rotation over HTTP (admin): the same service as `custody key rotate`, and the server
goes on working with the new keys at once."""

from __future__ import annotations

from tests.api.conftest import Cast


def _checkout_value(cast: Cast) -> str:
    headers = cast.headers("cons_a")
    url = f"/clients/{cast.ids['client_a']}/secrets/{cast.ids['secret_a']}"
    out = cast.api.post(url + "/checkout", headers=headers, json={"reason": "after rotation"})
    assert out.status_code == 200, out.text
    lease = out.json()["lease"]["id"]
    assert cast.api.post(f"/leases/{lease}/checkin", headers=headers, json={}).status_code == 200
    value: str = out.json()["value"]
    return value


def test_admin_rotates_every_kind_of_key_and_the_server_keeps_working(cast: Cast) -> None:
    admin = cast.headers("admin")
    before = cast.api.get("/keys", headers=admin).json()
    assert {k["purpose"] for k in before} == {"identity", "log"}
    assert all(k["retired_at"] is None for k in before)
    log_key = cast.api.get("/log/key", headers=admin).json()

    client = cast.api.post(f"/keys/rotate/client/{cast.ids['client_a']}", headers=admin)
    assert client.status_code == 200, client.text
    assert client.json()["what"] == "client-key" and client.json()["resealed"] >= 2
    assert _checkout_value(cast) == "r0uter"

    identity = cast.api.post("/keys/rotate/identity", headers=admin)
    assert identity.status_code == 200, identity.text
    assert identity.json()["public"].startswith("age1")
    assert _checkout_value(cast) == "r0uter"

    log = cast.api.post("/keys/rotate/log", headers=admin)
    assert log.status_code == 200, log.text
    assert cast.api.get("/log/key", headers=admin).json() != log_key
    after = cast.api.get("/keys", headers=admin).json()
    assert len(after) == 4
    assert sorted(k["purpose"] for k in after if k["retired_at"] is not None) == [
        "identity",
        "log",
    ]
    assert "BEGIN" not in str(after) and "AGE-SECRET-KEY" not in str(after)  # public parts only


def test_only_an_admin_rotates(cast: Cast) -> None:
    for actor in ("cons_a", "client_a", "auditor"):
        refused = cast.api.post("/keys/rotate/identity", headers=cast.headers(actor))
        assert refused.status_code == 403, (actor, refused.text)
    assert cast.api.get("/keys", headers=cast.headers("auditor")).status_code == 403
