"""Encryption: header (wrapped file key + MAC), then the STREAM payload, optionally armored.

``encrypt_to`` streams (use it as a context manager and call ``write`` as often as needed);
``encrypt`` is the one-shot form for data already in memory.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from types import TracebackType
from typing import BinaryIO

from vault.errors import InvalidInput

from .armor import ArmorWriter
from .format import Header, encode_header, encode_header_without_mac
from .interfaces import Recipient
from .primitives import FILE_KEY_SIZE, header_mac, payload_key
from .scrypt import STANZA_TYPE as SCRYPT_TYPE
from .stream import PAYLOAD_NONCE_SIZE, StreamWriter


class Encryptor:
    """A writable age file. Memory use is one chunk (64 KiB), whatever the file size.

    ``close()`` (or leaving the ``with`` block normally) writes the final chunk. If the
    block exits with an exception, the final chunk is deliberately *not* written: the output
    then fails to decrypt, instead of decrypting to a silently truncated plaintext.
    """

    def __init__(
        self, out: BinaryIO, recipients: Sequence[Recipient], *, armor: bool = False
    ) -> None:
        if not recipients:
            raise InvalidInput("at least one recipient is required", field="recipients")
        file_key = os.urandom(FILE_KEY_SIZE)
        stanzas = [stanza for r in recipients for stanza in r.wrap(file_key)]
        if any(s.type == SCRYPT_TYPE for s in stanzas) and len(stanzas) != 1:
            # Decryptors reject such headers (see ScryptIdentity), so never write one.
            raise InvalidInput(
                "a passphrase recipient cannot be combined with other recipients",
                field="recipients",
            )
        mac = header_mac(file_key, encode_header_without_mac(stanzas))
        self._armor = ArmorWriter(out.write) if armor else None
        sink = self._armor.write if self._armor else out.write
        sink(encode_header(Header(stanzas, mac)))
        nonce = os.urandom(PAYLOAD_NONCE_SIZE)
        sink(nonce)
        self._stream = StreamWriter(payload_key(file_key, nonce), sink)
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._stream.write(data)

    def close(self) -> None:
        """Finish the file (final chunk, armor footer). Does not close the output."""
        if self._closed:
            return
        self._closed = True
        self._stream.close()
        if self._armor:
            self._armor.close()

    def __enter__(self) -> Encryptor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # abandon: see the class docstring


def encrypt_to(out: BinaryIO, recipients: Sequence[Recipient], *, armor: bool = False) -> Encryptor:
    """Start an age file on ``out``; use as a context manager and ``write()`` plaintext."""
    return Encryptor(out, recipients, armor=armor)


def encrypt(plaintext: bytes, recipients: Sequence[Recipient], *, armor: bool = False) -> bytes:
    buf = io.BytesIO()
    with encrypt_to(buf, recipients, armor=armor) as w:
        w.write(plaintext)
    return buf.getvalue()
