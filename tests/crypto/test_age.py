"""Behaviour of vault.crypto.age beyond the reference vectors."""

from __future__ import annotations

import base64
import io
import os
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.crypto.age import (
    Identity,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    SSHEd25519Identity,
    SSHEd25519Recipient,
    Stanza,
    X25519Identity,
    X25519Recipient,
    decrypt,
    decrypt_from,
    encrypt,
    encrypt_to,
    parse_identities,
    parse_recipient,
)
from vault.crypto.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE
from vault.errors import (
    AgeError,
    AgeHeaderError,
    AgeHMACError,
    AgeNoIdentityMatch,
    AgePayloadError,
    InvalidInput,
    MalformedIdentity,
    MalformedRecipient,
)

CANARY = "canary-passphrase-0d5e1f"  # must never appear in any repr, str or error message
FAST_WORK_FACTOR = 10  # scrypt: keep the suite fast; the default (18) takes ~1 s


@pytest.fixture(scope="module")
def identity() -> X25519Identity:
    return X25519Identity.generate()


def _ssh_keypair() -> tuple[bytes, str]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return pem, public.decode("ascii") + " someone@example"


def _header_size(ciphertext: bytes) -> int:
    return ciphertext.index(b"\n", ciphertext.index(b"\n--- ") + 1) + 1


# --- round trips ----------------------------------------------------------------------------


def test_x25519_round_trip(identity: X25519Identity) -> None:
    ciphertext = encrypt(b"hello custody", [identity.recipient])
    assert ciphertext.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert decrypt(ciphertext, [identity]) == b"hello custody"


def test_multiple_recipients_each_decrypt() -> None:
    ids = [X25519Identity.generate() for _ in range(3)]
    ciphertext = encrypt(b"shared", [i.recipient for i in ids])
    for one in ids:
        assert decrypt(ciphertext, [one]) == b"shared"
    with pytest.raises(AgeNoIdentityMatch):
        decrypt(ciphertext, [X25519Identity.generate()])


def test_scrypt_round_trip() -> None:
    ciphertext = encrypt(b"by passphrase", [ScryptRecipient(CANARY, FAST_WORK_FACTOR)])
    assert decrypt(ciphertext, [ScryptIdentity(CANARY)]) == b"by passphrase"
    with pytest.raises(AgeNoIdentityMatch) as info:
        decrypt(ciphertext, [ScryptIdentity("wrong passphrase")])
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)


def test_scrypt_default_work_factor_round_trip() -> None:
    ciphertext = encrypt(b"slow", [ScryptRecipient(CANARY)])
    assert b"-> scrypt " in ciphertext and b" 18\n" in ciphertext
    assert decrypt(ciphertext, [ScryptIdentity(CANARY)]) == b"slow"


def test_scrypt_work_factor_above_limit_is_a_header_error() -> None:
    ciphertext = encrypt(b"x", [ScryptRecipient(CANARY, 12)])
    with pytest.raises(AgeHeaderError):
        decrypt(ciphertext, [ScryptIdentity(CANARY, max_work_factor=11)])


def test_scrypt_must_be_alone(identity: X25519Identity) -> None:
    with pytest.raises(InvalidInput):
        encrypt(b"x", [ScryptRecipient(CANARY, FAST_WORK_FACTOR), identity.recipient])


def test_ssh_ed25519_round_trip() -> None:
    pem, public_line = _ssh_keypair()
    recipient = parse_recipient(public_line)
    assert isinstance(recipient, SSHEd25519Recipient)
    assert str(recipient) == " ".join(public_line.split()[:2])  # comment dropped
    ciphertext = encrypt(b"via ssh key", [recipient])
    assert b"-> ssh-ed25519 " in ciphertext
    identities = parse_identities(pem.decode("ascii"))
    assert decrypt(ciphertext, identities) == b"via ssh key"
    assert isinstance(identities[0], SSHEd25519Identity)
    assert identities[0].recipient == recipient
    other_pem, _ = _ssh_keypair()
    with pytest.raises(AgeNoIdentityMatch):
        decrypt(ciphertext, parse_identities(other_pem.decode("ascii")))


