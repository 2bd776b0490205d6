"""Field encryption: AEAD for every sensitive value stored in the database.

Each client has one random 256-bit client key (see ``vault.keys``). From it we derive a
*field key* with HKDF-SHA256, and seal every sensitive field with ChaCha20-Poly1305 under a
fresh random 96-bit nonce. The associated data binds the ciphertext to *where it lives*:
client id, record kind, record id, field name and version. A ciphertext copied to another
row, another field, another version or another client therefore fails to authenticate.

Stored blob layout (docs/crypto.md, "Field ciphertexts")::

    0x01 || nonce (12 bytes) || ChaCha20-Poly1305 ciphertext and tag

Random nonces are safe here: a client key seals far fewer than 2**32 values in its life
(the birthday bound for a 96-bit nonce at a 2**-32 collision risk).
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import DecryptionError

FORMAT_VERSION = 1
NONCE_SIZE = 12
KEY_SIZE = 32
FIELD_KEY_INFO = b"custody/v1/field-key"
AAD_LABEL = b"custody/v1/field"


def derive_field_key(client_key: bytes) -> bytes:
    """The AEAD key for a client's fields. A separate label keeps it apart from any other
    key we may later derive from the same client key."""
    if len(client_key) != KEY_SIZE:
        raise ValueError("client key must be 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=FIELD_KEY_INFO).derive(
        client_key
    )


@dataclass(frozen=True, slots=True)
class FieldLocation:
    """Where a sealed value lives; every part goes into the associated data."""

    client_id: str
    record_kind: str
    record_id: str
    field: str
    version: int

    def associated_data(self) -> bytes:
        # Length-prefixed parts: no two different locations can encode to the same bytes
        # (a plain separator could be forged by a record id that contains it).
        return RecordLocation(self.client_id, self.record_kind, self.record_id).associated_data(
            self.field, self.version
        )


def _part(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


class RecordLocation:
    """One record's part of the associated data, encoded once: for reading many fields and
    versions of one record in bulk (an export). Same bytes as :class:`FieldLocation`."""

    __slots__ = ("record_kind", "_prefix")

    def __init__(self, client_id: str, record_kind: str, record_id: str) -> None:
        self.record_kind = record_kind
        self._prefix = AAD_LABEL + _part(client_id) + _part(record_kind) + _part(record_id)

    def associated_data(self, field: str, version: int) -> bytes:
        return self._prefix + _field_part(field, version)


@functools.lru_cache(maxsize=1024)
def _field_part(field: str, version: int) -> bytes:
    """The field-and-version end of the associated data (few distinct values: cached)."""
    return _part(field) + _part(str(version))


class FieldCipher:
    """Seals and opens the fields of one client. Holds a derived key: never log or repr it."""

    __slots__ = ("_aead",)

    def __init__(self, client_key: bytes) -> None:
        self._aead = ChaCha20Poly1305(derive_field_key(client_key))

    def __repr__(self) -> str:
        return "FieldCipher(<key hidden>)"

    def seal(self, plaintext: bytes, where: FieldLocation, *, nonce: bytes | None = None) -> bytes:
        """Encrypt ``plaintext`` for ``where``. ``nonce`` is only for test vectors."""
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce must be 12 bytes")
        ct = self._aead.encrypt(nonce, plaintext, where.associated_data())
        return bytes([FORMAT_VERSION]) + nonce + ct

    def open(self, blob: bytes, where: FieldLocation) -> bytes:
        """Decrypt a blob sealed for ``where``; any mismatch is one opaque DecryptionError."""
        return self._open(blob, where.associated_data(), where.field, where.record_kind)

    def _open(self, blob: bytes, aad: bytes, field: str, record_kind: str) -> bytes:
        if len(blob) < 1 + NONCE_SIZE + 16 or blob[0] != FORMAT_VERSION:
            raise DecryptionError(f"stored {field} of {record_kind} is corrupted")
        nonce, ct = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
        try:
            return self._aead.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise DecryptionError(
                f"stored {field} of {record_kind} does not authenticate "
                "(corrupted, or moved from another record)"
            ) from None

    def open_in(self, blob: bytes, record: RecordLocation, field: str, version: int) -> bytes:
        """:meth:`open` for a field of ``record`` (bulk reads: the record's part of the
        associated data is encoded once)."""
        return self._open(blob, record.associated_data(field, version), field, record.record_kind)

    def seal_text(self, text: str, where: FieldLocation) -> bytes:
        return self.seal(text.encode("utf-8"), where)

    def open_text(self, blob: bytes, where: FieldLocation) -> str:
        return self.open(blob, where).decode("utf-8")
