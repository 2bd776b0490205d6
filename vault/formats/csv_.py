"""Reader for CSV files: Custody's own CSV, presets for IT Glue, Hudu and N-able Passportal
exports, and any other CSV with a column map (``--map``).

A map says which column holds which field. Fields of a secret: ``title``, ``username``,
``value`` (alias ``password``), ``url``, ``notes``, ``kind``, ``tags``, ``group``, ``vendor``,
``domains``, ``assets``, ``totp`` (a TOTP seed or ``otpauth://`` URI: a separate ``totp`` item
"<title> TOTP"). Presets that describe inventory (IT Glue domains and configurations, Hudu
assets and websites) map to a record's fields instead: ``name``, ``registrar``, ``expires_on``,
``kind``, ``serial``, ``address``, ``location``, ``notes``.

Headers compare case-insensitively, ignoring spaces, dashes and underscores, and a preset lists
a few spellings per field, so small differences between export versions still match. The
mapping tables are in docs/import.md.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from vault.errors import FormatError
from vault.formats.common import (
    MAX_FILE_BYTES,
    MAX_ITEMS,
    host_of,
    split_list,
    split_totp,
)
from vault.formats.items import PortableItem, PortableRecord

Cell = Callable[[str], str]
SECRET_FIELDS = (
    "title",
    "username",
    "value",
    "url",
    "notes",
    "kind",
    "tags",
    "group",
    "vendor",
    "domains",
    "assets",
    "totp",
)
RECORD_FIELDS = ("name", "registrar", "expires_on", "kind", "serial", "address", "location")

# preset -> (record kind or None for secrets, {field: header spellings, first wins})
PRESETS: dict[str, tuple[str | None, dict[str, tuple[str, ...]]]] = {
    "custody": (
        None,
        {
            "title": ("title", "name"),
            "kind": ("kind",),
            "username": ("username", "login", "user"),
            "value": ("value", "password"),
            "url": ("url", "uri", "website"),
            "notes": ("notes", "note", "extra"),
            "tags": ("tags",),
            "group": ("group", "folder", "grouping"),
            "vendor": ("vendor",),
            "domains": ("domains",),
            "assets": ("assets",),
            "totp": ("totp", "otp", "otpauth"),
        },
    ),
    "itglue-passwords": (
        None,
        {
            "title": ("name",),
            "username": ("username",),
            "value": ("password",),
            "url": ("url",),
            "notes": ("notes",),
            "tags": ("password_category", "password_category_name"),
            "group": ("password_folder", "password_folder_name", "folder"),
            "totp": ("otp_secret",),
            "assets": ("resource_name", "cached_resource_name"),
        },
    ),
    "itglue-domains": (
        "domain",
        {
            "name": ("name", "domain", "domain_name"),
            "registrar": ("registrar_name", "registrar"),
            "expires_on": ("expires_on", "expiry_date", "expires_at"),
        },
    ),
    "itglue-configurations": (
        "asset",
        {
            "name": ("name", "hostname"),
            "kind": ("configuration_type", "configuration_type_name"),
            "serial": ("serial_number", "serial"),
            "address": ("primary_ip", "hostname"),
            "location": ("location", "location_name"),
        },
    ),
    "hudu-passwords": (
        None,
        {
            "title": ("name",),
            "username": ("username",),
            "value": ("password",),
            "url": ("url",),
            "notes": ("description", "notes"),
            "group": ("password_folder_name", "folder"),
            "tags": ("password_type",),
            "totp": ("otp_secret",),
        },
    ),
    "hudu-assets": (
        "asset",
        {
            "name": ("name",),
            "kind": ("asset_layout", "asset_layout_name", "asset_type"),
            "serial": ("primary_serial", "serial"),
            "address": ("ip_address", "primary_ip"),
            "location": ("location",),
        },
    ),
    "hudu-websites": (
        "domain",
        {"name": ("name", "url", "website")},
    ),
    "passportal": (
        None,
        {
            "title": ("description", "name", "title"),
            "username": ("username", "user_name"),
            "value": ("password",),
            "url": ("url",),
            "notes": ("notes",),
            "tags": ("credential_type", "credential", "type"),
            "group": ("folder", "folder_name"),
            "totp": ("totp_secret", "totp", "otp_secret"),
        },
    ),
}
_ASSET_KINDS = (
    ("firewall", "firewall"),
    ("router", "router"),
    ("switch", "switch"),
    ("access point", "access-point"),
    ("wireless", "access-point"),
    ("print server", "print-server"),
    ("printer", "printer"),
    ("server", "server"),
    ("nas", "nas"),
    ("storage", "nas"),
    ("phone", "phone-system"),
    ("pbx", "phone-system"),
    ("ups", "ups"),
    ("workstation", "workstation"),
    ("laptop", "workstation"),
    ("desktop", "workstation"),
    ("camera", "camera"),
)


def _norm(header: str) -> str:
    return "".join(ch for ch in header.casefold() if ch.isalnum())


def load_map(path: Path) -> dict[str, str]:
    """A ``--map`` file: a JSON object ``{"column": "field"}`` or ``column=field`` lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        raise FormatError("cannot read the map file", origin=path.name) from None
    pairs: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise FormatError("the map file is not valid JSON", origin=path.name) from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise FormatError("the map must be an object of column: field", origin=path.name)
        pairs = data
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            column, sep, target = line.partition("=")
            if not sep or not column.strip() or not target.strip():
                raise FormatError("expected column=field", origin=f"{path.name} line {number}")
            pairs[column.strip()] = target.strip()
    mapped: dict[str, str] = {}
    for column, target in pairs.items():
        target = "value" if target.strip().lower() == "password" else target.strip().lower()
        if target not in SECRET_FIELDS:
            raise FormatError(
                f"unknown field {target!r}; fields: {', '.join(SECRET_FIELDS)}", origin=path.name
            )
        mapped[target] = column
    if "title" not in mapped:
        raise FormatError("the map needs a column for title", origin=path.name)
    return mapped


