"""Credential requests over the JSON API, and their audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.api.conftest import Cast
from vault.db.models import AuditEvent, CredentialRequest
from vault.services import requests, users

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def test_create_list_fulfil_and_revoke(cast: Cast) -> None:
    a = cast.ids["client_a"]
    made = cast.api.post(
        f"/clients/{a}/requests",
        headers=cast.headers("cons_a"),
        json={"title": "Registrar login", "vendor": "Gandi", "ttl_hours": 24},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["state"] == "pending" and body["vendor"] == "Gandi"
    assert body["path"] == f"/ui/r/{body['token']}"
    with cast.vault.store.session() as s:
        row = s.get(CredentialRequest, body["id"])
        assert row is not None and row.token_hash == requests.hash_token(body["token"])
        assert body["token"] not in row.token_hash
    listed = cast.api.get(f"/clients/{a}/requests", headers=cast.headers("client_a"))
    assert [r["id"] for r in listed.json()] == [body["id"]] and "token" not in listed.json()[0]
    assert (
        cast.api.get(f"/clients/{a}/requests", headers=cast.headers("client_b")).status_code == 404
    )

    with cast.vault.store.context(_client_a(cast), cast.vault.keys) as ctx:
        requests.fulfil(ctx, body["token"], value="the-Registrar-pw-1")
    with cast.vault.store.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action.like("request.%"))).all()
        assert [e.action for e in events] == ["request.create", "request.fulfil"]
        assert all("the-Registrar-pw-1" not in str(e.detail) for e in events)
        assert all(body["token"] not in str(e.detail) for e in events)
    listed = cast.api.get(f"/clients/{a}/requests", headers=cast.headers("cons_a")).json()
    assert listed[0]["state"] == "used" and listed[0]["secret_id"]

    second = cast.api.post(
        f"/clients/{a}/requests", headers=cast.headers("cons_a"), json={"title": "DNS"}
    ).json()
    gone = cast.api.delete(f"/clients/{a}/requests/{second['id']}", headers=cast.headers("cons_a"))
    assert gone.status_code == 204
    with cast.vault.store.context(_client_a(cast), cast.vault.keys) as ctx:
        from vault.errors import Gone

        with pytest.raises(Gone):
            requests.open_request(ctx, second["token"])


def test_title_taken_and_bad_expiry_are_refused(cast: Cast) -> None:
    a = cast.ids["client_a"]
    taken = cast.api.post(
        f"/clients/{a}/requests", headers=cast.headers("cons_a"), json={"title": "Router"}
    )
    assert taken.status_code == 409
    too_long = cast.api.post(
        f"/clients/{a}/requests",
        headers=cast.headers("cons_a"),
        json={"title": "X", "ttl_hours": 24 * 15},
    )
    assert too_long.status_code == 422


def _client_a(cast: Cast) -> object:
    with cast.vault.store.session() as s, s.begin():
        return users.principal_for(s, _user(s, "client_a"))


def _user(session: object, name: str) -> object:
    from vault.db.models import User

    return session.scalars(select(User).where(User.username == name)).one()  # type: ignore[attr-defined]
