"""The C2SP/CCTV age test vectors: every failure must be the *right* failure."""

from __future__ import annotations

import hashlib
import io

import pytest

from vault.crypto.age import ScryptIdentity, X25519Identity, decrypt, decrypt_from
from vault.crypto.age._io import ByteSource
from vault.crypto.age.armor import armor, dearmor
from vault.crypto.age.format import encode_header, parse_header
from vault.crypto.age.primitives import payload_key
from vault.crypto.age.stream import PAYLOAD_NONCE_SIZE, StreamWriter, decrypt_chunks
from vault.errors import (
    AgeArmorError,
    AgeError,
    AgeHeaderError,
    AgeHMACError,
    AgeNoIdentityMatch,
    AgePayloadError,
)

from .age_vectors import Vector, load_vector, vector_names

EXPECTED_ERROR: dict[str, type[AgeError]] = {
    "no match": AgeNoIdentityMatch,
    "HMAC failure": AgeHMACError,
    "header failure": AgeHeaderError,
    "payload failure": AgePayloadError,
    "armor failure": AgeArmorError,
}
ALL = [load_vector(name) for name in vector_names()]
# The vector README: files with unknown keys are to be ignored.
KNOWN = [v for v in ALL if not v.unknown_keys]
# Post-quantum hybrid recipients (ML-KEM-768 + X25519) are a feature we do not implement;
# every other vector is run for decryption.
SUPPORTED = [v for v in KNOWN if not v.post_quantum]
# Re-encoding needs a header that parses (and armor that decodes); it needs no keys, so it
# runs on the hybrid vectors too.
REENCODABLE = [v for v in KNOWN if v.expect not in ("header failure", "armor failure")]


def _ids(vectors: list[Vector]) -> list[str]:
    return [v.name for v in vectors]


def _identities(v: Vector) -> list[X25519Identity | ScryptIdentity]:
    return [X25519Identity.from_string(i) for i in v.identities] + [
        ScryptIdentity(p) for p in v.passphrases
    ]


def test_all_vectors_present() -> None:
    assert len(ALL) >= 143  # guards against a partial copy of the vectors
    assert KNOWN == ALL


def test_only_hybrid_vectors_are_left_out() -> None:
    left_out = {v.name for v in KNOWN} - {v.name for v in SUPPORTED}
    assert left_out == {n for n in vector_names() if n.startswith(("hybrid", "armor_hybrid"))}
    assert len(left_out) == 19


@pytest.mark.parametrize("vector", SUPPORTED, ids=_ids(SUPPORTED))
def test_vector(vector: Vector) -> None:
    identities = _identities(vector)
    released: list[bytes] = []
    error: AgeError | None = None
    try:
        for chunk in decrypt_from(io.BytesIO(vector.data), identities):
            released.append(chunk)
    except AgeError as e:
        error = e

    if vector.expect == "success":
        assert error is None, f"expected success, got {error!r}"
        assert hashlib.sha256(b"".join(released)).digest() == vector.payload_sha256
    else:
        expected = EXPECTED_ERROR[vector.expect]
        assert type(error) is expected, f"expected {expected.__name__}, got {error!r}"
        if vector.expect == "payload failure":
            # What was released before the failure must be exactly the authentic prefix.
            assert hashlib.sha256(b"".join(released)).digest() == vector.payload_sha256


@pytest.mark.parametrize("vector", SUPPORTED, ids=_ids(SUPPORTED))
def test_vector_one_shot_api_agrees(vector: Vector) -> None:
    identities = _identities(vector)
    if vector.expect == "success":
        plaintext = decrypt(vector.data, identities)
        assert hashlib.sha256(plaintext).digest() == vector.payload_sha256
    else:
        with pytest.raises(AgeError) as info:
            decrypt(vector.data, identities)
        assert type(info.value) is EXPECTED_ERROR[vector.expect]


@pytest.mark.parametrize("vector", REENCODABLE, ids=_ids(REENCODABLE))
def test_vector_round_trip(vector: Vector) -> None:
    """Re-encoding what we parsed gives back the vector's bytes (header, armor, STREAM).

    Only parsing and encoding are involved, so this also runs on the hybrid vectors.
    """
    data = vector.data
    if vector.armored:
        data = dearmor(data)
        # Armor tolerates CRLF and surrounding whitespace; those cannot round-trip.
        expected_armor = vector.data.replace(b"\r\n", b"\n").strip() + b"\n"
        assert armor(data) == expected_armor

    src = ByteSource(io.BytesIO(data).read)
    header, _ = parse_header(src)
    payload = src.read_up_to(len(data))
    assert encode_header(header) + payload == data

    if vector.expect == "success":
        assert vector.file_key is not None
        nonce, ciphertext = payload[:PAYLOAD_NONCE_SIZE], payload[PAYLOAD_NONCE_SIZE:]
        key = payload_key(vector.file_key, nonce)
        plaintext = b"".join(decrypt_chunks(key, ByteSource(io.BytesIO(ciphertext).read)))
        out: list[bytes] = []
        writer = StreamWriter(key, out.append)
        writer.write(plaintext)
        writer.close()
        assert b"".join(out) == ciphertext
