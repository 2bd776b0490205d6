"""Writers: a list of :class:`PortableItem` into another tool's file.

    write("kdbx", items, Path("acme.kdbx"), passphrase="...", keyfile=None) -> entries written

Formats (``FORMATS``):

``kdbx``
    KeePass KDBX 4 (pykeepass does the container and its encryption; the entries are built here
    as XML directly, which is much faster than pykeepass's ``add_entry`` for 10,000 entries).
    ``item.group`` becomes the group tree under the root; a TOTP item paired with its login
    (see :func:`vault.formats.common.pair_totp`) goes into the login's ``otp`` field as an
    ``otpauth://`` URI (what KeePassXC reads); an unpaired TOTP item becomes an entry of its own
    with only the ``otp`` field. Tags, notes, URL and history are KeePass's own fields; kind and
    links are string fields ``custody:*``.
``bitwarden-json``
    Bitwarden's unencrypted JSON import format: ``folders`` (one per distinct group path, named
    ``A/B`` as Bitwarden nests them) and ``items``. Logins are type 1 with ``login.totp`` for a
    paired TOTP item; notes are secure notes (type 2, the value is the note text); password
    history is ``passwordHistory``; kind, tags and links are custom fields.
``csv``
    One row per item, columns :data:`CSV_COLUMNS` (documented in docs/import.md). No history.

Every writer streams: one item at a time into the file (the KDBX writer builds its XML tree in
memory, as the format is one encrypted document).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import struct
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from vault.errors import InvalidInput
from vault.formats.common import (
    FIELD_ASSETS,
    FIELD_DOMAINS,
    FIELD_KIND,
    FIELD_NOTES,
    FIELD_VENDOR,
    join_list,
    pair_totp,
    totp_uri,
)
from vault.formats.items import PortableItem

FORMATS = ("kdbx", "bitwarden-json", "csv")
CSV_COLUMNS = (
    "title",
    "kind",
    "username",
    "value",
    "url",
    "notes",
    "tags",
    "group",
    "vendor",
    "domains",
    "assets",
    "created_at",
    "updated_at",
)


def write(
    fmt: str,
    items: Sequence[PortableItem],
    out: Path,
    *,
    passphrase: str | None = None,
    keyfile: Path | None = None,
) -> int:
    """Write ``items`` to ``out`` in ``fmt``; returns the number of entries written (a login
    carrying its TOTP item counts once). The file is created with mode 0600.

    ``passphrase`` and ``keyfile`` (an existing KeePass key file) protect a KDBX file; the other
    formats are plain text and ignore them (Bitwarden's password-protected export format is
    not written)."""
    if fmt == "kdbx":
        if not passphrase and keyfile is None:
            raise InvalidInput("a KDBX file needs a passphrase or a key file", field="passphrase")
        return _write_kdbx(items, out, passphrase, keyfile)
    if fmt == "bitwarden-json":
        with _open_private(out) as fh:
            return _write_bitwarden(items, fh)
    if fmt == "csv":
        with _open_private(out, newline="") as fh:
            return _write_csv(items, fh)
    raise InvalidInput(f"format must be one of: {', '.join(FORMATS)}", field="format")


def _open_private(path: Path, newline: str | None = None) -> IO[str]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline=newline)


# --- CSV ---------------------------------------------------------------------------------


def csv_row(item: PortableItem) -> dict[str, str]:
    return {
        "title": item.title,
        "kind": item.kind,
        "username": item.username or "",
        "value": item.value,
        "url": item.url or "",
        "notes": item.notes or "",
        "tags": join_list(item.tags),
        "group": "/".join(item.group),
        "vendor": item.vendor or "",
        "domains": join_list(item.domains),
        "assets": join_list(item.assets),
        "created_at": item.created_at.isoformat() if item.created_at else "",
        "updated_at": item.updated_at.isoformat() if item.updated_at else "",
    }


def _write_csv(items: Sequence[PortableItem], fh: IO[str]) -> int:
    writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for item in items:
        writer.writerow(csv_row(item))
        count += 1
    return count


# --- Bitwarden JSON ----------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _bw_fields(item: PortableItem, *, note_notes: bool) -> list[dict[str, Any]]:
    fields = [{"name": FIELD_KIND, "value": item.kind, "type": 0}]
    if item.tags:
        fields.append({"name": "custody:tags", "value": join_list(item.tags), "type": 0})
    if item.vendor:
        fields.append({"name": FIELD_VENDOR, "value": item.vendor, "type": 0})
    if item.domains:
        fields.append({"name": FIELD_DOMAINS, "value": join_list(item.domains), "type": 0})
    if item.assets:
        fields.append({"name": FIELD_ASSETS, "value": join_list(item.assets), "type": 0})
    if note_notes and item.notes:
        fields.append({"name": FIELD_NOTES, "value": item.notes, "type": 1})
    return fields


def bitwarden_item(
    item: PortableItem, totp: PortableItem | None, folder_id: str | None
) -> dict[str, Any]:
    """One item of Bitwarden's import format."""
    data: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "folderId": folder_id,
        "name": item.title,
        "favorite": False,
        "reprompt": 0,
        "creationDate": _iso(item.created_at),
        "revisionDate": _iso(item.updated_at),
    }
    if item.kind == "note":
        data.update(
            type=2,
            notes=item.value,
            secureNote={"type": 0},
            fields=_bw_fields(item, note_notes=True),
        )
    else:
        login: dict[str, Any] = {
            "username": item.username,
            "password": item.value if item.kind != "totp" else None,
            "totp": totp_uri(totp.value, totp.title) if totp is not None else None,
            "uris": [{"match": None, "uri": item.url}] if item.url else [],
        }
        if item.kind == "totp":
            login["totp"] = totp_uri(item.value, item.title)
        data.update(
            type=1, notes=item.notes, login=login, fields=_bw_fields(item, note_notes=False)
        )
        if item.history:
            data["passwordHistory"] = [
                {"lastUsedDate": _iso(old.created_at), "password": old.value}
                for old in reversed(item.history)  # Bitwarden lists the newest first
            ]
    return data