def test_mixed_recipient_types() -> None:
    pem, public_line = _ssh_keypair()
    native = X25519Identity.generate()
    ciphertext = encrypt(b"both", [native.recipient, parse_recipient(public_line)])
    assert decrypt(ciphertext, [native]) == b"both"
    assert decrypt(ciphertext, parse_identities(pem.decode("ascii"))) == b"both"


def test_armor_round_trip(identity: X25519Identity) -> None:
    ciphertext = encrypt(b"armored" * 100, [identity.recipient], armor=True)
    text = ciphertext.decode("ascii")
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN AGE ENCRYPTED FILE-----"
    assert lines[-1] == "-----END AGE ENCRYPTED FILE-----"
    assert all(len(line) == 64 for line in lines[1:-2]) and 0 < len(lines[-2]) <= 64
    assert decrypt(ciphertext, [identity]) == b"armored" * 100
    crlf = ciphertext.replace(b"\n", b"\r\n")
    assert decrypt(b"\n \t\r\n" + crlf + b"\n\n", [identity]) == b"armored" * 100


@pytest.mark.parametrize(
    ("size", "chunks"),
    [
        (0, 1),
        (1, 1),
        (CHUNK_SIZE - 1, 1),
        (CHUNK_SIZE, 1),
        (CHUNK_SIZE + 1, 2),
        (3 * CHUNK_SIZE, 3),
    ],
)
def test_chunk_boundaries(identity: X25519Identity, size: int, chunks: int) -> None:
    plaintext = os.urandom(size)
    ciphertext = encrypt(plaintext, [identity.recipient])
    payload = len(ciphertext) - _header_size(ciphertext) - 16
    assert payload == size + 16 * chunks  # a full final chunk stays final (no empty chunk)
    released = list(decrypt_from(io.BytesIO(ciphertext), [identity]))
    assert len(released) == chunks
    assert b"".join(released) == plaintext


def test_streaming_one_mebibyte(identity: X25519Identity) -> None:
    plaintext = os.urandom(1 << 20)
    out = io.BytesIO()
    with encrypt_to(out, [identity.recipient]) as writer:
        for start in range(0, len(plaintext), 10_007):  # writes not aligned to chunks
            written = writer.write(plaintext[start : start + 10_007]) + start
            # memory bound: the writer never holds back more than one chunk of plaintext
            assert out.tell() >= written - CHUNK_SIZE
    out.seek(0)
    chunks = list(decrypt_from(out, [identity]))
    assert all(len(c) == CHUNK_SIZE for c in chunks)
    assert b"".join(chunks) == plaintext


def test_streaming_armored(identity: X25519Identity) -> None:
    plaintext = os.urandom(200_000)
    out = io.BytesIO()
    with encrypt_to(out, [identity.recipient], armor=True) as writer:
        writer.write(plaintext[:1])
        writer.write(plaintext[1:])
    assert decrypt(out.getvalue(), [identity]) == plaintext


def test_aborted_encryption_does_not_decrypt(identity: X25519Identity) -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), encrypt_to(out, [identity.recipient]) as writer:
        writer.write(os.urandom(CHUNK_SIZE * 2 + 5))
        raise RuntimeError("crash while writing")
    with pytest.raises(AgePayloadError):
        decrypt(out.getvalue(), [identity])


def test_payload_released_only_chunk_by_chunk(identity: X25519Identity) -> None:
    plaintext = os.urandom(CHUNK_SIZE * 2 + 100)
    ciphertext = bytearray(encrypt(plaintext, [identity.recipient]))
    ciphertext[-5] ^= 1  # damage the final chunk
    released = []
    with pytest.raises(AgePayloadError):
        for chunk in decrypt_from(io.BytesIO(bytes(ciphertext)), [identity]):
            released.append(chunk)
    assert b"".join(released) == plaintext[: 2 * CHUNK_SIZE]


