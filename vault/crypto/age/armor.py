"""ASCII armor: PEM with type "AGE ENCRYPTED FILE", 64 columns, no headers, strict base64.

Strictness matters here for the same reason as in the header: one file should have one
armored form (apart from what text tools routinely change: CRLF line endings and
whitespace around the block). So lines are exactly 64 columns except the last, the
base64 is padded and canonical, and nothing but whitespace may surround the block.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Callable

from vault.errors import AgeArmorError

from ._io import ByteSource

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
COLUMNS_PER_LINE = 64
BYTES_PER_LINE = COLUMNS_PER_LINE // 4 * 3

#: DoS limit on the whitespace tolerated before and after the armored block.
MAX_WHITESPACE = 1024
# A longer line cannot be valid armor; stop buffering there.
_MAX_LINE = MAX_WHITESPACE + 2

_PADDED_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def looks_armored(head: bytes) -> bool:
    """Whether input starting with ``head`` should be read as armor rather than binary.

    A binary age file always starts with its version line. Anything else is read as armor
    if a PEM-style dash run appears within the whitespace the armor format tolerates, so a
    damaged armor block is reported as an armor problem, not as a garbled header.
    """
    if head.startswith(b"age-encryption.org/"):
        return False
    return b"-----" in head[: MAX_WHITESPACE + len(BEGIN)]


def _strict_b64decode(line: bytes) -> bytes:
    if len(line) % 4 or not _PADDED_B64.fullmatch(line):
        raise AgeArmorError("invalid base64 in armored age file")
    try:
        data = base64.b64decode(line, validate=True)
    except binascii.Error:
        raise AgeArmorError("invalid base64 in armored age file") from None
    if base64.b64encode(data) != line:  # non-zero padding bits: a second encoding
        raise AgeArmorError("non-canonical base64 in armored age file")
    return data


class ArmorWriter:
    """Streams armored output to ``sink``; buffers less than one line of input."""

    def __init__(self, sink: Callable[[bytes], object]) -> None:
        self._sink = sink
        self._pending = bytearray()
        self._closed = False
        sink(BEGIN + b"\n")

    def write(self, data: bytes) -> None:
        self._pending += data
        full = len(self._pending) // BYTES_PER_LINE * BYTES_PER_LINE
        if full:
            self._emit(bytes(self._pending[:full]))
            del self._pending[:full]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pending:
            self._emit(bytes(self._pending))
        self._sink(END + b"\n")

    def _emit(self, data: bytes) -> None:
        text = base64.b64encode(data)
        lines = [text[i : i + COLUMNS_PER_LINE] for i in range(0, len(text), COLUMNS_PER_LINE)]
        self._sink(b"".join(line + b"\n" for line in lines))


def armor(data: bytes) -> bytes:
    out: list[bytes] = []
    writer = ArmorWriter(out.append)
    writer.write(data)
    writer.close()
    return b"".join(out)


class ArmorReader:
    """Decodes armor incrementally: ``read(n)`` returns decoded bytes, ``b""`` at the end.

    Raises AgeArmorError as soon as the armor is found invalid, including for garbage after
    the END line, which is only looked at once the caller reads past the last byte.
    """

    def __init__(self, src: ByteSource) -> None:
        self._src = src
        self._started = False
        self._finished = False
        self._pending = bytearray()

    def read(self, n: int) -> bytes:
        while len(self._pending) < n and not self._finished:
            self._decode_line()
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def _line(self) -> bytes:
        raw = self._src.readline(_MAX_LINE)
        if not raw:
            raise AgeArmorError("armored age file ends without its END line")
        if not raw.endswith(b"\n") and len(raw) > _MAX_LINE:
            raise AgeArmorError("line too long in armored age file")
        # LF or CRLF, nothing else: trailing spaces would be a second encoding.
        return raw.removesuffix(b"\n").removesuffix(b"\r")

    def _start(self) -> None:
        skipped = 0
        while True:
            line = self._line()
            if line.strip():
                break
            skipped += len(line) + 1
            if skipped > MAX_WHITESPACE:
                raise AgeArmorError("too much whitespace before armored age file")
        if line != BEGIN:
            raise AgeArmorError("armored age file does not start with its BEGIN line")
        self._started = True

    def _decode_line(self) -> None:
        if not self._started:
            self._start()
        line = self._line()
        if line == END:
            self._finish()
            return
        if not line:
            # The writer never produces an empty line (not even after a full last line).
            raise AgeArmorError("empty line in armored age file")
        if len(line) > COLUMNS_PER_LINE:
            raise AgeArmorError("line longer than 64 columns in armored age file")
        data = _strict_b64decode(line)
        self._pending += data
        if len(data) < BYTES_PER_LINE:
            # Only the last line may be short, so the END line must follow.
            if self._line() != END:
                raise AgeArmorError("short line in the middle of armored age file")
            self._finish()

    def _finish(self) -> None:
        trailing = self._src.read_up_to(MAX_WHITESPACE)
        if trailing.strip():
            raise AgeArmorError("unexpected data after armored age file")
        if len(trailing) >= MAX_WHITESPACE:
            raise AgeArmorError("too much whitespace after armored age file")
        self._finished = True


def dearmor(data: bytes) -> bytes:
    """Decode a whole armored file (strictly); AgeArmorError if it is not valid armor."""
    # Ask for more than the input could decode to, so the reader checks through the end.
    return ArmorReader(ByteSource(io.BytesIO(data).read)).read(len(data) + 1)