def _write_bitwarden(items: Sequence[PortableItem], fh: IO[str]) -> int:
    folders: dict[str, str] = {}
    for item in items:
        path = "/".join(item.group)
        if path and path not in folders:
            folders[path] = str(uuid.uuid4())
    fh.write('{"encrypted": false, "folders": ')
    fh.write(json.dumps([{"id": fid, "name": name} for name, fid in folders.items()]))
    fh.write(', "items": [\n')
    count = 0
    for item, totp in pair_totp(items):
        if count:
            fh.write(",\n")
        data = bitwarden_item(item, totp, folders.get("/".join(item.group)))
        fh.write(json.dumps(data, ensure_ascii=False))
        count += 1
    fh.write("\n]}\n")
    return count


# --- KeePass KDBX 4 ----------------------------------------------------------------------

_EPOCH_0001 = datetime(1, 1, 1, tzinfo=UTC)
#: Argon2d work for written KDBX files: 64 MiB, 4 passes, 2 lanes (about a second here, as
#: KeePassXC aims for); the memory cost is what slows a guessing attacker most
KDBX_ARGON2_MEMORY = 64 * 1024 * 1024
KDBX_ARGON2_ITERATIONS = 4
KDBX_ARGON2_PARALLELISM = 2


def kdbx_time(value: datetime | None) -> str:
    """KDBX 4 time: base64 of little-endian seconds since 0001-01-01 UTC."""
    moment = value or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int((moment - _EPOCH_0001).total_seconds())
    return base64.b64encode(struct.pack("<q", seconds)).decode()


def _uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