def read(
    path: Path, *, mapping: Path | None = None, preset: str | None = None
) -> tuple[list[PortableItem], list[PortableRecord]]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FormatError(f"the file is larger than {MAX_FILE_BYTES} bytes", origin=path.name)
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read the file: {exc.strerror}", origin=path.name) from None
    explicit = load_map(mapping) if mapping is not None else None
    return parse(raw, explicit=explicit, preset=preset, name=path.name)


def parse(
    raw: bytes,
    *,
    explicit: dict[str, str] | None = None,
    preset: str | None = None,
    name: str = "the file",
) -> tuple[list[PortableItem], list[PortableRecord]]:
    if preset is not None and preset not in PRESETS:
        raise FormatError(f"unknown preset; presets: {', '.join(PRESETS)}", origin=name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text (save the CSV as UTF-8)", origin=name) from None
    if "\x00" in text:
        raise FormatError("not a text file", origin=name)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error:
        raise FormatError("not a readable CSV header", origin=f"{name} line 1") from None
    if not header or not any(h.strip() for h in header):
        raise FormatError("no header row", origin=name)
    index = {_norm(h): i for i, h in reversed(list(enumerate(header)))}
    record_kind, spellings = PRESETS[preset or "custody"]
    columns: dict[str, int] = {}
    if explicit is not None:
        record_kind = None
        for target, column in explicit.items():
            if _norm(column) not in index:
                raise FormatError(f"the map names a column the file lacks: {column!r}", origin=name)
            columns[target] = index[_norm(column)]
    else:
        for target, names in spellings.items():
            for spelling in names:
                if _norm(spelling) in index:
                    columns[target] = index[_norm(spelling)]
                    break
        needed = "name" if record_kind else "title"
        if needed not in columns:
            raise FormatError(
                f"no column for {needed} (expected one of: {', '.join(spellings[needed])}); "
                "use --preset or --map",
                origin=name,
            )
    items: list[PortableItem] = []
    records: list[PortableRecord] = []
    line = 1
    try:
        for row in reader:
            start = line + 1
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(items) + len(records) >= MAX_ITEMS:
                raise FormatError(f"more than {MAX_ITEMS} rows", origin=name)
            origin = f"line {start}"

            def cell(target: str, row: list[str] = row) -> str:
                at = columns.get(target)
                return row[at].strip() if at is not None and at < len(row) else ""

            if record_kind:
                records.append(_record(record_kind, cell, origin))
            else:
                items.extend(_item(cell, row, columns, origin))
    except csv.Error:
        raise FormatError("malformed CSV (unbalanced quotes?)", origin=f"line {line + 1}") from None
    return items, records


def _item(get: Cell, row: list[str], columns: dict[str, int], origin: str) -> list[PortableItem]:
    value_at = columns.get("value")
    value = row[value_at] if value_at is not None and value_at < len(row) else ""
    kind = get("kind").lower() or "login"
    totp = get("totp")
    if kind == "login" and not value and totp:
        kind, value, totp = "totp", totp, ""
    group = tuple(p for p in get("group").split("/") if p.strip())
    tags = split_list(get("tags").replace(",", ";"))
    item = PortableItem(
        title=get("title"),
        kind=kind,
        username=get("username") or None,
        value=value,
        url=get("url") or None,
        notes=get("notes") or None,
        tags=tags,
        group=group,
        vendor=get("vendor") or None,
        domains=split_list(get("domains")),
        assets=split_list(get("assets")),
        origin=origin,
    )
    if totp:
        return [item, split_totp(item, totp)]
    return [item]


def _record(kind: str, get: Cell, origin: str) -> PortableRecord:
    name = get("name")
    fields: dict[str, str] = {}
    if kind == "domain":
        name = host_of(name) or name if "/" in name or ":" in name else name
        for key in ("registrar", "expires_on"):
            if get(key):
                fields[key] = get(key)[:10] if key == "expires_on" else get(key)
    else:
        raw_kind = get("kind").casefold()
        fields["kind"] = next((k for needle, k in _ASSET_KINDS if needle in raw_kind), "other")
        for key in ("serial", "address", "location"):
            if get(key):
                fields[key] = get(key)
    return PortableRecord(kind=kind, name=name, fields=tuple(fields.items()), origin=origin)
