"""Secrets over HTTP: metadata lists, check-out (the only plaintext), check-in, errors."""

from __future__ import annotations

from sqlalchemy import select

from tests.api.conftest import Cast
from vault.db.models import AuditEvent


def _url(cast: Cast, *rest: str) -> str:
    return "/".join([f"/clients/{cast.ids['client_a']}/secrets", *rest])


def test_list_is_metadata_only(cast: Cast) -> None:
    listed = cast.api.get(_url(cast), headers=cast.headers("cons_a"))
    assert listed.status_code == 200
    assert {s["title"] for s in listed.json()} == {"Router", "M365 2FA"}
    assert "r0uter" not in listed.text and "value" not in listed.json()[0]
    found = cast.api.get(_url(cast), params={"title": "router"}, headers=cast.headers("cons_a"))
    assert found.json()[0]["id"] == cast.ids["secret_a"]


def test_checkout_checkin_round_trip(cast: Cast) -> None:
    headers = cast.headers("cons_a")
    out = cast.api.post(
        _url(cast, cast.ids["secret_a"], "checkout"),
        headers=headers,
        json={"reason": "VPN down", "ticket": "T-42", "ttl_seconds": 600},
    )
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["value"] == "r0uter" and body["username"] == "admin"
    lease = body["lease"]
    mine = cast.api.get("/leases", params={"mine": True}, headers=headers).json()
    assert [x["id"] for x in mine] == [lease["id"]]
    back = cast.api.post(f"/leases/{lease['id']}/checkin", headers=headers, json={})
    assert back.status_code == 200 and back.json()["lease"]["release_kind"] == "checkin"
    again = cast.api.post(f"/leases/{lease['id']}/checkin", headers=headers, json={})
    assert again.status_code == 409


def test_checkout_and_checkin_answer_their_response_models_rendered_by_pydantic(
    cast: Cast,
) -> None:
    """The two routes render their answers themselves (api.views.model_answer): exactly the
    bytes FastAPI would render through the declared response model."""
    from pydantic import TypeAdapter

    from api.schemas import CheckinResponse, CheckoutResponse

    def rendered(model: type, body: bytes) -> bytes:
        adapter: TypeAdapter[object] = TypeAdapter(model)
        return adapter.dump_json(adapter.validate_json(body))

    headers = cast.headers("cons_a")
    out = cast.api.post(
        _url(cast, "Router", "checkout"),
        headers=headers,
        json={"reason": 'Zürich \u2028 "quoted"\n\t </script> \U0001f511', "ttl_seconds": 61},
    )
    assert out.status_code == 200 and out.headers["content-type"] == "application/json"
    assert out.content == rendered(CheckoutResponse, out.content)
    lease = out.json()["lease"]
    back = cast.api.post(f"/leases/{lease['id']}/checkin", headers=headers, json={})
    assert back.status_code == 200 and back.headers["content-type"] == "application/json"
    assert back.content == rendered(CheckinResponse, back.content)
    assert back.json()["lease"]["created_at"] == lease["created_at"]


def test_exclusive_conflict_names_holder(cast: Cast) -> None:
    admin = cast.headers("admin")
    cast.api.patch(_url(cast, "Router"), headers=admin, json={"exclusive": True})
    first = cast.api.post(
        _url(cast, "Router", "checkout"), headers=cast.headers("cons_a"), json={"reason": "one"}
    )
    assert first.status_code == 200
    second = cast.api.post(_url(cast, "Router", "checkout"), headers=admin, json={"reason": "two"})
    assert second.status_code == 409
    assert "user:cons_a" in second.json()["error"]["message"]
    assert "r0uter" not in second.text
    released = cast.api.post(f"/leases/{first.json()['lease']['id']}/release", headers=admin)
    assert released.json()["release_kind"] == "forced"