def _write_kdbx(
    items: Sequence[PortableItem], out: Path, passphrase: str | None, keyfile: Path | None
) -> int:
    from lxml import etree

    kp = _blank_database()
    kp.password = passphrase or None
    kp.keyfile = str(keyfile) if keyfile is not None else None
    kdf = kp.kdbx.header.value.dynamic_header.kdf_parameters.data.dict
    kdf.M.value = KDBX_ARGON2_MEMORY
    kdf.I.value = KDBX_ARGON2_ITERATIONS
    kdf.P.value = KDBX_ARGON2_PARALLELISM
    meta = kp.tree.find("Meta")
    name = meta.find("DatabaseName")
    name.text = "Custody export"
    meta.find("HistoryMaxItems").text = "-1"  # keep every version we write
    meta.find("HistoryMaxSize").text = "-1"
    root = kp.tree.find("Root/Group")
    groups: dict[tuple[str, ...], Any] = {(): root}

    def group_for(path: tuple[str, ...]) -> Any:
        found = groups.get(path)
        if found is not None:
            return found
        parent = group_for(path[:-1])
        element = etree.SubElement(parent, "Group")
        etree.SubElement(element, "UUID").text = _uuid()
        etree.SubElement(element, "Name").text = path[-1]
        etree.SubElement(element, "Notes")
        etree.SubElement(element, "IconID").text = "48"
        _times(etree, element, None, None)
        etree.SubElement(element, "IsExpanded").text = "True"
        groups[path] = element
        return element

    count = 0
    for item, totp in pair_totp(items):
        group_for(item.group).append(kdbx_entry(etree, item, totp))
        count += 1
    # create the file 0600 first: pykeepass opens it with the process umask otherwise
    os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(out, 0o600)
    kp.save(str(out))
    return count


_BLANK_KEY: list[bytes] = []


def _blank_database() -> Any:
    """pykeepass's empty template, opened; its key is derived once per process (the template
    and its password are fixed), so each later write pays only for its own KDF."""
    from pykeepass import pykeepass as pkp

    if _BLANK_KEY:
        return pkp.PyKeePass(pkp.BLANK_DATABASE_LOCATION, transformed_key=_BLANK_KEY[0])
    kp = pkp.PyKeePass(pkp.BLANK_DATABASE_LOCATION, pkp.BLANK_DATABASE_PASSWORD)
    _BLANK_KEY.append(kp.transformed_key)
    return kp


def _times(etree: Any, parent: Any, created: datetime | None, updated: datetime | None) -> None:
    times = etree.SubElement(parent, "Times")
    for tag, value in (
        ("CreationTime", created),
        ("LastModificationTime", updated or created),
        ("LastAccessTime", updated or created),
        ("ExpiryTime", updated or created),
    ):
        etree.SubElement(times, tag).text = kdbx_time(value)
    etree.SubElement(times, "Expires").text = "False"
    etree.SubElement(times, "UsageCount").text = "0"
    etree.SubElement(times, "LocationChanged").text = kdbx_time(updated or created)


def _string(etree: Any, entry: Any, key: str, value: str | None, protect: bool = False) -> None:
    element = etree.SubElement(entry, "String")
    etree.SubElement(element, "Key").text = key
    text = etree.SubElement(element, "Value")
    if value:
        text.text = value
    if protect:
        text.set("Protected", "True")


def kdbx_entry(etree: Any, item: PortableItem, totp: PortableItem | None) -> Any:
    """One ``<Entry>`` element (with its ``<History>``), values in clear: pykeepass protects
    the values marked ``Protected`` when it saves."""
    uid = _uuid()

    def build(value: str, when: datetime | None, with_history: bool) -> Any:
        entry = etree.Element("Entry")
        etree.SubElement(entry, "UUID").text = uid
        etree.SubElement(entry, "IconID").text = "0"
        etree.SubElement(entry, "Tags").text = ";".join(item.tags) or None
        _times(etree, entry, item.created_at, when)
        _string(etree, entry, "Title", item.title)
        _string(etree, entry, "UserName", item.username)
        _string(etree, entry, "Password", value, protect=True)
        _string(etree, entry, "URL", item.url)
        _string(etree, entry, "Notes", item.notes)
        otp = None
        if item.kind == "totp":
            otp = totp_uri(item.value, item.title)
        elif totp is not None:
            otp = totp_uri(totp.value, totp.title)
        if otp:
            _string(etree, entry, "otp", otp, protect=True)
        _string(etree, entry, FIELD_KIND, item.kind)
        if item.vendor:
            _string(etree, entry, FIELD_VENDOR, item.vendor)
        if item.domains:
            _string(etree, entry, FIELD_DOMAINS, join_list(item.domains))
        if item.assets:
            _string(etree, entry, FIELD_ASSETS, join_list(item.assets))
        if with_history and item.history:
            history = etree.SubElement(entry, "History")
            for old in item.history:
                history.append(build(old.value, old.created_at, False))
        return entry

    return build("" if item.kind == "totp" else item.value, item.updated_at, True)
