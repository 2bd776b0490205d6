"""Escrow drops to a real directory and to a real HTTPS server with TLS verification on."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from tests.conftest import Vault
from vault.db.models import AuditEvent, EscrowDestination, Notice, utcnow
from vault.errors import Forbidden, InvalidInput
from vault.services import Principal, clients, escrow, readiness

BUNDLE = b"age-encryption.org/v1 (a stand-in bundle for delivery tests)"
TOKEN = "client-bearer-token-canary-7f3a"


def stub_bundle(store: Any, keys: Any, client_id: str, directory: Path) -> tuple[Path, str | None]:
    path = directory / "bundle.age"
    path.write_bytes(BUNDLE)
    return path, "custody-export-manifest/v1\nstand-in\n"


@pytest.fixture
def acme(vault: Vault) -> str:
    with vault.ctx() as ctx:
        return clients.add_client(ctx, "Acme").id


def _events(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.store.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_directory_drop_is_atomic_private_and_logged(
    vault: Vault, acme: str, tmp_path: Path
) -> None:
    drop_dir = tmp_path / "share"
    drop_dir.mkdir()
    with vault.ctx() as ctx:
        escrow.add_destination(ctx, "Acme", directory=str(drop_dir), every_hours=24)
    results = escrow.run_due(vault.store, vault.keys, make_bundle=stub_bundle)
    assert [r.ok for r in results] == [True]
    files = sorted(p.name for p in drop_dir.iterdir())
    assert len(files) == 2 and files[0].endswith(".age") and files[1].endswith(".manifest")
    bundle = drop_dir / files[0]
    assert bundle.read_bytes() == BUNDLE
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert [e.outcome for e in _events(vault, "escrow.drop")] == ["ok"]
    # not due again until its schedule says so; --force runs it anyway
    assert escrow.run_due(vault.store, vault.keys, make_bundle=stub_bundle) == []
    forced = escrow.run_due(vault.store, vault.keys, force=True, make_bundle=stub_bundle)
    assert [r.ok for r in forced] == [True]


def test_directory_drop_delivers_a_real_bundle_that_the_client_opens_and_verifies(
    vault: Vault, tmp_path: Path
) -> None:
    import json

    from vault.crypto import age
    from vault.errors import AgeNoIdentityMatch
    from vault.formats.bundle import verify_bundle
    from vault.services import auditlog, secrets

    identity = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(identity.recipient)])
        secrets.add_secret(ctx, "Acme", title="Mail admin", value="escrow-canary-value-1")
    drop_dir = tmp_path / "share"
    drop_dir.mkdir()
    with vault.ctx() as ctx:
        escrow.add_destination(ctx, "Acme", directory=str(drop_dir))
    results = escrow.run_due(vault.store, vault.keys)
    assert [r.ok for r in results] == [True], results
    bundle_file = next(drop_dir.glob("*.age"))
    manifest_file = next(drop_dir.glob("*.manifest"))
    assert stat.S_IMODE(manifest_file.stat().st_mode) == 0o600
    content = json.loads(age.decrypt(bundle_file.read_bytes(), [identity]))
    assert [s["value"] for s in content["secrets"]] == ["escrow-canary-value-1"]
    with vault.store.read_session() as s, s.begin():
        vkey = auditlog.verifier_key(s)
    with bundle_file.open("rb") as fh:
        checked = verify_bundle(fh, manifest_file.read_text(), [identity], verifier_key=vkey)
    assert checked.counts["secrets"] == 1 and checked.key_pinned
    assert results[0].bytes == bundle_file.stat().st_size
    # the drop is logged as an export by the escrow runner, and the values stay out of the log
    exports = _events(vault, "client.export")
    assert [e.actor for e in exports] == ["system:escrow"]
    assert "escrow-canary-value-1" not in json.dumps([e.detail for e in exports])
    with pytest.raises(AgeNoIdentityMatch):  # the vault itself cannot open the drop
        age.decrypt(bundle_file.read_bytes(), [vault.keys.identity])


def test_a_client_without_recipients_gets_a_failed_drop(vault: Vault, tmp_path: Path) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        escrow.add_destination(ctx, "Acme", directory=str(tmp_path))
    results = escrow.run_due(vault.store, vault.keys)
    assert not results[0].ok and "no escrow recipient" in (results[0].error or "")
    assert list(tmp_path.glob("*.age")) == []


def test_a_missing_directory_fails_backs_off_and_becomes_overdue(
    vault: Vault, acme: str, tmp_path: Path
) -> None:
    with vault.ctx() as ctx:
        escrow.add_destination(ctx, "Acme", directory=str(tmp_path / "unmounted"), every_hours=2)
    now = utcnow()
    first = escrow.run_due(vault.store, vault.keys, now=now, make_bundle=stub_bundle)
    assert not first[0].ok and "not a directory" in (first[0].error or "")
    with vault.store.session() as s:
        row = s.scalars(select(EscrowDestination)).one()
        assert row.failures == 1 and row.next_attempt_at == now + escrow.FIRST_RETRY
    later = now + escrow.FIRST_RETRY
    escrow.run_due(vault.store, vault.keys, now=later, make_bundle=stub_bundle)
    with vault.store.session() as s:
        row = s.scalars(select(EscrowDestination)).one()
        assert row.failures == 2 and row.next_attempt_at == later + 2 * escrow.FIRST_RETRY
    # three hours on, with no success since it was made, the drop is overdue: once
    much_later = now + dt.timedelta(hours=3)
    assert escrow.flag_overdue(vault.store, vault.keys, now=much_later) == 1
    assert escrow.flag_overdue(vault.store, vault.keys, now=much_later) == 0
    assert [e.outcome for e in _events(vault, "escrow.overdue")] == ["alert"]
    with vault.store.session() as s:
        assert s.scalars(select(Notice.kind)).all() == ["escrow-overdue"]
        row = s.scalars(select(EscrowDestination)).one()
        assert escrow.describe(row, much_later)["overdue"] is True
    with vault.ctx() as ctx:
        codes = {f.code for f in readiness.readiness(ctx, "Acme").findings}
    assert "escrow-drop-overdue" in codes


def test_who_may_add_what(vault: Vault, acme: str, tmp_path: Path) -> None:
    contact = Principal(name="user:ann", role="client", clients=frozenset([acme]))
    with vault.store.context(contact, vault.keys) as ctx, pytest.raises(Forbidden):
        escrow.add_destination(ctx, "Acme", directory=str(tmp_path))
    with vault.store.context(contact, vault.keys) as ctx:
        escrow.add_destination(ctx, "Acme", url="https://drop.example/custody", token=TOKEN)
    consultant = Principal(name="user:c", role="consultant", clients=frozenset([acme]))
    with vault.store.context(consultant, vault.keys) as ctx, pytest.raises(Forbidden):
        escrow.add_destination(ctx, "Acme", url="https://drop.example/x")
    with vault.ctx() as ctx:
        for bad in (
            {"url": "http://drop.example/x"},
            {"url": "https://user:pw@drop.example/x"},
            {"directory": "relative/dir"},
            {"url": "https://drop.example/x", "every_hours": 0},
            {"url": "https://drop.example/x", "method": "GET"},
            {},
        ):
            with pytest.raises(InvalidInput):
                escrow.add_destination(ctx, "Acme", **bad)  # type: ignore[arg-type]


# --- a real HTTPS endpoint -----------------------------------------------------------------------


def _certificate(tmp: Path) -> tuple[Path, Path]:
    """A CA and a localhost certificate it signs: (ca.pem, server.pem with key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Custody test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = tmp / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_pem = tmp / "server.pem"
    server_pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, server_pem


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ca_pem, server_pem = _certificate(tmp_path)
    seen: dict[str, Any] = {"requests": [], "status": 201}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _take(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen["requests"].append((self.command, self.path, dict(self.headers), body))
            self.send_response(seen["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST = _take

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen["url"] = f"https://localhost:{server.server_address[1]}/drops/acme?sig=secretquery"
    seen["ca"] = ca_pem
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_https_drop_with_the_clients_token_and_tls_verified(
    vault: Vault, acme: str, endpoint: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with vault.ctx() as ctx:
        escrow.add_destination(ctx, "Acme", url=endpoint["url"], token=TOKEN, method="POST")

    # a private address is refused unless allowed
    monkeypatch.delenv(escrow.ALLOW_PRIVATE_ENV, raising=False)
    refused = escrow.run_due(vault.store, vault.keys, make_bundle=stub_bundle)
    assert not refused[0].ok and "non-public address" in (refused[0].error or "")
    monkeypatch.setenv(escrow.ALLOW_PRIVATE_ENV, "1")

    # TLS verification is on: an unknown CA fails
    unknown_ca = escrow.run_due(vault.store, vault.keys, force=True, make_bundle=stub_bundle)
    assert not unknown_ca[0].ok and endpoint["requests"] == []

    monkeypatch.setenv(escrow.CA_FILE_ENV, str(endpoint["ca"]))
    done = escrow.run_due(vault.store, vault.keys, force=True, make_bundle=stub_bundle)
    assert done[0].ok and done[0].bytes == len(BUNDLE)
    method, path, headers, body = endpoint["requests"][-1]
    assert method == "POST" and path == "/drops/acme?sig=secretquery" and body == BUNDLE
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert "X-Custody-Manifest" in headers

    endpoint["status"] = 500
    failed = escrow.run_due(vault.store, vault.keys, force=True, make_bundle=stub_bundle)
    assert not failed[0].ok and "HTTP 500" in (failed[0].error or "")

    # the token and the URL's query never reach the log or a listing
    with vault.store.session() as s:
        events = s.scalars(select(AuditEvent)).all()
        rows = s.scalars(select(EscrowDestination)).all()
    text = repr([(e.detail, e.subject_id) for e in events]) + repr(
        [escrow.describe(r) for r in rows]
    )
    assert TOKEN not in text and "secretquery" not in text
    outcomes = [e.outcome for e in events if e.action == "escrow.drop"]
    assert outcomes == ["failed", "failed", "ok", "failed"]
