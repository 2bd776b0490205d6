"""STREAM: the age payload, ChaCha20-Poly1305 over 64 KiB chunks.

Each chunk's nonce is an 11-byte big-endian chunk counter followed by one flag byte that is
1 only on the final chunk. The counter stops chunks from being reordered or dropped from the
middle; the flag stops the file from being truncated at a chunk boundary, because a
non-final chunk will not authenticate as the final one. Decryption therefore releases a
chunk only after its tag verifies, and reports success only after a chunk marked final
followed by the end of the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from vault.errors import AgePayloadError

from ._io import ByteSource

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
#: The random nonce at the start of the payload, from which the payload key is derived.
PAYLOAD_NONCE_SIZE = 16

_COUNTER_BYTES = 11
_MAX_COUNTER = (1 << (8 * _COUNTER_BYTES)) - 1


def _chunk_nonce(counter: int, last: bool) -> bytes:
    if counter > _MAX_COUNTER:  # 2**88 chunks: unreachable, but never reuse a nonce
        raise AgePayloadError("age payload has too many chunks")
    return counter.to_bytes(_COUNTER_BYTES, "big") + (b"\x01" if last else b"\x00")


class StreamWriter:
    """Encrypts written bytes chunk by chunk into ``sink``; holds at most one chunk."""

    def __init__(self, key: bytes, sink: Callable[[bytes], object]) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._sink = sink
        self._buf = bytearray()
        self._counter = 0
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed age stream")
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            # Flush a full chunk only once more data arrives: the final chunk may be full,
            # and only close() knows which chunk is final.
            if len(self._buf) == CHUNK_SIZE:
                self._flush(last=False)
            take = CHUNK_SIZE - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
        return total

    def close(self) -> None:
        if not self._closed:
            self._flush(last=True)
            self._closed = True

    def _flush(self, last: bool) -> None:
        nonce = _chunk_nonce(self._counter, last)
        self._sink(self._aead.encrypt(nonce, bytes(self._buf), None))
        self._buf.clear()
        self._counter += 1


def _open(aead: ChaCha20Poly1305, counter: int, last: bool, chunk: bytes) -> bytes | None:
    try:
        return aead.decrypt(_chunk_nonce(counter, last), chunk, None)
    except InvalidTag:
        return None


def decrypt_chunks(key: bytes, src: ByteSource) -> Iterator[bytes]:
    """Yield plaintext chunks as they authenticate; AgePayloadError on the first problem.

    A chunk's end is known from the fixed size, so a short read marks the final chunk, while
    a full-size chunk may be either (the flag in the nonce decides which tag verifies).
    """
    aead = ChaCha20Poly1305(key)
    counter = 0
    while True:
        chunk = src.read_up_to(ENCRYPTED_CHUNK_SIZE)
        if not chunk:
            raise AgePayloadError("age payload is truncated (no final chunk)")
        if len(chunk) < TAG_SIZE:
            raise AgePayloadError("age payload is truncated (chunk shorter than its tag)")
        plaintext = None
        last = len(chunk) < ENCRYPTED_CHUNK_SIZE
        if not last:
            plaintext = _open(aead, counter, False, chunk)
        if plaintext is None:
            last = True
            plaintext = _open(aead, counter, True, chunk)
        if plaintext is None:
            raise AgePayloadError("age payload chunk failed to authenticate")
        if last:
            # An empty final chunk is only valid for an empty file: otherwise the same
            # plaintext would have two encodings (with and without the empty chunk).
            if not plaintext and counter > 0:
                raise AgePayloadError("age payload ends with an empty final chunk")
            # The final chunk authenticated, so its plaintext is genuine and is released
            # (as the reference vectors require); data after it still fails the file,
            # and iteration only ends cleanly once the input is known to end here.
            yield plaintext
            if src.read_up_to(1):
                raise AgePayloadError("unexpected data after the final age payload chunk")
            return
        yield plaintext
        counter += 1
