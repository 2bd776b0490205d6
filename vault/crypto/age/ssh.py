"""ssh-ed25519 recipients and identities: reuse an existing OpenSSH Ed25519 key with age.

The Ed25519 key is converted to its X25519 (Montgomery) form and used like a native
recipient, with two additions from the age spec:

* a 4-byte tag (SHA-256 of the SSH public key, truncated) in the stanza, so an identity can
  skip stanzas that are not addressed to it without doing any key agreement;
* a "tweak" scalar derived from the SSH public key and multiplied into the shared secret,
  so that the secret also commits to the full SSH key, not only its X25519 conversion.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

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

STANZA_TYPE = "ssh-ed25519"
_LABEL = b"age-encryption.org/v1/ssh-ed25519"
_KEY_TYPE = b"ssh-ed25519"
_P = 2**255 - 19  # the field prime of Curve25519 / edwards25519


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _wire_public_key(public: bytes) -> bytes:
    """The SSH wire encoding of an Ed25519 public key (what the tag and tweak are over)."""
    return _ssh_string(_KEY_TYPE) + _ssh_string(public)


def _parse_wire_public_key(blob: bytes) -> bytes | None:
    """The 32-byte key inside an ssh-ed25519 wire blob, or None if it is anything else."""
    if blob[:4] != struct.pack(">I", len(_KEY_TYPE)) or blob[4:15] != _KEY_TYPE:
        return None
    rest = blob[15:]
    if rest[:4] != struct.pack(">I", 32) or len(rest) != 36:
        return None
    return rest[4:]


def _tag(wire: bytes) -> str:
    return b64encode(hashlib.sha256(wire).digest()[:4])


def _tweak(wire: bytes) -> bytes:
    return hkdf_sha256(b"", wire, _LABEL)


def _ed25519_public_to_x25519(public: bytes) -> bytes | None:
    """Map an Edwards point to Montgomery form: u = (1 + y) / (1 - y) mod p.

    The encoding is y in little-endian with the sign of x in the top bit, which the map
    does not need. y = 1 (the identity point) has no image; None then.
    """
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    denominator = (1 - y) % _P
    if denominator == 0:
        return None
    u = (1 + y) * pow(denominator, -1, _P) % _P
    return u.to_bytes(X25519_POINT_SIZE, "little")


def _shared_secret(scalar: bytes, point: bytes, wire: bytes) -> bytes | None:
    shared = x25519(scalar, point)
    if shared is None:
        return None
    return x25519(_tweak(wire), shared)


class SSHEd25519Recipient:
    """An ``ssh-ed25519 AAAA…`` public key. Compares and hashes by the key bytes."""

    __slots__ = ("_public", "_wire", "_x25519")

    def __init__(self, public_key: bytes) -> None:
        converted = _ed25519_public_to_x25519(public_key) if len(public_key) == 32 else None
        if converted is None:
            raise MalformedRecipient("not a usable ssh-ed25519 public key")
        self._public = bytes(public_key)
        self._wire = _wire_public_key(self._public)
        self._x25519 = converted

    @classmethod
    def from_string(cls, text: str) -> SSHEd25519Recipient:
        """Parse an authorized_keys-style line: ``ssh-ed25519 BASE64 [comment]``."""
        parts = text.strip().split(None, 2)
        if len(parts) < 2 or parts[0] != STANZA_TYPE:
            raise MalformedRecipient("expected an 'ssh-ed25519 AAAA…' public key line")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise MalformedRecipient("malformed base64 in ssh-ed25519 public key") from None
        public = _parse_wire_public_key(blob)
        if public is None:
            raise MalformedRecipient("malformed ssh-ed25519 public key")
        return cls(public)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        ephemeral = os.urandom(32)
        share = x25519_base(ephemeral)
        shared = _shared_secret(ephemeral, self._x25519, self._wire)
        if shared is None:
            raise MalformedRecipient("the ssh-ed25519 recipient is a low-order point")
        wrap_key = hkdf_sha256(shared, share + self._x25519, _LABEL)
        body = seal_file_key(wrap_key, file_key)
        return [Stanza(STANZA_TYPE, [_tag(self._wire), b64encode(share)], body)]

    def __str__(self) -> str:
        return f"{STANZA_TYPE} {base64.b64encode(self._wire).decode('ascii')}"

    def __repr__(self) -> str:
        return f"SSHEd25519Recipient({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SSHEd25519Recipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash((SSHEd25519Recipient, self._public))


class SSHEd25519Identity:
    """An unencrypted OpenSSH Ed25519 private key used as an age identity."""

    __slots__ = ("_scalar", "_recipient", "_wire", "_tag", "_x25519_public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise MalformedIdentity("an Ed25519 private key seed is 32 bytes")
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        self._recipient = SSHEd25519Recipient(public)
        self._wire = _wire_public_key(public)
        self._tag = _tag(self._wire)
        # The X25519 scalar of an Ed25519 key is the first half of SHA-512(seed), the same
        # value Ed25519 itself uses as its secret scalar (X25519 applies the clamping), so
        # its X25519 public point is exactly the birational image of the Ed25519 key.
        self._scalar = hashlib.sha512(seed).digest()[:32]
        self._x25519_public = x25519_base(self._scalar)

    @classmethod
    def from_openssh_private_key(cls, pem: bytes) -> SSHEd25519Identity:
        try:
            key = load_ssh_private_key(pem, password=None)
        except TypeError:  # cryptography's signal that the key needs a password
            raise MalformedIdentity(
                "the OpenSSH private key is passphrase-protected, which is not supported; "
                "use an unencrypted copy (ssh-keygen -p) or a native age identity"
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            raise MalformedIdentity("malformed or unsupported OpenSSH private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise MalformedIdentity("only ssh-ed25519 private keys are supported")
        return cls(key.private_bytes_raw())

    @property
    def recipient(self) -> SSHEd25519Recipient:
        return self._recipient

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            tag, share = _check_stanza(stanza)
            if tag != self._tag:
                continue  # addressed to another SSH key
            shared = _shared_secret(self._scalar, share, self._wire)
            if shared is None:
                raise AgeHeaderError("ssh-ed25519 stanza has a low-order ephemeral share")
            wrap_key = hkdf_sha256(shared, share + self._x25519_public, _LABEL)
            file_key = open_file_key(wrap_key, stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __repr__(self) -> str:
        return f"SSHEd25519Identity(<recipient {self._recipient}>)"


def _check_stanza(stanza: Stanza) -> tuple[str, bytes]:
    if len(stanza.args) != 2:
        raise AgeHeaderError("ssh-ed25519 stanza must have exactly two arguments")
    try:
        tag = b64decode(stanza.args[0])
        share = b64decode(stanza.args[1])
    except ValueError:
        raise AgeHeaderError("ssh-ed25519 stanza argument is not canonical base64") from None
    if len(tag) != 4 or len(share) != X25519_POINT_SIZE:
        raise AgeHeaderError("ssh-ed25519 stanza has a tag or share of the wrong size")
    if len(stanza.body) != WRAPPED_FILE_KEY_SIZE:
        raise AgeHeaderError("ssh-ed25519 stanza body does not hold a 16-byte file key")
    return stanza.args[0], share
