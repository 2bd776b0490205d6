"""Loader for the C2SP age test vectors in tests/vectors/age (format: its README.md)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

VECTOR_DIR = Path(__file__).resolve().parent.parent / "vectors" / "age"

EXPECTATIONS = frozenset(
    {"success", "no match", "HMAC failure", "header failure", "payload failure", "armor failure"}
)
_KNOWN_KEYS = frozenset(
    {"expect", "payload", "file key", "identity", "passphrase", "armored", "compressed", "comment"}
)


@dataclass
class Vector:
    name: str
    expect: str
    data: bytes
    payload_sha256: bytes | None = None
    file_key: bytes | None = None
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False
    comment: str = ""
    unknown_keys: list[str] = field(default_factory=list)

    @property
    def post_quantum(self) -> bool:
        """Uses hybrid (ML-KEM) keys, which this implementation does not support."""
        return (
            self.name.startswith("hybrid")
            or self.name == "armor_hybrid"
            or any(i.startswith(("AGE-SECRET-KEY-PQ-", "AGE-PLUGIN-")) for i in self.identities)
        )


def vector_names() -> list[str]:
    return sorted(p.name for p in VECTOR_DIR.iterdir() if p.is_file() and p.name != "README.md")


def load_vector(name: str) -> Vector:
    raw = (VECTOR_DIR / name).read_bytes()
    fields: list[tuple[str, str]] = []
    rest = raw
    while True:
        line, sep, rest = rest.partition(b"\n")
        if not sep:
            raise ValueError(f"vector {name}: no blank line before the age file")
        if not line:
            break
        key, _, value = line.decode("utf-8").partition(": ")
        fields.append((key, value))

    values = dict(fields)
    if values.get("expect") not in EXPECTATIONS:
        raise ValueError(f"vector {name}: unknown expectation {values.get('expect')!r}")
    compressed = values.get("compressed")
    if compressed not in (None, "zlib"):
        raise ValueError(f"vector {name}: unknown compression {compressed!r}")
    data = zlib.decompress(rest) if compressed == "zlib" else rest
    return Vector(
        name=name,
        expect=values["expect"],
        data=data,
        payload_sha256=bytes.fromhex(values["payload"]) if "payload" in values else None,
        file_key=bytes.fromhex(values["file key"]) if "file key" in values else None,
        identities=[v for k, v in fields if k == "identity"],
        passphrases=[v for k, v in fields if k == "passphrase"],
        armored=values.get("armored") == "yes",
        comment=values.get("comment", ""),
        unknown_keys=[k for k, _ in fields if k not in _KNOWN_KEYS],
    )
