"""The age v1 header: parse and encode, with no tolerance for alternative encodings.

    age-encryption.org/v1
    -> TYPE ARG ARG...          one stanza: arguments, then a base64 body
    BODY (64 columns per line, always ending with a shorter, possibly empty, line)
    --- MAC

Why so strict: the MAC is checked only after an identity has unwrapped the file key, and
recipients are tried on what the parser produced. If two byte strings could parse to the
same header (padding or no padding, non-zero trailing bits, CRLF or LF, a long line split
differently), an attacker could alter a file without breaking anything we check, and
different implementations could disagree about what a file means. So every field has
exactly one accepted encoding, and re-encoding a parsed header gives back the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from vault.errors import AgeError, AgeHeaderError

from ._io import ByteSource

INTRO = b"age-encryption.org/v1\n"
STANZA_PREFIX = b"->"
MAC_PREFIX = b"---"
MAC_SIZE = 32
COLUMNS_PER_LINE = 64
BYTES_PER_LINE = COLUMNS_PER_LINE // 4 * 3

#: DoS limit: the whole header (all stanzas) may not exceed this. About ten thousand X25519
#: recipients fit; without a bound a hostile file could make us buffer without end.
MAX_HEADER_BYTES = 1 << 20

_RAW_B64 = re.compile(rb"[A-Za-z0-9+/]*")


@dataclass
class Stanza:
    """One recipient stanza: its type, its arguments and its (decoded) body."""

    type: str
    args: list[str] = field(default_factory=list)
    body: bytes = b""


@dataclass
class Header:
    stanzas: list[Stanza]
    mac: bytes


def b64encode(data: bytes) -> str:
    """Standard base64 without padding, as every age header field uses."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str | bytes) -> bytes:
    """Strict inverse of :func:`b64encode`; ValueError for any other spelling of the data.

    Rejected: padding, characters outside the alphabet (including CR/LF, which Python's
    decoder would otherwise skip), and non-zero unused trailing bits. Each of those would be
    a second encoding of the same bytes.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not _RAW_B64.fullmatch(raw) or len(raw) % 4 == 1:
        raise ValueError("not canonical unpadded base64")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not canonical unpadded base64") from None
    if b64encode(data).encode("ascii") != raw:
        raise ValueError("not canonical unpadded base64")
    return data


def _is_valid_arg(arg: bytes) -> bool:
    """Arguments are non-empty runs of visible ASCII (no spaces: they separate arguments)."""
    return bool(arg) and all(33 <= c <= 126 for c in arg)


def encode_stanza(stanza: Stanza) -> bytes:
    words = [stanza.type, *stanza.args]
    encoded = [w.encode("ascii", "replace") for w in words]
    if not all(_is_valid_arg(w) for w in encoded):
        raise AgeError("a recipient produced a stanza with an invalid type or argument")
    body = b64encode(stanza.body)
    lines = [body[i : i + COLUMNS_PER_LINE] for i in range(0, len(body), COLUMNS_PER_LINE)]
    if len(body) % COLUMNS_PER_LINE == 0:
        lines.append("")  # the body always ends with a short line, even an empty one
    text = "-> " + " ".join(words) + "\n" + "".join(line + "\n" for line in lines)
    return text.encode("ascii")


def encode_header_without_mac(stanzas: list[Stanza]) -> bytes:
    """The bytes the header MAC covers: everything up to and including ``---``."""
    return INTRO + b"".join(encode_stanza(s) for s in stanzas) + MAC_PREFIX


def encode_header(header: Header) -> bytes:
    mac = b64encode(header.mac).encode("ascii")
    return encode_header_without_mac(header.stanzas) + b" " + mac + b"\n"


class _HeaderLines:
    """Reads LF-terminated header lines, enforcing the overall size budget."""

    def __init__(self, src: ByteSource) -> None:
        self._src = src
        self.consumed = bytearray()

    def next(self) -> bytes:
        """The next line without its LF; the LF is mandatory (no EOF-terminated lines)."""
        budget = MAX_HEADER_BYTES - len(self.consumed)
        line = self._src.readline(max(budget, 0))
        if not line.endswith(b"\n"):
            if len(line) > budget:
                raise AgeHeaderError("age header is too large")
            raise AgeHeaderError("age header is truncated")
        self.consumed += line
        return line[:-1]


def _parse_stanza(first: bytes, lines: _HeaderLines) -> Stanza:
    words = first.split(b" ")
    if words[0] != STANZA_PREFIX or len(words) < 2:
        raise AgeHeaderError("malformed stanza opening line in age header")
    if not all(_is_valid_arg(w) for w in words[1:]):
        raise AgeHeaderError("malformed stanza argument in age header")
    body = bytearray()
    while True:
        line = lines.next()
        if len(line) > COLUMNS_PER_LINE:
            raise AgeHeaderError("stanza body line longer than 64 columns in age header")
        try:
            body += b64decode(line)
        except ValueError:
            raise AgeHeaderError("malformed stanza body in age header") from None
        if len(line) < COLUMNS_PER_LINE:
            # A short line ends the stanza, so a body has exactly one line layout.
            break
    type_, *args = (w.decode("ascii") for w in words[1:])
    return Stanza(type_, args, bytes(body))


def parse_header(src: ByteSource) -> tuple[Header, bytes]:
    """Parse the header at the start of ``src``; leaves ``src`` at the first payload byte.

    Returns the header and the exact bytes its MAC covers (as read, up to ``---``).
    """
    lines = _HeaderLines(src)
    if lines.next() + b"\n" != INTRO:
        raise AgeHeaderError("not an age v1 file (unknown or missing version line)")
    stanzas: list[Stanza] = []
    while True:
        line = lines.next()
        if line.startswith(MAC_PREFIX):
            covered = bytes(lines.consumed[: len(lines.consumed) - len(line) - 1]) + MAC_PREFIX
            return Header(stanzas, _parse_mac_line(line)), covered
        stanzas.append(_parse_stanza(line, lines))


def _parse_mac_line(line: bytes) -> bytes:
    words = line.split(b" ")
    if words[0] != MAC_PREFIX or len(words) != 2:
        raise AgeHeaderError("malformed MAC line in age header")
    try:
        mac = b64decode(words[1])
    except ValueError:
        raise AgeHeaderError("malformed MAC in age header") from None
    if len(mac) != MAC_SIZE:
        raise AgeHeaderError("malformed MAC in age header")
    return mac
