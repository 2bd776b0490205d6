"""Reader for KeePass files: KDBX 4 (and 3.1) through pykeepass, and KeePass 2 XML exports.

pykeepass decrypts the container and the protected values; the entries are then read here from
its XML tree with plain lxml iteration (one pass, no XPath per entry), the same walk as for an
XML export. Mapping (docs/import.md):

- Title, UserName, Password, URL, Notes, Tags -> the item's fields; the group path below the
  root -> ``group`` and, for files not written by Custody, also tags; the recycle bin is
  skipped.
- ``otp`` (KeePassXC, an ``otpauth://`` URI) or ``TOTP Seed`` (older KeePassXC) -> a separate
  ``totp`` item "<title> TOTP" with the login's links; an entry with only an OTP is a ``totp``
  item itself.
- ``<History>`` -> ``history`` (oldest first), each with its modification time.
- ``custody:kind`` / ``custody:vendor`` / ``custody:domains`` / ``custody:assets`` (written by
  Custody) -> kind and links. Without them the kind is guessed: an entry with no password but
  notes is a ``note``; a group named like "SSH", "API" or "License(s)" gives that kind.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vault.errors import FormatError
from vault.formats.common import (
    FIELD_ASSETS,
    FIELD_DOMAINS,
    FIELD_KIND,
    FIELD_VENDOR,
    KINDS,
    MAX_FILE_BYTES,
    MAX_ITEMS,
    split_list,
    split_totp,
)
from vault.formats.items import PortableItem, PortableVersion

KDBX_SIGNATURE = b"\x03\xd9\xa2\x9a\x67\xfb\x4b\xb5"
_EPOCH_0001 = datetime(1, 1, 1, tzinfo=UTC)
STANDARD_FIELDS = ("Title", "UserName", "Password", "URL", "Notes")
_GROUP_KINDS = (("ssh", "ssh-key"), ("api", "api-key"), ("licen", "license"))


def read(
    path: Path, *, passphrase: str | None = None, keyfile: Path | None = None
) -> list[PortableItem]:
    """Items of a KDBX file (needs the passphrase and/or key file) or a KeePass 2 XML export.
    Raises :class:`FormatError` (never naming a value) when the file cannot be read."""
    head = _head(path)
    if head.startswith(KDBX_SIGNATURE):
        return list(items_of_tree(_open_kdbx(path, passphrase, keyfile)))
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"<?xml", b"<KeePassFile")):
        return list(items_of_tree(_parse_xml(path)))
    raise FormatError("not a KeePass file (neither KDBX nor KeePass 2 XML)", origin=path.name)


def _head(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FormatError(f"the file is larger than {MAX_FILE_BYTES} bytes", origin=path.name)
        with path.open("rb") as fh:
            return fh.read(64)
    except OSError as exc:
        raise FormatError(f"cannot read the file: {exc.strerror}", origin=path.name) from None


def _open_kdbx(path: Path, passphrase: str | None, keyfile: Path | None) -> Any:
    from pykeepass import PyKeePass
    from pykeepass.exceptions import CredentialsError

    if not passphrase and keyfile is None:
        raise FormatError("a KDBX file needs its passphrase or key file", origin=path.name)
    try:
        kp = PyKeePass(
            str(path), password=passphrase or None, keyfile=str(keyfile) if keyfile else None
        )
        return kp.tree
    except CredentialsError:
        raise FormatError("wrong passphrase or key file", origin=path.name) from None
    except Exception:  # noqa: BLE001 - pykeepass/construct raise many kinds; say it once
        raise FormatError(
            "not a readable KDBX file (damaged or unsupported)", origin=path.name
        ) from None


def _parse_xml(path: Path) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        return etree.parse(str(path), parser)
    except (etree.XMLSyntaxError, OSError, ValueError):
        raise FormatError("not well-formed XML", origin=path.name) from None


def _text(element: Any) -> str:
    return element.text or "" if element is not None else ""


def parse_time(text: str | None) -> datetime | None:
    """A KeePass time: base64 seconds since 0001-01-01 (KDBX 4) or ISO 8601 (XML, KDBX 3)."""
    if not text:
        return None
    text = text.strip()
    try:
        if text[:4].isdigit() and "-" in text:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        raw = base64.b64decode(text, validate=True)
        if len(raw) != 8:
            return None
        return _EPOCH_0001 + timedelta(seconds=struct.unpack("<q", raw)[0])
    except (ValueError, binascii.Error, OverflowError, struct.error):
        return None


def items_of_tree(tree: Any) -> Iterator[PortableItem]:
    """Walk a KeePass XML tree (decrypted): every entry outside the recycle bin."""
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    if root is None or root.tag != "KeePassFile":
        raise FormatError("not a KeePass document (no KeePassFile element)", origin="the file")
    recycle = _text(root.find("Meta/RecycleBinUUID"))
    top = root.find("Root/Group")
    if top is None:
        return
    count = 0
    stack: list[tuple[Any, tuple[str, ...]]] = [(top, ())]
    while stack:
        group, path = stack.pop()
        for child in group:
            if child.tag == "Group":
                uid = _text(child.find("UUID"))
                if recycle and uid == recycle and recycle != "AAAAAAAAAAAAAAAAAAAAAA==":
                    continue
                stack.append((child, (*path, _text(child.find("Name")) or "Group")))
            elif child.tag == "Entry":
                count += 1
                if count > MAX_ITEMS:
                    raise FormatError(f"more than {MAX_ITEMS} entries", origin="the file")
                yield from entry_items(child, path)


def _fields(entry: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """One pass over an entry's children: its strings by key, and its other children by tag
    (``find`` per field costs more than the whole walk for 10,000 entries)."""
    strings: dict[str, str] = {}
    others: dict[str, Any] = {}
    for element in entry:
        tag = element.tag
        if tag == "String":
            key = value = None
            for part in element:
                if part.tag == "Key":
                    key = part.text
                elif part.tag == "Value":
                    value = part.text
            if key:
                strings[key] = value or ""
        elif isinstance(tag, str):
            others[tag] = element
    return strings, others


def _times_of(times: Any) -> tuple[datetime | None, datetime | None]:
    if times is None:
        return None, None
    created = updated = None
    for element in times:
        if element.tag == "CreationTime":
            created = parse_time(element.text)
        elif element.tag == "LastModificationTime":
            updated = parse_time(element.text)
    return created, updated


def _group_kind(path: tuple[str, ...]) -> str | None:
    for name in reversed(path):
        lowered = name.casefold()
        for needle, kind in _GROUP_KINDS:
            if lowered.startswith(needle) or f" {needle}" in lowered:
                return kind
    return None


def entry_items(entry: Any, path: tuple[str, ...]) -> list[PortableItem]:
    """The items of one ``<Entry>``: the entry itself and, with an OTP field, its TOTP item."""
    fields, others = _fields(entry)
    title = fields.get("Title", "").strip() or "(untitled)"
    origin = "entry " + "/".join((*path, title))
    created, updated = _times_of(others.get("Times"))
    tags = tuple(t.strip() for t in _text(others.get("Tags")).replace(",", ";").split(";"))
    tags = tuple(t for t in tags if t)
    otp = fields.get("otp", "").strip() or fields.get("TOTP Seed", "").strip()
    password = fields.get("Password", "")
    notes = fields.get("Notes") or None
    written_by_custody = FIELD_KIND in fields
    kind = fields.get(FIELD_KIND, "").strip().lower()
    if kind not in KINDS:
        kind = ""
    if not written_by_custody:
        tags = tags + tuple(name for name in path if name.strip())
    value = password
    if not kind:
        if not password and otp:
            kind = "totp"
        elif not password and notes:
            kind, value, notes = "note", notes, None
        else:
            kind = _group_kind(path) or "login"
    if kind == "totp" and not password and otp:
        value, otp = otp, ""
    history: list[PortableVersion] = []
    old_entries = others.get("History")
    if old_entries is not None:
        for old in old_entries.iterchildren("Entry"):
            old_fields, old_others = _fields(old)
            old_value = old_fields.get("Password", "")
            if kind == "totp" and not old_value:
                old_value = old_fields.get("otp", "")
            if kind == "note" and not written_by_custody and not old_value:
                old_value = old_fields.get("Notes", "")
            when = _times_of(old_others.get("Times"))[1]
            if old_value:
                history.append(PortableVersion(value=old_value, created_at=when))
    item = PortableItem(
        title=title,
        kind=kind,
        username=fields.get("UserName") or None,
        value=value,
        url=fields.get("URL") or None,
        notes=notes,
        tags=tags,
        group=path,
        vendor=fields.get(FIELD_VENDOR) or None,
        domains=split_list(fields.get(FIELD_DOMAINS)),
        assets=split_list(fields.get(FIELD_ASSETS)),
        created_at=created,
        updated_at=updated,
        history=tuple(history),
        origin=origin,
    )
    if otp and kind != "totp":
        return [item, split_totp(item, otp)]
    return [item]
