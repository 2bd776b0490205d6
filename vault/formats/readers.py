"""One entry point for every reader: ``read_source(source, path, ...)`` -> items and records."""

from __future__ import annotations

from pathlib import Path

from vault.errors import InvalidInput
from vault.formats.items import PortableItem, PortableRecord

SOURCES = ("bitwarden", "keepass", "pass", "csv")


def read_source(
    source: str,
    path: Path,
    *,
    passphrase: str | None = None,
    keyfile: Path | None = None,
    mapping: Path | None = None,
    preset: str | None = None,
) -> tuple[list[PortableItem], list[PortableRecord]]:
    """Read ``path`` as ``source``; raises :class:`vault.errors.FormatError` when it cannot."""
    if source == "bitwarden":
        from vault.formats import bitwarden

        return bitwarden.read(path), []
    if source == "keepass":
        from vault.formats import keepass

        return keepass.read(path, passphrase=passphrase, keyfile=keyfile), []
    if source == "pass":
        from vault.formats.passstore import read as read_pass

        return read_pass(path), []
    if source == "csv":
        from vault.formats.csv_ import read as read_csv

        return read_csv(path, mapping=mapping, preset=preset)
    raise InvalidInput(f"source must be one of: {', '.join(SOURCES)}", field="source")
