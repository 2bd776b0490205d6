"""Native age keys: X25519 recipients ("age1…") and identities ("AGE-SECRET-KEY-1…").

Wrapping: an ephemeral X25519 key agreement with the recipient, then
HKDF-SHA-256(shared secret, salt = ephemeral share || recipient, info = label) gives the
key that seals the file key with ChaCha20-Poly1305.
"""

from __future__ import annotations

import os

from bech32 import bech32_decode, bech32_encode, convertbits

from vault.errors import AgeHeaderError, MalformedIdentity, MalformedRecipient

from .format import Stanza, b64decode, b64encode
from .primitives import (
    WRAPPED_FILE_KEY_SIZE,
    X25519_POINT_SIZE,
    hkdf_sha256,
    open_file_key,
    seal_file_key,
    x25519,
    x25519_base,
)

STANZA_TYPE = "X25519"
_LABEL = b"age-encryption.org/v1/X25519"
_RECIPIENT_HRP = "age"
_IDENTITY_HRP = "age-secret-key-"


def _bech32_to_key(text: str, hrp: str) -> bytes | None:
    """The 32-byte payload of a Bech32 string with the given HRP, or None if invalid."""
    decoded_hrp, data = bech32_decode(text)
    if decoded_hrp != hrp or data is None:
        return None
    key = convertbits(data, 5, 8, False)
    if key is None or len(key) != X25519_POINT_SIZE:
        return None
    return bytes(key)


def _key_to_bech32(key: bytes, hrp: str) -> str:
    data = convertbits(key, 8, 5, True)
    assert data is not None  # 8-to-5 with padding cannot fail
    return bech32_encode(hrp, data)


class X25519Recipient:
    """An age public key. Compares and hashes by its public bytes."""

    __slots__ = ("_public",)

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != X25519_POINT_SIZE:
            raise MalformedRecipient("an X25519 public key is 32 bytes")
        self._public = bytes(public_key)

    @classmethod
    def from_string(cls, text: str) -> X25519Recipient:
        # age prints recipients in lowercase only; one spelling per key.
        key = _bech32_to_key(text, _RECIPIENT_HRP) if text == text.lower() else None
        if key is None:
            raise MalformedRecipient("malformed age1… recipient (bad encoding or checksum)")
        return cls(key)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def wrap(self, file_key: bytes) -> list[Stanza]:
        ephemeral = os.urandom(32)
        share = x25519_base(ephemeral)
        shared = x25519(ephemeral, self._public)
        if shared is None:
            raise MalformedRecipient("the X25519 recipient is a low-order point")
        wrap_key = hkdf_sha256(shared, share + self._public, _LABEL)
        body = seal_file_key(wrap_key, file_key)
        return [Stanza(STANZA_TYPE, [b64encode(share)], body)]

    def __str__(self) -> str:
        return _key_to_bech32(self._public, _RECIPIENT_HRP)

    def __repr__(self) -> str:
        return f"X25519Recipient({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash((X25519Recipient, self._public))


class X25519Identity:
    """An age secret key. ``str()`` gives the secret string; ``repr()`` never does."""

    __slots__ = ("_secret", "_recipient")

    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) != 32:
            raise MalformedIdentity("an X25519 secret key is 32 bytes")
        self._secret = bytes(secret_key)
        self._recipient = X25519Recipient(x25519_base(self._secret))

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(os.urandom(32))

    @classmethod
    def from_string(cls, text: str) -> X25519Identity:
        # age writes secret keys in uppercase only; one spelling per key.
        key = _bech32_to_key(text, _IDENTITY_HRP) if text == text.upper() else None
        if key is None:
            raise MalformedIdentity(
                "malformed AGE-SECRET-KEY-1… identity (bad encoding or checksum)"
            )
        return cls(key)

    @property
    def recipient(self) -> X25519Recipient:
        return self._recipient

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            share = _check_stanza(stanza)
            shared = x25519(self._secret, share)
            if shared is None:
                raise AgeHeaderError("X25519 stanza has a low-order ephemeral share")
            wrap_key = hkdf_sha256(shared, share + self._recipient.public_bytes, _LABEL)
            file_key = open_file_key(wrap_key, stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __str__(self) -> str:
        return _key_to_bech32(self._secret, _IDENTITY_HRP).upper()

    def __repr__(self) -> str:
        return f"X25519Identity(<recipient {self._recipient}>)"


def _check_stanza(stanza: Stanza) -> bytes:
    """The ephemeral share of a well-formed X25519 stanza; AgeHeaderError otherwise."""
    if len(stanza.args) != 1:
        raise AgeHeaderError("X25519 stanza must have exactly one argument")
    try:
        share = b64decode(stanza.args[0])
    except ValueError:
        raise AgeHeaderError("X25519 stanza share is not canonical base64") from None
    if len(share) != X25519_POINT_SIZE:
        raise AgeHeaderError("X25519 stanza share is not 32 bytes")
    if len(stanza.body) != WRAPPED_FILE_KEY_SIZE:
        raise AgeHeaderError("X25519 stanza body does not hold a 16-byte file key")
    return share
