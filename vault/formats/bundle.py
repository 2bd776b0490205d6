"""The export bundle's manifest, and offline verification of a bundle (pure: no database).

docs/export-format.md is the specification. A bundle is an age file whose plaintext is one JSON
document (``custody-export/v1``); beside it travels a **manifest**, a c2sp.org/signed-note
signed with the vault's Ed25519 log key, whose text is::

    custody-export-manifest/v1
    client <client name>
    client-id <client id>
    created <UTC time, RFC 3339>
    mode online | offline
    format custody-export/v1
    history yes | no
    count <kind> <n>            (one line per kind, in KINDS order)
    sha256 <hex SHA-256 of the plaintext JSON>
    size <bytes of the plaintext JSON>
    checkpoint <tree size> <base64 root> | checkpoint none

An offline bundle (``custody takeover offline``: made from a database copy, without the sealed
log key) carries the same text with no signature; :func:`verify_bundle` accepts it only when
asked to (``allow_unsigned``) and says so in its result.

Verification raises one error class, :class:`vault.errors.VerificationFailed`, whose ``check``
names what failed. It never quotes plaintext: only kinds, counts, sizes and key names.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from vault.crypto import age
from vault.errors import AgeError, AgeNoIdentityMatch, VerificationFailed
from vault.log.errors import NoteError, SignatureError
from vault.log.note import Checkpoint, Signer, Verifier, open_note, sign_note, verify_checkpoint

FORMAT = "custody-export/v1"
MANIFEST_HEADER = "custody-export-manifest/v1"
#: the record kinds counted in a manifest, in the order of its lines
KINDS = (
    "contacts",
    "recipients",
    "vendors",
    "domains",
    "assets",
    "secrets",
    "versions",
    "links",
)
MODES = ("online", "offline")
#: a manifest is a few hundred bytes; refuse anything absurd before parsing it
MAX_MANIFEST_BYTES = 64 * 1024
#: decrypted content up to this size stays in memory while it is checked, then a temp file
SPOOL_BYTES = 16 * 1024 * 1024

_HEX64 = re.compile("[0-9a-f]{64}")
_COUNT = re.compile("0|[1-9][0-9]{0,15}")


@dataclass(frozen=True)
class Manifest:
    """What a manifest says about its bundle."""

    client_name: str
    client_id: str
    created: str
    mode: str
    history: bool
    counts: dict[str, int]
    sha256: str
    size: int
    checkpoint_size: int | None = None
    checkpoint_root: str | None = None
    format: str = FORMAT

    def to_text(self) -> str:
        lines = [
            MANIFEST_HEADER,
            f"client {self.client_name}",
            f"client-id {self.client_id}",
            f"created {self.created}",
            f"mode {self.mode}",
            f"format {self.format}",
            f"history {'yes' if self.history else 'no'}",
            *(f"count {kind} {self.counts.get(kind, 0)}" for kind in KINDS),
            f"sha256 {self.sha256}",
            f"size {self.size}",
            (
                f"checkpoint {self.checkpoint_size} {self.checkpoint_root}"
                if self.checkpoint_size is not None
                else "checkpoint none"
            ),
        ]
        return "\n".join(lines) + "\n"

    def sign(self, signer: Signer) -> str:
        """The manifest as a signed note (what an online export writes)."""
        return sign_note(self.to_text(), [signer])

    @classmethod
    def parse_text(cls, text: str) -> Manifest:
        """Parse manifest text (without signatures); VerificationFailed("manifest") if bad."""

        def bad(why: str) -> VerificationFailed:
            return VerificationFailed("manifest", why)

        if not text.endswith("\n"):
            raise bad("the manifest text does not end with a newline")
        lines = text[:-1].split("\n")
        if not lines or lines[0] != MANIFEST_HEADER:
            raise bad(f"not a {MANIFEST_HEADER} manifest")
        values: dict[str, str] = {}
        counts: dict[str, int] = {}
        for number, line in enumerate(lines[1:], start=2):
            key, _, value = line.partition(" ")
            if not value:
                raise bad(f"line {number} has no value")
            if key == "count":
                kind, _, n = value.partition(" ")
                if kind not in KINDS or kind in counts or not _COUNT.fullmatch(n):
                    raise bad(f"line {number} is not a valid count")
                counts[kind] = int(n)
            elif key in values:
                raise bad(f"line {number} repeats {key!r}")
            else:
                values[key] = value
        needed = ("client", "client-id", "created", "mode", "format", "history", "sha256")
        for key in (*needed, "size", "checkpoint"):
            if key not in values:
                raise bad(f"the manifest has no {key!r} line")
        unknown = sorted(set(values) - {*needed, "size", "checkpoint"})
        if unknown:
            raise bad(f"unknown manifest line {unknown[0]!r}")
        if set(counts) != set(KINDS):
            missing = ", ".join(sorted(set(KINDS) - set(counts)))
            raise bad(f"the manifest lacks counts for {missing}")
        if values["mode"] not in MODES:
            raise bad("mode must be online or offline")
        if values["history"] not in ("yes", "no"):
            raise bad("history must be yes or no")
        if not _HEX64.fullmatch(values["sha256"]):
            raise bad("sha256 must be 64 lowercase hex digits")
        if not _COUNT.fullmatch(values["size"]):
            raise bad("size must be a decimal number")
        cp_size: int | None = None
        cp_root: str | None = None
        if values["checkpoint"] != "none":
            size_text, _, root = values["checkpoint"].partition(" ")
            if not _COUNT.fullmatch(size_text) or not root or " " in root:
                raise bad("checkpoint must be `<size> <root>` or `none`")
            cp_size, cp_root = int(size_text), root
        return cls(
            client_name=values["client"],
            client_id=values["client-id"],
            created=values["created"],
            mode=values["mode"],
            history=values["history"] == "yes",
            counts=counts,
            sha256=values["sha256"],
            size=int(values["size"]),
            checkpoint_size=cp_size,
            checkpoint_root=cp_root,
            format=values["format"],
        )


def content_schema() -> dict[str, Any]:
    """The JSON Schema of the content (``vault/formats/export_schema.json``, package data)."""
    from importlib import resources

    text = resources.files("vault.formats").joinpath("export_schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def split_manifest(manifest: str | bytes) -> tuple[str, bool]:
    """(manifest text, whether it carries signature lines). A signed note ends in a blank line
    and signature lines; an unsigned (offline) manifest is the text alone."""
    if isinstance(manifest, bytes):
        if len(manifest) > MAX_MANIFEST_BYTES:
            raise VerificationFailed("manifest", f"larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            manifest = manifest.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationFailed("manifest", "not UTF-8 text") from None
    if len(manifest) > MAX_MANIFEST_BYTES:
        raise VerificationFailed("manifest", f"larger than {MAX_MANIFEST_BYTES} bytes")
    split = manifest.rfind("\n\n")
    if split < 0:
        return manifest, False
    return manifest[: split + 1], True


@dataclass(frozen=True)
class VerifiedBundle:
    """What :func:`verify_bundle` established."""

    manifest: Manifest
    #: "signed" (by the pinned key, or by the key the bundle names), or "unsigned" (offline)
    signature: str
    key_pinned: bool
    verifier_key: str | None
    checkpoint: Checkpoint | None
    counts: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "ok": True,
            "client": {"id": m.client_id, "name": m.client_name},
            "created": m.created,
            "mode": m.mode,
            "history": m.history,
            "signature": self.signature,
            "key_pinned": self.key_pinned,
            "verifier_key": self.verifier_key,
            "sha256": m.sha256,
            "size": m.size,
            "counts": dict(self.counts),
            "checkpoint": (
                {"size": self.checkpoint.size, "origin": self.checkpoint.origin}
                if self.checkpoint is not None
                else None
            ),
            "warnings": list(self.warnings),
        }


def count_records(content: dict[str, Any]) -> dict[str, int]:
    """The manifest's counts, recomputed from a decoded content document."""
    secrets = content.get("secrets") or []
    client = content.get("client") or {}
    return {
        "contacts": len(client.get("contacts") or []),
        "recipients": len(content.get("recipients") or []),
        "vendors": len(content.get("vendors") or []),
        "domains": len(content.get("domains") or []),
        "assets": len(content.get("assets") or []),
        "secrets": len(secrets),
        "versions": sum(
            len(s.get("history") or []) if s.get("history") is not None else 1 for s in secrets
        ),
        "links": sum(len(s.get("links") or []) for s in secrets),
    }