def test_truncation_at_chunk_boundary_is_detected(identity: X25519Identity) -> None:
    ciphertext = encrypt(os.urandom(CHUNK_SIZE * 2 + 1), [identity.recipient])
    truncated = ciphertext[: _header_size(ciphertext) + 16 + 2 * ENCRYPTED_CHUNK_SIZE]
    with pytest.raises(AgePayloadError):
        decrypt(truncated, [identity])


def test_header_tampering_is_an_hmac_error(identity: X25519Identity) -> None:
    class Grease:
        def wrap(self, file_key: bytes) -> list[Stanza]:
            return [Stanza("grease", ["a"], b"")]

    ciphertext = encrypt(b"x", [identity.recipient, Grease()])
    tampered = ciphertext.replace(b"-> grease a\n", b"-> grease b\n")
    with pytest.raises(AgeHMACError):
        decrypt(tampered, [identity])


def test_unknown_stanzas_are_skipped(identity: X25519Identity) -> None:
    class Future:
        def wrap(self, file_key: bytes) -> list[Stanza]:
            return [Stanza("future-type", ["x", "y"], os.urandom(100))]

    ciphertext = encrypt(b"grease works", [Future(), identity.recipient, Future()])
    assert decrypt(ciphertext, [identity]) == b"grease works"
    only_unknown = encrypt(b"nobody", [Future()])
    with pytest.raises(AgeNoIdentityMatch):
        decrypt(only_unknown, [identity])


def test_custom_identity_with_wrong_file_key_size_is_rejected(identity: X25519Identity) -> None:
    class Liar:
        def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
            return bytes(32)

    ciphertext = encrypt(b"x", [identity.recipient])
    with pytest.raises(AgeHeaderError):
        decrypt(ciphertext, [Liar()])


def test_protocols_are_satisfied(identity: X25519Identity) -> None:
    pem, public_line = _ssh_keypair()
    for r in (identity.recipient, ScryptRecipient(CANARY), parse_recipient(public_line)):
        assert isinstance(r, Recipient)
    for i in (identity, ScryptIdentity(CANARY), parse_identities(pem.decode())[0]):
        assert isinstance(i, Identity)


# --- keys and parsing -------------------------------------------------------------------------


def test_x25519_key_strings(identity: X25519Identity) -> None:
    secret = str(identity)
    assert secret.startswith("AGE-SECRET-KEY-1") and secret == secret.upper()
    again = X25519Identity.from_string(secret)
    assert again.recipient == identity.recipient
    public = str(identity.recipient)
    assert public.startswith("age1") and len(public) == 62
    parsed = X25519Recipient.from_string(public)
    assert parsed == identity.recipient and hash(parsed) == hash(identity.recipient)
    assert len({parsed, identity.recipient}) == 1


def test_key_strings_have_one_case(identity: X25519Identity) -> None:
    with pytest.raises(MalformedRecipient):
        X25519Recipient.from_string(str(identity.recipient).upper())
    with pytest.raises(MalformedIdentity):
        X25519Identity.from_string(str(identity).lower())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "age1",
        "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
        "ssh-ed25519 not-base64!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",
        "age-plugin-yubikey-1qqq",
    ],
)
def test_malformed_recipients(text: str) -> None:
    with pytest.raises(MalformedRecipient) as info:
        parse_recipient(text)
    assert len(str(info.value)) < 120


def test_recipient_checksum_error(identity: X25519Identity) -> None:
    public = str(identity.recipient)
    broken = public[:-1] + ("q" if public[-1] != "q" else "p")
    with pytest.raises(MalformedRecipient):
        parse_recipient(broken)


