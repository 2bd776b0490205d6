"""Regenerate the Custody-format vectors: ``python -m tests.vectors.generate``.

Inputs are fixed (no randomness), so the output must not change unless a format changes - in
which case the format version must change too. The expected bytes are computed here with the
primitives called directly from ``cryptography``/``argon2``, not through Custody's modules, so a
vector checks our code against an independent composition of the spec in docs/crypto.md.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = Path(__file__).parent


def aad(client: str, kind: str, record: str, field: str, version: int) -> bytes:
    out = b"custody/v1/field"
    for part in (client, kind, record, field, str(version)):
        raw = part.encode()
        out += struct.pack(">H", len(raw)) + raw
    return out


def field_vectors() -> dict[str, object]:
    client_key = bytes(range(32))
    field_key = HKDF(hashes.SHA256(), 32, None, b"custody/v1/field-key").derive(client_key)
    nonce = bytes.fromhex("000102030405060708090a0b")
    loc = {
        "client_id": "7d0c3a4e-0000-4000-8000-000000000001",
        "record_kind": "secret",
        "record_id": "7d0c3a4e-0000-4000-8000-0000000000aa",
        "field": "value",
        "version": 1,
    }
    plaintext = "hunter2 – ünïcode".encode()
    a = aad(*loc.values())  # type: ignore[arg-type]
    blob = b"\x01" + nonce + ChaCha20Poly1305(field_key).encrypt(nonce, plaintext, a)
    moved = dict(loc, version=2)
    other_field = dict(loc, field="username")
    vectors = [
        {
            "name": "value-v1",
            "expect": "success",
            "client_key": client_key.hex(),
            "field_key": field_key.hex(),
            "location": loc,
            "aad": a.hex(),
            "plaintext": plaintext.hex(),
            "blob": blob.hex(),
        },
        {
            "name": "moved-to-version-2",
            "expect": "failure",
            "client_key": client_key.hex(),
            "location": moved,
            "aad": aad(*moved.values()).hex(),
            "blob": blob.hex(),
        },  # type: ignore[arg-type]
        {
            "name": "moved-to-username",
            "expect": "failure",
            "client_key": client_key.hex(),
            "location": other_field,
            "aad": aad(*other_field.values()).hex(),
            "blob": blob.hex(),
        },  # type: ignore[arg-type]
    ]
    return {"description": "Field AEAD (docs/crypto.md, Field ciphertexts)", "vectors": vectors}


def sealing_vectors() -> dict[str, object]:
    passphrase = "correct horse battery staple"
    salt = bytes(range(16))
    params = {
        "alg": "argon2id",
        "version": 19,
        "t": 1,
        "m": 1024,
        "p": 1,
        "salt": "AAECAwQFBgcICQoLDA0ODw==",
    }
    kek = hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=1,
        memory_cost=1024,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
        version=19,
    )
    vault_id = "5b1e6c1a-0000-4000-8000-000000000001"
    root_key = bytes([0x42] * 32)
    nonce = bytes(12)
    sealed = nonce + ChaCha20Poly1305(kek).encrypt(
        nonce, root_key, b"custody/v1/root-key\x00" + vault_id.encode()
    )
    return {
        "description": "Root-key sealing (docs/crypto.md, Sealing)",
        "vectors": [
            {
                "name": "passphrase",
                "expect": "success",
                "passphrase": passphrase,
                "kdf": params,
                "kek": kek.hex(),
                "vault_id": vault_id,
                "root_key": root_key.hex(),
                "sealed_root": sealed.hex(),
            },
            {
                "name": "wrong-passphrase",
                "expect": "failure",
                "passphrase": passphrase + "!",
                "kdf": params,
                "vault_id": vault_id,
                "sealed_root": sealed.hex(),
            },
            {
                "name": "other-vault",
                "expect": "failure",
                "passphrase": passphrase,
                "kdf": params,
                "vault_id": "5b1e6c1a-0000-4000-8000-000000000002",
                "sealed_root": sealed.hex(),
            },
        ],
    }


def event_vectors() -> dict[str, object]:
    """Audit-event leaves (docs/audit-log.md): RFC 8785 via the independent ``rfc8785``
    package, SHA-256 with the 0x00 leaf prefix, and the RFC 9162 root of all of them."""
    import hashlib

    import rfc8785

    base = {
        "v": 1,
        "at": "2026-11-23T12:00:00.000000Z",
        "actor": "user:alice",
        "role": "consultant",
        "source": "192.0.2.10",
        "action": "secret.checkout",
        "outcome": "ok",
        "client_id": "7d0c3a4e-0000-4000-8000-000000000001",
        "subject_kind": "secret",
        "subject_id": "7d0c3a4e-0000-4000-8000-0000000000aa",
        "detail": {"reason": "renew certificate", "ticket": "T-42", "ttl_seconds": 3600},
    }
    events = [
        dict(base, index=0),
        dict(
            base,
            index=1,
            action="auth.login",
            outcome="denied",
            client_id=None,
            subject_kind=None,
            subject_id=None,
            detail={"error": "bad_credentials"},
        ),
        dict(
            base,
            index=2,
            actor="user:zoë",
            detail={
                "reason": 'Zürich \u2014 "quoted"\n\t',
                "emoji": "\U0001f511",
                "nested": {"b": [1, -2, True, None], "a": {}},
            },
        ),
        dict(base, index=3, role=None, source=None, detail={"count": 9007199254740991}),
        dict(base, index=4, detail={"control": "\u0000\u001f\u007f", "empty": ""}),
    ]
    vectors: list[dict[str, object]] = []
    hashes = []
    for event in events:
        leaf = rfc8785.dumps(event)
        digest = hashlib.sha256(b"\x00" + leaf).digest()
        hashes.append(digest)
        vectors.append(
            {
                "name": f"event-{event['index']}",
                "expect": "success",
                "event": event,
                "leaf": leaf.decode("utf-8"),
                "leaf_hash": digest.hex(),
            }
        )
    for name, change in (
        ("float-in-detail", {"detail": {"x": 1.5}}),
        ("integer-too-large", {"detail": {"x": 9007199254740992}}),
        ("non-ascii-detail-key", {"detail": {"schlüssel": 1}}),
        ("missing-actor", {"actor": None}),
        ("bad-time", {"at": "2026-11-23 12:00:00Z"}),
        ("naive-precision-time", {"at": "2026-11-23T12:00:00Z"}),
        ("numeric-role", {"role": 7}),
    ):
        vectors.append({"name": name, "expect": "failure", "event": dict(base, index=0, **change)})

    def mth(items: list[bytes]) -> bytes:
        if len(items) == 1:
            return items[0]
        k = 1
        while k * 2 < len(items):
            k *= 2
        return hashlib.sha256(b"\x01" + mth(items[:k]) + mth(items[k:])).digest()

    return {"root": mth(hashes).hex(), "vectors": vectors}


def main() -> None:
    for name, data in (
        ("fields.json", field_vectors()),
        ("sealing.json", sealing_vectors()),
        ("log/events.json", event_vectors()),
    ):
        (HERE / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
