"""C2SP signed notes with Ed25519 keys, and C2SP transparency-log checkpoints.

Specs: c2sp.org/signed-note (v1.0.0) and c2sp.org/tlog-checkpoint. Key strings follow Go's
golang.org/x/mod/sumdb/note, which the signed-note spec grew out of, so keys and notes made here
open there and the other way round (tests pin its published example byte for byte).

A signed note is text ending in a newline, a blank line, then one or more signature lines::

    <text, ending in "\\n">
    <empty line>
    — <key name> <base64(4-byte key ID || signature)>

(the dash is U+2014 EM DASH, then a space). The signature is over the text, final newline
included, blank line excluded.

Departures from Go, all stricter, written down here:
  * base64 must be canonical (unused bits zero, ``=`` padding) in signature lines, keys and
    checkpoint roots, so one note has one encoding;
  * the key-hash field of a key string must be 8 lowercase hex digits (what every tool writes);
  * every signature line from a known key is verified, even a repeat (the spec's MUST), where
    Go skips a second signature by the same key;
  * limits: :data:`MAX_NOTE_SIZE` and :data:`MAX_SIGNATURES` are checked before any signature;
  * checkpoint tree sizes above ``merkle.MAX_TREE_SIZE`` (2**63) are refused.

Messages may name a key (name and key ID) but never contain key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vault.log.errors import NoteError, SignatureError
from vault.log.merkle import HASH_SIZE, MAX_TREE_SIZE

#: DoS limit: a note (text and signatures, UTF-8) larger than this is refused unread
MAX_NOTE_SIZE = 1 << 20
#: DoS limit on signature lines in one note (the spec requires accepting at least 16; Go: 100)
MAX_SIGNATURES = 100
#: signature type byte of Ed25519 note signatures (c2sp.org/signed-note, "Signature types")
ALG_ED25519 = 0x01
#: bytes of the key ID at the start of every signature
KEY_ID_SIZE = 4
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
#: a signature line starts with U+2014 EM DASH and a space
SIGNATURE_PREFIX = "\u2014 "
#: signer key strings start with this, so a private key is never mistaken for a public one
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"

# ASCII control characters other than newline, forbidden anywhere in a note (spec, "Format").
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile("[0-9a-f]{8}")
# Tree size line: ASCII decimal, no leading zeros unless the size is 0 (tlog-checkpoint).
# The digit bound keeps int() cheap on hostile input; the value is then capped at
# merkle.MAX_TREE_SIZE (2**63), the largest tree our proofs handle (Go's tlog uses int64).
_TREE_SIZE = re.compile("0|[1-9][0-9]{0,19}")


def _short(value: str, limit: int = 64) -> str:
    """A bounded repr of untrusted text, for error messages."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _b64decode(text: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 section 4): canonical encoding or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty, with no Unicode space, no ``+`` (signed-note, "Format"), and,
    because they sit inside a note, no control characters and nothing that is not UTF-8."""
    if not isinstance(name, str) or not name:
        return False
    if any(c == "+" or c.isspace() or c < " " for c in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _check_key_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise NoteError("invalid key name: it must be non-empty, without spaces or '+'")


def key_id(name: str, alg_and_key: bytes) -> bytes:
    """SHA-256(key name || 0x0A || signature type || public key)[:4] (signed-note,
    "Signatures"); ``alg_and_key`` is the type byte followed by the public key."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + alg_and_key).digest()[:KEY_ID_SIZE]


# --- keys ---------------------------------------------------------------------------------------