def _verifier(key: str, what: str) -> Verifier:
    try:
        return Verifier.parse(key)
    except NoteError as exc:
        raise VerificationFailed("key", f"{what} is not a valid verifier key ({exc})") from None


def _check_signature(manifest: str, verifier: Verifier) -> None:
    try:
        open_note(manifest, [verifier])
    except SignatureError:
        raise VerificationFailed(
            "signature",
            f"the manifest is not signed by {verifier.name}+{verifier.key_id.hex()}",
        ) from None
    except NoteError as exc:
        raise VerificationFailed("manifest", f"not a valid signed note ({exc})") from None


def decrypt_content(
    bundle: BinaryIO, identities: Sequence[age.Identity], spool: IO[bytes]
) -> tuple[str, int]:
    """Decrypt ``bundle`` into ``spool``: (hex SHA-256, size) of the plaintext."""
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in age.decrypt_from(bundle, identities):
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
    except AgeNoIdentityMatch:
        raise VerificationFailed(
            "decrypt", "the bundle is not encrypted to any of the given identities"
        ) from None
    except AgeError as exc:
        raise VerificationFailed("decrypt", f"the bundle does not decrypt ({exc.code})") from None
    return digest.hexdigest(), size


def verify_bundle(
    bundle: BinaryIO,
    manifest: str | bytes,
    identities: Sequence[age.Identity],
    *,
    verifier_key: str | None = None,
    allow_unsigned: bool = False,
) -> VerifiedBundle:
    """Check a bundle against its manifest, offline. In order: the manifest's form; its
    signature (by ``verifier_key`` when pinned); the bundle decrypts with ``identities``; the
    plaintext's SHA-256 and size; the content's format and client; each record kind's count;
    the embedded log checkpoint's signature and that it is the one the manifest names.

    Without a pinned key the manifest's signature is checked (before anything it states is
    relied on) against the verifier key the bundle itself carries, which proves integrity but
    not origin: the result says ``key_pinned: False`` and warns.
    """
    verified, _content = open_bundle(
        bundle, manifest, identities, verifier_key=verifier_key, allow_unsigned=allow_unsigned
    )
    return verified


