"""POST /clients/{client}/export: the bundle streamed back, the manifest in a header."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest
from sqlalchemy import select

from tests.api.conftest import Cast
from vault.crypto import age
from vault.db.models import AuditEvent
from vault.formats.bundle import verify_bundle
from vault.services import auditlog, clients


@pytest.fixture
def identity(cast: Cast) -> age.X25519Identity:
    me = age.X25519Identity.generate()
    with cast.vault.ctx() as ctx:
        clients.add_recipient(ctx, "Acme", str(me.recipient))
    return me


def _vkey(cast: Cast) -> str:
    with cast.vault.store.read_session() as s, s.begin():
        return auditlog.verifier_key(s)


def test_client_contact_exports_its_own_client(
    cast: Cast, identity: age.X25519Identity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = cast.api.post(
        f"/clients/{cast.ids['client_a']}/export?history=true", headers=cast.headers("client_a")
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith('attachment; filename="custody-acme-')
    manifest = base64.b64decode(response.headers["custody-export-manifest"]).decode()
    bundle = response.content
    assert int(response.headers["content-length"]) == len(bundle)
    checked = verify_bundle(io.BytesIO(bundle), manifest, [identity], verifier_key=_vkey(cast))
    assert checked.counts["secrets"] == 2 and checked.manifest.history
    content = json.loads(age.decrypt(bundle, [identity]))
    assert {s["value"] for s in content["secrets"]} == {"r0uter", "JBSWY3DPEHPK3PXP"}
    assert "fw" not in {s["value"] for s in content["secrets"]}  # Globex's
    # the export is an audit event with counts, and no value is in it or in any log line
    with cast.vault.store.read_session() as s, s.begin():
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "client.export")))
    assert [(e.actor, e.detail["counts"]["secrets"]) for e in events] == [("user:client_a", 2)]
    assert "r0uter" not in json.dumps([e.detail for e in events])
    assert "r0uter" not in caplog.text and "JBSWY3DPEHPK3PXP" not in caplog.text


def test_admin_exports_consultants_and_auditors_do_not(
    cast: Cast, identity: age.X25519Identity
) -> None:
    path = f"/clients/{cast.ids['client_a']}/export"
    admin = cast.api.post(path, headers=cast.headers("admin"))
    assert admin.status_code == 200
    assert json.loads(age.decrypt(admin.content, [identity]))["client"]["name"] == "Acme"
    for who in ("cons_a", "auditor"):
        refused = cast.api.post(path, headers=cast.headers(who))
        assert refused.status_code == 403, (who, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
    other = cast.api.post(path, headers=cast.headers("client_b"))
    assert other.status_code == 404
    with cast.vault.store.read_session() as s, s.begin():
        refusals = s.scalars(select(AuditEvent).where(AuditEvent.action == "api.refused")).all()
    assert any(e.detail.get("route") == "POST /clients/{client}/export" for e in refusals)


def test_a_client_without_recipients_is_told_why(cast: Cast) -> None:
    response = cast.api.post(
        f"/clients/{cast.ids['client_b']}/export", headers=cast.headers("client_b")
    )
    assert response.status_code == 409
    assert "no escrow recipient" in response.json()["error"]["message"]