class Verifier:
    """An Ed25519 note verifier: a key name and a public key.

    Its key string (Go's "verifier key") is ``<name>+<hex8 key ID>+<base64(0x01 || public key)>``.
    """

    __slots__ = ("name", "key_id", "_public_key", "_raw")

    def __init__(self, *, name: str, public_key: Ed25519PublicKey) -> None:
        _check_key_name(name)
        self.name = name
        self._public_key = public_key
        self._raw = public_key.public_bytes_raw()
        self.key_id = key_id(name, bytes([ALG_ED25519]) + self._raw)

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """A verifier from its key string; :class:`NoteError` if malformed or inconsistent."""
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise NoteError("malformed verifier key: expected name+keyid+key")
        name, hash_hex, key_b64 = parts
        _check_key_name(name)
        if not _HEX8.fullmatch(hash_hex):
            raise NoteError("malformed verifier key: key ID must be 8 lowercase hex digits")
        raw = _b64decode(key_b64)
        if raw is None or not raw:
            raise NoteError("malformed verifier key: key is not canonical base64")
        if raw[0] != ALG_ED25519:
            raise NoteError(f"verifier key for {_short(name)}: unknown signature type {raw[0]}")
        if len(raw) != 1 + ED25519_KEY_SIZE:
            raise NoteError(f"verifier key for {_short(name)}: Ed25519 key has the wrong size")
        if key_id(name, raw).hex() != hash_hex:
            raise NoteError(f"verifier key for {_short(name)}: key ID does not match the key")
        try:
            public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
        except ValueError as exc:
            raise NoteError(f"verifier key for {_short(name)}: not an Ed25519 key") from exc
        return cls(name=name, public_key=public_key)

    @property
    def public_key_bytes(self) -> bytes:
        return self._raw

    def key_string(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(bytes([ALG_ED25519]) + self._raw)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message`` (RFC 8032)."""
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            self._public_key.verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return (self.name, self.key_id, self._raw) == (other.name, other.key_id, other._raw)

    def __hash__(self) -> int:
        return hash((self.name, self.key_id, self._raw))

    def __repr__(self) -> str:
        return f"Verifier({self.name}+{self.key_id.hex()})"


class Signer:
    """An Ed25519 note signer: a key name and a private key. Keep it (and its key string) secret.

    Its key string is ``PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x01 || 32-byte seed)>``; the key
    ID is that of the *public* key, so the signer and its verifier agree on it.
    """

    __slots__ = ("name", "key_id", "_private_key", "_verifier")

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        self.name = name
        self._private_key = private_key
        self._verifier = Verifier(name=name, public_key=private_key.public_key())
        self.key_id = self._verifier.key_id

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """A signer from its key string; :class:`NoteError` (never quoting the key) if bad."""
        if not isinstance(skey, str) or not skey.startswith(PRIVATE_KEY_PREFIX):
            raise NoteError("malformed signer key: expected PRIVATE+KEY+name+keyid+key")
        parts = skey[len(PRIVATE_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError("malformed signer key: expected PRIVATE+KEY+name+keyid+key")
        name, hash_hex, key_b64 = parts
        _check_key_name(name)
        if not _HEX8.fullmatch(hash_hex):
            raise NoteError("malformed signer key: key ID must be 8 lowercase hex digits")
        raw = _b64decode(key_b64)
        if raw is None or not raw:
            raise NoteError("malformed signer key: key is not canonical base64")
        if raw[0] != ALG_ED25519:
            raise NoteError(f"signer key for {_short(name)}: unknown signature type")
        if len(raw) != 1 + ED25519_KEY_SIZE:
            raise NoteError(f"signer key for {_short(name)}: Ed25519 seed has the wrong size")
        signer = cls(name=name, private_key=Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id.hex() != hash_hex:
            raise NoteError(f"signer key for {_short(name)}: key ID does not match the key")
        return signer

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    def key_string(self) -> str:
        """The secret signer key string (see the class docstring)."""
        key = _b64encode(bytes([ALG_ED25519]) + self._private_key.private_bytes_raw())
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.key_id.hex()}+{key}"

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:  # never the key
        return f"Signer({self.name}+{self.key_id.hex()})"


def generate_signer(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key for ``name``: (signer key string - secret, verifier key string)."""
    signer = Signer(name=name, private_key=Ed25519PrivateKey.generate())
    return signer.key_string(), signer.verifier.key_string()


# --- notes --------------------------------------------------------------------------------------