def test_long_garbage_recipient_is_not_echoed() -> None:
    garbage = "ZZZZZZZZZZ" + "x" * 500
    with pytest.raises(MalformedRecipient) as info:
        parse_recipient(garbage)
    assert "x" * 10 not in str(info.value) and "ZZZZZZZZZZ" not in str(info.value)


def test_secret_key_pasted_as_recipient_is_not_echoed(identity: X25519Identity) -> None:
    secret = str(identity)
    with pytest.raises(MalformedRecipient) as info:
        parse_recipient(secret)
    assert secret[16:] not in str(info.value) and "AGE-SECRET" not in str(info.value)


def test_identity_file(identity: X25519Identity) -> None:
    other = X25519Identity.generate()
    text = f"# created: today\n# public key: {identity.recipient}\n{identity}\n\n  {other}\r\n"
    parsed = parse_identities(text)
    assert [repr(p) for p in parsed] == [repr(identity), repr(other)]


def test_identity_file_errors_name_the_line(identity: X25519Identity) -> None:
    secret = str(identity)
    broken = secret[:-3] + "QQQ" if not secret.endswith("QQQ") else secret[:-3] + "PPP"
    with pytest.raises(MalformedIdentity) as info:
        parse_identities(f"# comment\n{broken}\n")
    assert "line 2" in str(info.value)
    assert broken[16:] not in str(info.value) and broken[16:] not in repr(info.value)
    with pytest.raises(MalformedIdentity, match="line 1"):
        parse_identities("not a key\n")
    with pytest.raises(MalformedIdentity, match="no identities"):
        parse_identities("# only a comment\n\n")
    with pytest.raises(MalformedIdentity, match="not supported"):
        parse_identities("AGE-PLUGIN-YUBIKEY-1QQQQQQ\n")


def test_identity_file_that_is_itself_encrypted() -> None:
    encrypted = encrypt(b"AGE-SECRET-KEY-1...", [ScryptRecipient(CANARY, FAST_WORK_FACTOR)])
    with pytest.raises(MalformedIdentity, match="age-encrypted"):
        parse_identities(encrypted.decode("latin-1"))


def test_non_ed25519_ssh_private_key_is_rejected() -> None:
    pem = generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    with pytest.raises(MalformedIdentity, match="only ssh-ed25519"):
        parse_identities(pem.decode())


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def test_encrypted_ssh_private_key_is_rejected_clearly() -> None:
    # An OpenSSH key container that declares aes256-ctr + bcrypt (the shape ssh-keygen -N
    # writes); the loader must refuse it for lacking a password before any decryption.
    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    blob = (
        b"openssh-key-v1\0"
        + _ssh_string(b"aes256-ctr")
        + _ssh_string(b"bcrypt")
        + _ssh_string(_ssh_string(os.urandom(16)) + struct.pack(">I", 16))
        + struct.pack(">I", 1)
        + _ssh_string(_ssh_string(b"ssh-ed25519") + _ssh_string(public))
        + _ssh_string(os.urandom(160))
    )
    b64 = base64.b64encode(blob).decode()
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    pem += "\n".join(b64[i : i + 70] for i in range(0, len(b64), 70))
    pem += "\n-----END OPENSSH PRIVATE KEY-----\n"
    with pytest.raises(MalformedIdentity, match="passphrase-protected"):
        parse_identities(pem)
    with pytest.raises(MalformedIdentity):
        SSHEd25519Identity.from_openssh_private_key(b"-----BEGIN OPENSSH PRIVATE KEY-----\nAA\n")


# --- secrets never leak -----------------------------------------------------------------------


def test_reprs_hide_secrets(identity: X25519Identity) -> None:
    secret = str(identity)
    assert secret not in repr(identity) and secret[16:40] not in repr(identity)
    assert str(identity.recipient) in repr(identity)
    pem, _ = _ssh_keypair()
    ssh_identity = parse_identities(pem.decode())[0]
    assert "BEGIN" not in repr(ssh_identity) and "ssh-ed25519 AAAA" in repr(ssh_identity)
    for obj in (ScryptRecipient(CANARY), ScryptIdentity(CANARY)):
        assert CANARY not in repr(obj) and CANARY not in str(obj)


