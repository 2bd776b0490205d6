"""Decryption, in the order that gives each failure its proper name:

1. armor (if the input is armored)                   AgeArmorError
2. header syntax, then stanza checks by identities   AgeHeaderError
3. no identity unwraps a stanza                      AgeNoIdentityMatch
4. header MAC under the unwrapped file key           AgeHMACError
5. STREAM payload, chunk by chunk                    AgePayloadError

Armor is decoded lazily, so an armor error can also surface during step 5.
"""

from __future__ import annotations

import hmac
import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from vault.errors import AgeHeaderError, AgeHMACError, AgeNoIdentityMatch

from ._io import ByteSource
from .armor import BEGIN, MAX_WHITESPACE, ArmorReader, looks_armored
from .format import Stanza, parse_header
from .interfaces import Identity
from .primitives import FILE_KEY_SIZE, header_mac, payload_key
from .scrypt import STANZA_TYPE as SCRYPT_TYPE
from .stream import PAYLOAD_NONCE_SIZE, decrypt_chunks

# Enough of the input to decide between binary and armored (see looks_armored).
_SNIFF_BYTES = MAX_WHITESPACE + len(BEGIN)


def _unwrap(stanzas: list[Stanza], identities: Sequence[Identity]) -> bytes:
    if any(s.type == SCRYPT_TYPE for s in stanzas) and len(stanzas) != 1:
        # Checked here too, not only in ScryptIdentity: the rule is about the header, and
        # must hold even when the caller offers no passphrase.
        raise AgeHeaderError("an scrypt stanza must be the only stanza in the header")
    for identity in identities:
        file_key = identity.unwrap(stanzas)
        if file_key is not None:
            if len(file_key) != FILE_KEY_SIZE:
                raise AgeHeaderError("unwrapped file key is not 16 bytes")
            return file_key
    raise AgeNoIdentityMatch("no identity matched any of the file's recipients")


class Decryptor(Iterator[bytes]):
    """Iterates over plaintext chunks, each released only after its tag verified.

    The header is read and checked (and the file key found) on construction, so header,
    no-match and MAC errors are raised by ``decrypt_from`` itself; payload errors are raised
    by the iteration, after every chunk that did authenticate has been yielded.
    """

    def __init__(self, inp: BinaryIO, identities: Sequence[Identity]) -> None:
        src = ByteSource(inp.read)
        if looks_armored(src.peek(_SNIFF_BYTES)):
            src = ByteSource(ArmorReader(src).read)
        header, covered = parse_header(src)
        file_key = _unwrap(header.stanzas, identities)
        # Constant-time compare: the MAC must not be guessable byte by byte.
        if not hmac.compare_digest(header_mac(file_key, covered), header.mac):
            raise AgeHMACError("age header MAC does not verify (header was altered)")
        nonce = src.read_up_to(PAYLOAD_NONCE_SIZE)
        if len(nonce) != PAYLOAD_NONCE_SIZE:
            raise AgeHeaderError("age file is truncated before the payload nonce")
        self._chunks = decrypt_chunks(payload_key(file_key, nonce), src)

    def __iter__(self) -> Decryptor:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def read_all(self) -> bytes:
        """All remaining plaintext; only for inputs known to be small."""
        return b"".join(self)


def decrypt_from(inp: BinaryIO, identities: Sequence[Identity]) -> Decryptor:
    """Start decrypting ``inp`` (binary or armored); iterate for the plaintext chunks."""
    return Decryptor(inp, identities)


def decrypt(data: bytes, identities: Sequence[Identity]) -> bytes:
    """Decrypt a whole age file (binary or armored) held in memory."""
    return decrypt_from(io.BytesIO(data), identities).read_all()