def open_bundle(
    bundle: BinaryIO,
    manifest: str | bytes,
    identities: Sequence[age.Identity],
    *,
    verifier_key: str | None = None,
    allow_unsigned: bool = False,
) -> tuple[VerifiedBundle, dict[str, Any]]:
    """:func:`verify_bundle`, and the content it verified: for a command that goes on to use
    the records (a runbook, a KeePass file, an adoption), decrypted once."""
    text, signed = split_manifest(manifest)
    parsed = Manifest.parse_text(text)
    if parsed.format != FORMAT:
        raise VerificationFailed("manifest", f"unsupported format {parsed.format!r}")
    if not signed and not allow_unsigned:
        raise VerificationFailed(
            "signature",
            "the manifest is unsigned (an offline bundle); accept it explicitly "
            "(--allow-unsigned) if you made it yourself",
        )
    if signed and parsed.mode != "online":
        raise VerificationFailed("manifest", "an offline manifest cannot carry a signature")
    if not signed and parsed.mode != "offline":
        raise VerificationFailed("signature", "an online export's manifest must be signed")
    full = manifest if isinstance(manifest, str) else manifest.decode("utf-8")
    pinned = _verifier(verifier_key, "the pinned key") if verifier_key else None
    if signed and pinned is not None:
        _check_signature(full, pinned)

    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        sha256, size = decrypt_content(bundle, identities, spool)
        if pinned is not None or not signed:
            _check_digest(parsed, sha256, size)
        content = _parsed_content(spool)
    if content is None:
        _check_digest(parsed, sha256, size)
        raise VerificationFailed("content", f"the decrypted content is not {FORMAT} JSON")
    verified = _check_content(content, parsed, full, signed, pinned, (sha256, size))
    return verified, content


