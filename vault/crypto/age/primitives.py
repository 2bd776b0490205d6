"""The handful of primitives every age recipient type combines the same way."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: Every age file is encrypted under a fresh 16-byte file key; recipients wrap only that.
FILE_KEY_SIZE = 16
#: A wrapped file key is the 16-byte key plus a 16-byte Poly1305 tag. Stanza bodies of the
#: built-in types must be exactly this long, checked *before* decrypting: a longer body
#: would otherwise let a file smuggle a key of another size past the AEAD.
WRAPPED_FILE_KEY_SIZE = FILE_KEY_SIZE + 16
X25519_POINT_SIZE = 32

# Each wrapping key is used for exactly one encryption, so the all-zero nonce is safe.
_ZERO_NONCE = bytes(12)


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def seal_file_key(wrap_key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)


def open_file_key(wrap_key: bytes, body: bytes) -> bytes | None:
    """The unwrapped file key, or None if the tag does not verify (the stanza is not ours)."""
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def x25519(scalar: bytes, point: bytes) -> bytes | None:
    """X25519(scalar, point), or None when the result is all zeroes.

    An all-zero shared secret means the peer sent a low-order point: the "secret" would be
    known to everyone, so the spec makes every caller reject it.
    """
    try:
        key = X25519PrivateKey.from_private_bytes(scalar)
        return key.exchange(X25519PublicKey.from_public_bytes(point))
    except ValueError:  # OpenSSL refuses an all-zero result with ValueError
        return None


def x25519_base(scalar: bytes) -> bytes:
    """The public point of ``scalar`` (X25519 clamps the scalar, as age expects)."""
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def header_mac(file_key: bytes, header_without_mac: bytes) -> bytes:
    """HMAC-SHA-256 over the header up to and including ``---``, under a key derived from
    the file key, so only someone holding the file key can produce or alter a header."""
    mac = HMAC(hkdf_sha256(file_key, b"", b"header"), hashes.SHA256())
    mac.update(header_without_mac)
    return mac.finalize()


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    """The STREAM key: the 16-byte random nonce makes it unique per file even if a file key
    were ever reused."""
    return hkdf_sha256(file_key, nonce, b"payload")
