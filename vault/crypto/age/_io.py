"""A tiny buffered byte reader shared by the armor decoder, the header parser and STREAM.

The three layers read the same input in different shapes (lines, then fixed-size chunks),
and the header parser must not lose the bytes it read ahead of the payload. One buffer that
every layer pulls from keeps that simple. Every read takes an explicit size limit, so the
memory used is bounded by the caller, never by the input.
"""

from __future__ import annotations

from collections.abc import Callable

# How much to ask the underlying reader for when looking for a line ending.
_READ_BLOCK = 4096


class ByteSource:
    """Buffered reads over a ``read(n) -> bytes`` callable (``b""`` means end of input)."""

    __slots__ = ("_buf", "_eof", "_read")

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = bytearray()
        self._eof = False

    def _fill(self, n: int) -> bool:
        """Read up to ``n`` more bytes into the buffer; False once the input is exhausted."""
        if self._eof:
            return False
        data = self._read(n)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the front of the input, without consuming them."""
        while len(self._buf) < n and self._fill(n - len(self._buf)):
            pass
        return bytes(self._buf[:n])

    def read_up_to(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only if the input ends first."""
        while len(self._buf) < n and self._fill(n - len(self._buf)):
            pass
        return self._take(n)

    def readline(self, limit: int) -> bytes:
        """One line including its ``\\n``.

        Returns a result without ``\\n`` when the input ends first (possibly ``b""``) or when
        no ``\\n`` occurs within ``limit`` bytes (then ``limit + 1`` bytes are returned, so
        the caller can tell "too long" from "complete").
        """
        searched = 0
        while True:
            end = self._buf.find(b"\n", searched, limit + 1)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buf) > limit:
                return self._take(limit + 1)
            searched = len(self._buf)
            if not self._fill(_READ_BLOCK):
                return self._take(len(self._buf))