def read_content(bundle: BinaryIO, identities: Sequence[age.Identity]) -> dict[str, Any]:
    """A bundle's content with no manifest to check it against: decrypted and parsed, nothing
    more (the caller says that nothing was verified)."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        decrypt_content(bundle, identities, spool)
        content = _parsed_content(spool)
    if content is None:
        raise VerificationFailed("content", f"the decrypted content is not {FORMAT} JSON")
    return content


def _parsed_content(spool: IO[bytes]) -> dict[str, Any] | None:
    """The JSON document in ``spool`` when it is a custody-export/v1 one, else None."""
    spool.seek(0)
    try:
        content = json.load(spool)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        return None
    return content


def _check_digest(parsed: Manifest, sha256: str, size: int) -> None:
    if sha256 != parsed.sha256:
        raise VerificationFailed("hash", "the content's SHA-256 differs from the manifest's")
    if size != parsed.size:
        raise VerificationFailed("size", f"the content is {size} bytes, not {parsed.size}")


def _check_content(
    content: dict[str, Any],
    parsed: Manifest,
    full: str,
    signed: bool,
    pinned: Verifier | None,
    digest: tuple[str, int],
) -> VerifiedBundle:
    log = content.get("log") or {}
    embedded_key = log.get("verifier_key") if isinstance(log, dict) else None
    verifier = pinned
    warnings: list[str] = []
    if verifier is None and isinstance(embedded_key, str):
        verifier = _verifier(embedded_key, "the bundle's log key")
        warnings.append(
            "the log key was taken from the bundle itself: pin the vault's key (--key) to "
            "prove the bundle came from that vault"
        )
    elif (
        pinned is not None
        and isinstance(embedded_key, str)
        and embedded_key != (pinned.key_string())
    ):
        warnings.append("the bundle names a different log key than the pinned one")
    if signed:
        if verifier is None:
            raise VerificationFailed("signature", "no key to check the signature with")
        if pinned is None:
            _check_signature(full, verifier)
    else:
        warnings.append("the manifest is unsigned (offline bundle): nothing proves its origin")
    _check_digest(parsed, *digest)

    client = content.get("client")
    if not isinstance(client, dict) or client.get("id") != parsed.client_id:
        raise VerificationFailed("client", "the content is about another client than the manifest")
    if client.get("name") != parsed.client_name:
        raise VerificationFailed("client", "the client's name differs from the manifest's")
    if content.get("mode") != parsed.mode:
        raise VerificationFailed("content", "the content's mode differs from the manifest's")
    counts = count_records(content)
    for kind in KINDS:
        if counts[kind] != parsed.counts[kind]:
            raise VerificationFailed(
                "counts",
                f"{kind}: the content has {counts[kind]}, the manifest says {parsed.counts[kind]}",
            )

    checkpoint = None
    note = log.get("checkpoint") if isinstance(log, dict) else None
    if note is not None:
        if not isinstance(note, str):
            raise VerificationFailed("checkpoint", "the embedded checkpoint is not a signed note")
        if verifier is None:
            raise VerificationFailed("checkpoint", "no log key to check the checkpoint with")
        try:
            checkpoint = verify_checkpoint(note, verifier)
        except NoteError as exc:
            raise VerificationFailed(
                "checkpoint", f"the embedded checkpoint does not verify ({exc.code})"
            ) from None
        root = _b64(checkpoint.root)
        if (parsed.checkpoint_size, parsed.checkpoint_root) != (checkpoint.size, root):
            raise VerificationFailed(
                "checkpoint", "the embedded checkpoint is not the one the manifest names"
            )
    elif parsed.checkpoint_size is not None:
        raise VerificationFailed("checkpoint", "the manifest names a checkpoint the content lacks")
    return VerifiedBundle(
        manifest=parsed,
        signature="signed" if signed else "unsigned",
        key_pinned=pinned is not None,
        verifier_key=verifier.key_string() if verifier is not None else None,
        checkpoint=checkpoint,
        counts=counts,
        warnings=tuple(warnings),
    )


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode("ascii")