def test_errors_hide_secrets(identity: X25519Identity) -> None:
    ciphertext = encrypt(CANARY.encode() * 3, [ScryptRecipient(CANARY, FAST_WORK_FACTOR)])
    failures: list[AgeError] = []
    attempts: list[Callable[[], bytes]] = [
        lambda: decrypt(ciphertext, [identity]),
        lambda: decrypt(ciphertext[:-1], [ScryptIdentity(CANARY)]),
        lambda: decrypt(ciphertext + b"x", [ScryptIdentity(CANARY)]),
        lambda: decrypt(ciphertext.replace(b"scrypt", b"scrypu"), [ScryptIdentity(CANARY)]),
    ]
    for attempt in attempts:
        with pytest.raises(AgeError) as info:
            attempt()
        failures.append(info.value)
    for err in failures:
        for text in (str(err), repr(err), str(err.args)):
            assert CANARY not in text and str(identity) not in text


# --- property tests ---------------------------------------------------------------------------

PROPERTY_IDENTITY = X25519Identity.generate()
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(plaintext=st.binary(max_size=3000), armored=st.booleans())
def test_property_round_trip(plaintext: bytes, armored: bool) -> None:
    ciphertext = encrypt(plaintext, [PROPERTY_IDENTITY.recipient], armor=armored)
    assert decrypt(ciphertext, [PROPERTY_IDENTITY]) == plaintext


def _decrypt_or_age_error(data: bytes) -> bytes | None:
    """Decrypt, letting only AgeError subclasses through (anything else fails the test)."""
    try:
        return decrypt(data, [PROPERTY_IDENTITY, ScryptIdentity(CANARY, max_work_factor=4)])
    except AgeError:
        return None


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=2000))
def test_property_random_bytes_raise_only_age_errors(data: bytes) -> None:
    assert _decrypt_or_age_error(data) is None


@PROPERTY_SETTINGS
@given(
    body=st.binary(max_size=600),
    prefix=st.sampled_from(
        [b"age-encryption.org/v1\n", b"age-encryption.org/v1\n-> ", b"-----BEGIN AGE ENCRYPTED "]
    ),
)
def test_property_plausible_garbage_raises_only_age_errors(prefix: bytes, body: bytes) -> None:
    assert _decrypt_or_age_error(prefix + body) is None


_SAMPLE_PLAINTEXT = b"the quick brown fox " * 4000  # spans two chunks
_SAMPLES = [
    encrypt(_SAMPLE_PLAINTEXT, [PROPERTY_IDENTITY.recipient]),
    encrypt(_SAMPLE_PLAINTEXT[:100], [PROPERTY_IDENTITY.recipient], armor=True),
]


@PROPERTY_SETTINGS
@given(
    sample=st.sampled_from(_SAMPLES),
    position=st.floats(min_value=0, max_value=1, exclude_max=True),
    operation=st.sampled_from(["flip", "delete", "insert", "truncate"]),
    value=st.integers(min_value=1, max_value=255),
)
def test_property_mutations_are_detected(
    sample: bytes, position: float, operation: str, value: int
) -> None:
    index = int(position * len(sample))
    mutated = bytearray(sample)
    if operation == "flip":
        mutated[index] ^= value
    elif operation == "delete":
        del mutated[index]
    elif operation == "insert":
        mutated.insert(index, value)
    else:
        del mutated[index:]
    result = _decrypt_or_age_error(bytes(mutated))
    # Armor tolerates whitespace edits around the block and CR before LF; nothing else.
    if result is not None:
        assert result in (_SAMPLE_PLAINTEXT, _SAMPLE_PLAINTEXT[:100])
        assert sample.endswith(b"-----\n")