def test_rotate_after_use_and_generated_value(cast: Cast) -> None:
    headers = cast.headers("cons_a")
    cast.api.patch(
        _url(cast, "Router"), headers=cast.headers("admin"), json={"rotate_after_use": True}
    )
    lease = cast.api.post(
        _url(cast, "Router", "checkout"), headers=headers, json={"reason": "x"}
    ).json()["lease"]
    due = cast.api.get("/leases/rotation-due", headers=headers).json()
    assert [s["title"] for s in due] == ["Router"]
    refused = cast.api.post(f"/leases/{lease['id']}/checkin", headers=headers, json={})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "value"
    weak = cast.api.post(
        f"/leases/{lease['id']}/checkin", headers=headers, json={"new_value": "password123"}
    )
    assert weak.status_code == 422 and "password123" not in weak.text
    assert weak.json()["error"]["field"] == "value"
    # refused before the write transaction (the strength check runs outside it), and recorded
    with cast.vault.store.read_session() as s, s.begin():
        refusals = s.scalars(select(AuditEvent).where(AuditEvent.action == "api.refused")).all()
    checkins = [e for e in refusals if e.detail.get("route") == "POST /leases/{lease_id}/checkin"]
    assert [e.detail.get("error") for e in checkins] == ["invalid_input", "invalid_input"]
    done = cast.api.post(f"/leases/{lease['id']}/checkin", headers=headers, json={"generate": True})
    assert done.status_code == 200 and done.json()["new_version"] == 2
    generated = done.json()["generated_value"]
    out = cast.api.post(_url(cast, "Router", "checkout"), headers=headers, json={"reason": "y"})
    assert out.json()["value"] == generated


def test_totp_code_never_the_seed(cast: Cast) -> None:
    response = cast.api.post(_url(cast, cast.ids["totp_a"], "totp"), headers=cast.headers("cons_a"))
    assert response.status_code == 200
    assert len(response.json()["code"]) == 6 and "JBSWY3DP" not in response.text


def test_checkout_needs_reason_and_validates_input(cast: Cast) -> None:
    headers = cast.headers("cons_a")
    no_reason = cast.api.post(_url(cast, "Router", "checkout"), headers=headers, json={})
    assert no_reason.status_code == 422 and no_reason.json()["error"]["field"] == "reason"
    bad_ttl = cast.api.post(
        _url(cast, "Router", "checkout"),
        headers=headers,
        json={"reason": "x", "ttl_seconds": "soon"},
    )
    assert bad_ttl.status_code == 422 and bad_ttl.json()["error"]["field"] == "ttl_seconds"
    assert "soon" not in bad_ttl.text  # pydantic's input echo is stripped


def test_create_secret_value_never_echoed(cast: Cast) -> None:
    headers = cast.headers("cons_a")
    created = cast.api.post(
        _url(cast),
        headers=headers,
        json={"title": "NAS", "value": "n4s-secret-value", "kind": "login"},
    )
    assert created.status_code == 201 and "n4s-secret-value" not in created.text
    dup = cast.api.post(
        _url(cast), headers=headers, json={"title": "nas", "value": "n4s-secret-value-2"}
    )
    assert dup.status_code == 409 and "n4s-secret" not in dup.text
    bad = cast.api.post(
        _url(cast),
        headers=headers,
        json={"title": "TOTP", "value": "not-base32-n4s!", "kind": "totp"},
    )
    assert bad.status_code == 422 and "n4s" not in bad.text


def test_oversized_body_refused(cast: Cast) -> None:
    big = {"title": "Big", "value": "x" * (2 * 1024 * 1024)}
    response = cast.api.post(_url(cast), headers=cast.headers("cons_a"), json=big)
    assert response.status_code == 413


def test_security_headers(cast: Cast) -> None:
    response = cast.api.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_offboarding_report(cast: Cast) -> None:
    cast.api.post(
        _url(cast, "Router", "checkout"), headers=cast.headers("cons_a"), json={"reason": "x"}
    )
    report = cast.api.get("/reports/offboarding/cons_a", headers=cast.headers("admin")).json()
    assert [i["title"] for i in report["items"]] == ["Router"]