def _check_text(text: str) -> bytes:
    """The note text as UTF-8, or :class:`NoteError` (signed-note, "Format")."""
    if not isinstance(text, str):
        raise NoteError("note text must be a string")
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _CONTROL.search(text):
        raise NoteError("note text contains a control character")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("note text is not valid UTF-8") from exc


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """``text`` signed by each of ``signers`` in order: the text, a blank line, one signature
    line per signer.

    Misuse (no signers, two with the same key, more than :data:`MAX_SIGNATURES`) raises
    ``ValueError``; text that could not make a valid note raises :class:`NoteError`.
    """
    message = _check_text(text)
    if not signers:
        raise ValueError("sign_note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise ValueError(f"at most {MAX_SIGNATURES} signers")
    keys = {(s.name, s.key_id) for s in signers}
    if len(keys) != len(signers):
        raise ValueError("two signers have the same key name and key ID")
    lines = [
        f"{SIGNATURE_PREFIX}{s.name} {_b64encode(s.key_id + s.sign(message))}\n" for s in signers
    ]
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise NoteError(f"signed note would be larger than {MAX_NOTE_SIZE} bytes")
    return note


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


def _parse_note(note: str | bytes) -> tuple[str, list[_SignatureLine]]:
    """Split a note into text and signature lines, checking the format only."""
    if isinstance(note, bytes | bytearray | memoryview):
        raw = bytes(note)
        if len(raw) > MAX_NOTE_SIZE:
            raise NoteError(f"note is larger than {MAX_NOTE_SIZE} bytes")
        try:
            note = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    elif isinstance(note, str):
        if len(note) > MAX_NOTE_SIZE:  # each character is at least one byte
            raise NoteError(f"note is larger than {MAX_NOTE_SIZE} bytes")
        try:
            size = len(note.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
        if size > MAX_NOTE_SIZE:
            raise NoteError(f"note is larger than {MAX_NOTE_SIZE} bytes")
    else:
        raise NoteError("note must be text")
    if _CONTROL.search(note):
        raise NoteError("note contains a control character")

    # The text ends at the last blank line; signature lines cannot contain one.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("note has no signature lines, or its last line is unterminated")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")

    parsed: list[_SignatureLine] = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"signature line {number} does not start with an em dash and space")
        name, _, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not is_valid_key_name(name):
            raise NoteError(f"signature line {number} has an invalid key name")
        blob = _b64decode(b64)
        if blob is None or len(blob) <= KEY_ID_SIZE:
            raise NoteError(f"signature line {number} has a malformed signature")
        parsed.append(_SignatureLine(name, blob[:KEY_ID_SIZE], blob[KEY_ID_SIZE:]))
    return text, parsed


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> tuple[str, list[Verifier]]:
    """Parse and verify a signed note: (its text, the known keys whose signatures verified).

    Following signed-note "Signatures": a signature whose (key name, key ID) matches no known
    verifier is ignored; one that matches is verified, and if it fails the whole note is
    rejected (:class:`SignatureError`); if no known key signed it, :class:`SignatureError`.
    A malformed note is a :class:`NoteError`, found before any signature is checked.
    Two different ``verifiers`` with the same name and key ID are a ``ValueError``.
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        previous = known.setdefault((v.name, v.key_id), v)
        if previous != v:
            raise ValueError(f"ambiguous verifiers: two keys named {v.name}+{v.key_id.hex()}")

    text, lines = _parse_note(note)
    message = text.encode("utf-8")
    verified: list[Verifier] = []
    for line in lines:
        verifier = known.get((line.name, line.key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, line.signature):
            raise SignatureError(
                f"signature by known key {verifier.name}+{verifier.key_id.hex()} does not verify"
            )
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        raise SignatureError("note has no verified signature from a known key")
    return text, verified


# --- checkpoints --------------------------------------------------------------------------------


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise NoteError(f"checkpoint {what} must be a non-empty string")
    if "\n" in value or _CONTROL.search(value):
        raise NoteError(f"checkpoint {what} must be one line without control characters")


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head as c2sp.org/tlog-checkpoint note text::

        <origin>
        <tree size, decimal>
        <base64 root hash>
        [<extension line>...]

    ``origin`` identifies the log (the spec recommends a schema-less URL, and that the log's key
    name match it, but clients must not rely on either). Extension lines are opaque, non-empty
    and not recommended.
    """

    origin: str
    size: int
    root: bytes
    extensions: Sequence[str] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("checkpoint size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError("checkpoint size is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise NoteError(f"checkpoint root must be {HASH_SIZE} bytes")
        if isinstance(self.extensions, str):
            raise NoteError("checkpoint extensions must be a sequence of lines")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            _check_line(line, "extension line")

    def to_text(self) -> str:
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Strictly parse checkpoint note text (the text of an opened note)."""
        if not isinstance(text, str):
            raise NoteError("checkpoint must be text")
        if len(text) > MAX_NOTE_SIZE:
            raise NoteError(f"checkpoint is larger than {MAX_NOTE_SIZE} bytes")
        if not text.endswith("\n"):
            raise NoteError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, size and root lines")
        origin, size_line, root_line, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_line):
            raise NoteError(f"checkpoint size {_short(size_line)} is not a canonical decimal")
        root = _b64decode(root_line)
        if root is None or len(root) != HASH_SIZE:
            raise NoteError(f"checkpoint root is not {HASH_SIZE} bytes of canonical base64")
        return cls(origin=origin, size=int(size_line), root=root, extensions=extensions)


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a note signed by ``signer``."""
    return sign_note(checkpoint.to_text(), [signer])


def verify_checkpoint(
    note: str | bytes, verifier: Verifier, origin: str | None = None
) -> Checkpoint:
    """Open a checkpoint note signed by ``verifier`` and parse it; with ``origin``, also require
    that the checkpoint is from that log. Raises :class:`SignatureError` / :class:`NoteError`.
    """
    text, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(
            f"checkpoint origin {_short(checkpoint.origin)} is not the expected {_short(origin)}"
        )
    return checkpoint
