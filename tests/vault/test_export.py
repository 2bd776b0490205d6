"""The client's export bundle: content, encryption to the client only, manifest, verification."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Vault
from tests.interop import require_tool
from vault.crypto import age
from vault.db.models import AuditEvent
from vault.errors import (
    AgeNoIdentityMatch,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    VerificationFailed,
)
from vault.formats.bundle import FORMAT, KINDS, Manifest, split_manifest, verify_bundle
from vault.log.note import Signer
from vault.services import Principal, auditlog, clients, export, inventory, secrets

VALUES = {
    "Gandi login": "canary-gandi-Pa55word!",
    "Router admin": "canary-router-0000",
    "Office 365": "canary-o365-s3cret",
}
ROTATED = "canary-gandi-rotated-2"


def _populate(vault: Vault) -> tuple[age.X25519Identity, age.X25519Identity, age.X25519Identity]:
    acme, acme2, globex = (age.X25519Identity.generate() for _ in range(3))
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(acme.recipient), str(acme2.recipient)])
        clients.add_client(ctx, "Globex", recipients=[str(globex.recipient)])
        clients.add_contact(ctx, "Acme", "Ann Owner", email="ann@acme.example", role="CEO")
        inventory.add_record(
            ctx,
            "vendor",
            "Acme",
            name="Gandi",
            category="registrar",
            account_number="ACCT-4411",
            owner="client",
        )
        inventory.add_record(
            ctx, "domain", "Acme", name="acme.example", registrar="Gandi", expires_on="2027-03-01"
        )
        inventory.add_record(ctx, "asset", "Acme", name="Front router", kind="router")
        for title, value in VALUES.items():
            secrets.add_secret(ctx, "Acme", title=title, value=value, username="admin")
        secrets.add_secret(ctx, "Globex", title="Globex mail", value="canary-globex-mail")
        inventory.link_secret(ctx, "Acme", "Gandi login", "vendor", "Gandi")
        inventory.link_secret(ctx, "Acme", "Gandi login", "domain", "acme.example")
        inventory.link_secret(ctx, "Acme", "Router admin", "asset", "Front router")
    with vault.ctx() as ctx:
        secrets.update_secret(ctx, "Acme", "Gandi login", value=ROTATED)
    return acme, acme2, globex


def _export(
    vault: Vault, *, history: bool = False, actor: Any = "operator:test"
) -> tuple[bytes, Any]:
    buf = io.BytesIO()
    result = export.export_client(vault.store, vault.keys, actor, "Acme", buf, history=history)
    return buf.getvalue(), result


def _content(bundle: bytes, identity: age.Identity) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(age.decrypt(bundle, [identity]))
    return data


def test_bundle_holds_every_record_and_opens_with_each_client_identity(vault: Vault) -> None:
    acme, acme2, globex = _populate(vault)
    bundle, result = _export(vault)
    for identity in (acme, acme2):
        content = _content(bundle, identity)
        assert content["format"] == FORMAT
        assert content["client"]["name"] == "Acme"
        assert [c["name"] for c in content["client"]["contacts"]] == ["Ann Owner"]
        by_title = {s["title"]: s for s in content["secrets"]}
        assert set(by_title) == set(VALUES)
        assert by_title["Gandi login"]["value"] == ROTATED
        assert by_title["Router admin"]["value"] == VALUES["Router admin"]
        assert by_title["Gandi login"]["username"] == "admin"
        assert "history" not in by_title["Gandi login"]
        assert {(lk["kind"], lk["name"]) for lk in by_title["Gandi login"]["links"]} == {
            ("vendor", "Gandi"),
            ("domain", "acme.example"),
        }
        assert content["vendors"][0]["account_number"] == "ACCT-4411"
        assert content["domains"][0]["registrar"] == "Gandi"
        assert content["assets"][0]["kind"] == "router"
        assert len(content["recipients"]) == 2
        assert content["log"]["checkpoint"] and content["log"]["verifier_key"]
    # to the client's recipients only: neither the vault nor another client can open it
    for stranger in (vault.keys.identity, globex):
        with pytest.raises(AgeNoIdentityMatch):
            age.decrypt(bundle, [stranger])
    assert "canary-globex-mail" not in json.dumps(_content(bundle, acme))
    assert result.manifest.counts == {
        "contacts": 1,
        "recipients": 2,
        "vendors": 1,
        "domains": 1,
        "assets": 1,
        "secrets": 3,
        "versions": 3,
        "links": 3,
    }


def test_history_carries_every_version(vault: Vault) -> None:
    acme, _, _ = _populate(vault)
    bundle, result = _export(vault, history=True)
    content = _content(bundle, acme)
    gandi = next(s for s in content["secrets"] if s["title"] == "Gandi login")
    assert [v["value"] for v in gandi["history"]] == [VALUES["Gandi login"], ROTATED]
    assert [v["version"] for v in gandi["history"]] == [1, 2]
    assert result.manifest.counts["versions"] == 4
    assert result.manifest.history is True


def test_manifest_is_signed_by_the_log_key_and_verifies(vault: Vault) -> None:
    acme, _, _ = _populate(vault)
    bundle, result = _export(vault)
    with vault.store.read_session() as s, s.begin():
        vkey = auditlog.verifier_key(s)
    text, signed = split_manifest(result.manifest_text)
    assert signed and text.startswith("custody-export-manifest/v1\nclient Acme\n")
    for kind in KINDS:
        assert f"\ncount {kind} {result.manifest.counts[kind]}\n" in text
    checked = verify_bundle(io.BytesIO(bundle), result.manifest_text, [acme], verifier_key=vkey)
    assert checked.key_pinned and checked.signature == "signed"
    assert checked.checkpoint is not None
    assert checked.checkpoint.size == result.manifest.checkpoint_size
    # the checkpoint signed for the export is kept in the log's checkpoint table
    with vault.store.read_session() as s, s.begin():
        kept = auditlog.checkpoint_at(s, checked.checkpoint.size)
        assert kept.note == json.loads(age.decrypt(bundle, [acme]))["log"]["checkpoint"]
    # without a pinned key it still checks, against the key the bundle names, and says so
    loose = verify_bundle(io.BytesIO(bundle), result.manifest_text, [acme])
    assert not loose.key_pinned and loose.warnings


def test_export_is_audited_without_values(vault: Vault) -> None:
    _populate(vault)
    _, result = _export(vault)
    with vault.store.read_session() as s, s.begin():
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "client.export")))
    assert len(events) == 1
    detail = events[0].detail
    assert detail["counts"]["secrets"] == 3 and detail["sha256"] == result.manifest.sha256
    text = json.dumps(detail)
    assert not any(v in text for v in [*VALUES.values(), ROTATED, "ACCT-4411"])


def _tamper_manifest(manifest: str, old: str, new: str) -> str:
    assert old in manifest
    return manifest.replace(old, new, 1)


def test_verification_names_what_failed(vault: Vault) -> None:
    acme, _, globex = _populate(vault)
    bundle, result = _export(vault)
    with vault.store.read_session() as s, s.begin():
        vkey = auditlog.verifier_key(s)
    good = result.manifest_text

    def fails(check: str, **kw: Any) -> None:
        data = kw.pop("bundle", bundle)
        manifest = kw.pop("manifest", good)
        ids = kw.pop("identities", [acme])
        with pytest.raises(VerificationFailed) as err:
            verify_bundle(io.BytesIO(data), manifest, ids, **kw)
        assert err.value.check == check, str(err.value)
        assert err.value.code == "verification_failed"

    # any change to the signed text breaks the signature (pinned, or the bundle's own key)
    changed = _tamper_manifest(good, "count secrets 3", "count secrets 4")
    fails("signature", manifest=changed, verifier_key=vkey)
    fails("signature", manifest=changed)
    # a manifest signed by another key
    other = Signer.parse("PRIVATE+KEY+custody.vault/x+" + _fake_key())
    text, _ = split_manifest(good)
    fails("signature", manifest=Manifest.parse_text(text).sign(other), verifier_key=vkey)
    # a different bundle (another export of the same client) does not match the hash
    other_bundle, _ = _export(vault)
    fails("hash", bundle=other_bundle, verifier_key=vkey)
    # a damaged bundle does not decrypt; a stranger's identity does not open it
    damaged = bundle[:-40] + bytes(40)
    fails("decrypt", bundle=damaged, verifier_key=vkey)
    fails("decrypt", identities=[globex], verifier_key=vkey)
    # a count that the (validly signed) manifest gets wrong
    assert vault.keys.log_signer is not None
    wrong = Manifest.parse_text(text)
    counts = dict(wrong.counts, links=wrong.counts["links"] + 1)
    forged = Manifest(**{**wrong.__dict__, "counts": counts}).sign(vault.keys.log_signer)
    fails("counts", manifest=forged, verifier_key=vkey)
    # malformed manifests and unsigned ones
    fails("manifest", manifest="hello\n\n— x AAAA\n")
    fails("signature", manifest=text)
    fails("key", verifier_key="not-a-key")


def _fake_key() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = Signer(name="custody.vault/x", private_key=Ed25519PrivateKey.generate())
    return signer.key_string().split("+", 3)[3]


def test_who_may_export(vault: Vault) -> None:
    acme, _, _ = _populate(vault)
    with vault.store.read_session() as s, s.begin():
        from vault.db.models import Client

        ids = {c.name: c.id for c in s.scalars(select(Client))}
    contact = Principal(name="user:ann", role="client", clients=frozenset([ids["Acme"]]))
    bundle, _ = _export(vault, actor=contact)
    assert _content(bundle, acme)["client"]["id"] == ids["Acme"]
    other = Principal(name="user:bob", role="client", clients=frozenset([ids["Globex"]]))
    with pytest.raises(NotFound):
        _export(vault, actor=other)
    for role in ("consultant", "auditor"):
        who = Principal(name=f"user:{role}", role=role, clients=frozenset([ids["Acme"]]))
        with pytest.raises(Forbidden):
            _export(vault, actor=who)


def test_a_client_without_recipients_cannot_export(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Lonely")
    with pytest.raises(Conflict):
        export.export_client(vault.store, vault.keys, "operator:test", "Lonely", io.BytesIO())


def test_other_formats_need_the_writers(vault: Vault) -> None:
    _populate(vault)
    try:
        import vault.formats.writers  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        with pytest.raises(InvalidInput, match="not available"):
            export.export_portable(
                vault.store, vault.keys, "operator:test", "Acme", "csv", io.BytesIO()
            )
    with pytest.raises(InvalidInput):
        export.export_portable(
            vault.store, vault.keys, "operator:test", "Acme", "xml", io.BytesIO()
        )


def test_portable_items(vault: Vault) -> None:
    _populate(vault)
    with vault.store.read_session() as s, s.begin():
        from vault.db.models import Client

        client = s.scalars(select(Client).where(Client.name == "Acme")).one()
        items = list(export.iter_portable_items(s, client, vault.keys.cipher(client), history=True))
    by_title = {i.title: i for i in items}
    gandi = by_title["Gandi login"]
    assert gandi.group == ("Vendors", "Gandi") and gandi.vendor == "Gandi"
    assert gandi.domains == ("acme.example",) and gandi.value == ROTATED
    assert [v.value for v in gandi.history] == [VALUES["Gandi login"]]
    assert by_title["Router admin"].group == ("Logins",)
    assert by_title["Router admin"].assets == ("Front router",)
    assert ROTATED not in repr(gandi)


def test_memory_stays_flat_as_the_client_grows(vault: Vault, tmp_path: Path) -> None:
    """Pages of secrets, not the whole client: peak Python allocations barely move from 1x to
    4x the secrets (the bundle goes to a file, as the CLI writes it)."""
    import tracemalloc

    from vault.services.secrets import NewSecret

    identity = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Big", recipients=[str(identity.recipient)])

    def add(n: int, start: int) -> None:
        with vault.ctx() as ctx:
            secrets.add_secrets(
                ctx,
                "Big",
                [NewSecret(title=f"s{start + i:06d}", value="v" * 40) for i in range(n)],
            )

    def peak(path: Path) -> int:
        with path.open("wb") as out:
            tracemalloc.start()
            export.export_client(vault.store, vault.keys, "operator:test", "Big", out)
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        return top

    add(export.BATCH * 2, 0)
    small = peak(tmp_path / "small.age")
    add(export.BATCH * 6, export.BATCH * 2)
    large = peak(tmp_path / "large.age")
    assert (tmp_path / "large.age").stat().st_size > 3 * (tmp_path / "small.age").stat().st_size
    assert large < small * 1.5, (small, large)


@pytest.mark.interop
def test_real_age_opens_the_bundle(vault: Vault, tmp_path: Path) -> None:
    age_bin = require_tool("age")
    acme, _, _ = _populate(vault)
    bundle, result = _export(vault, history=True)
    (tmp_path / "acme.age").write_bytes(bundle)
    (tmp_path / "identity.txt").write_text(str(acme) + "\n")
    out = subprocess.run(
        [age_bin, "-d", "-i", str(tmp_path / "identity.txt"), str(tmp_path / "acme.age")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    import hashlib

    assert hashlib.sha256(out.stdout).hexdigest() == result.manifest.sha256
    assert json.loads(out.stdout)["client"]["name"] == "Acme"


def _validator() -> Any:
    import jsonschema

    from vault.formats.bundle import content_schema

    schema = content_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("history", [False, True])
def test_content_matches_the_json_schema(vault: Vault, history: bool) -> None:
    acme, _, _ = _populate(vault)
    with vault.ctx() as ctx:
        inventory.update_record(
            ctx,
            "vendor",
            "Acme",
            "Gandi",
            renewal_date="2027-01-31",
            support_contacts=[{"name": "Gandi support", "phone": "+33 1 70 37 76 61"}],
            recovery_email="it@acme.example",
        )
        secrets.add_secret(ctx, "Acme", title="M365 2FA", kind="totp", value="JBSWY3DPEHPK3PXP")
    bundle, _ = _export(vault, history=history)
    content = _content(bundle, acme)
    validator = _validator()
    errors = [e.message for e in validator.iter_errors(content)]
    assert errors == []
    # the schema can fail: a secret without its value, a bad date, an unknown kind
    broken = json.loads(json.dumps(content))
    del broken["secrets"][0]["value"]
    broken["vendors"][0]["renewal_date"] = "31/01/2027"
    broken["assets"][0]["owner"] = "nobody"
    messages = " ".join(e.message for e in validator.iter_errors(broken))
    assert "'value' is a required property" in messages
    assert "31/01/2027" in messages and "'nobody'" in messages


def test_offline_bundle_is_the_same_document(vault: Vault, tmp_path: Path) -> None:
    """An offline bundle from the database (no keyring) holds the same records."""
    from vault.db import engine as db

    acme, _, _ = _populate(vault)
    online, _ = _export(vault, history=True)
    engine = db.make_engine(vault.settings.database_url, read_only=True)
    try:
        buf = io.BytesIO()
        result = export.write_offline(engine, "acme", [acme], buf, history=True)
    finally:
        engine.dispose()
    a, b = _content(online, acme), _content(buf.getvalue(), acme)
    assert b["mode"] == "offline" and result.manifest.mode == "offline"
    for key in ("client", "recipients", "vendors", "domains", "assets", "secrets"):
        assert a[key] == b[key], key
    assert [e.message for e in _validator().iter_errors(b)] == []
    # unsigned: accepted only when asked
    with pytest.raises(VerificationFailed, match="unsigned"):
        verify_bundle(io.BytesIO(buf.getvalue()), result.manifest_text, [acme])
    ok = verify_bundle(
        io.BytesIO(buf.getvalue()), result.manifest_text, [acme], allow_unsigned=True
    )
    assert ok.signature == "unsigned" and ok.counts == result.manifest.counts
