"""Reader for Bitwarden's unencrypted JSON export (individual vault or organization).

Mapping (docs/import.md):

- type 1 login: ``name`` -> title, ``login.username``, ``login.password`` -> value, the first of
  ``login.uris`` -> url, ``notes``; ``login.totp`` -> a separate ``totp`` item "<name> TOTP";
  ``passwordHistory`` -> history (oldest first).
- type 2 secure note -> kind ``note``, the note text is the value.
- type 3 card and type 4 identity -> kind ``note``, their fields as ``Name: value`` lines.
- type 5 SSH key -> kind ``ssh-key``, the private key is the value.
- the item's folder (individual) or first collection (organization) -> ``group`` (split on
  ``/``, as Bitwarden nests them) and tags; custom fields ``custody:*`` (written by Custody) ->
  kind, tags and links.

An encrypted export (``"encrypted": true``, account- or password-protected) is refused: export
again from Bitwarden choosing ".json" without encryption.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault.errors import FormatError
from vault.formats.common import (
    FIELD_ASSETS,
    FIELD_DOMAINS,
    FIELD_KIND,
    FIELD_NOTES,
    FIELD_VENDOR,
    KINDS,
    MAX_FILE_BYTES,
    MAX_ITEMS,
    split_list,
    split_totp,
)
from vault.formats.items import PortableItem, PortableVersion

CARD_FIELDS = (
    ("cardholderName", "Cardholder"),
    ("brand", "Brand"),
    ("number", "Number"),
    ("expMonth", "Expiry month"),
    ("expYear", "Expiry year"),
    ("code", "Security code"),
)
IDENTITY_FIELDS = (
    "title",
    "firstName",
    "middleName",
    "lastName",
    "company",
    "email",
    "phone",
    "address1",
    "address2",
    "address3",
    "city",
    "state",
    "postalCode",
    "country",
    "username",
    "ssn",
    "passportNumber",
    "licenseNumber",
)


def read(path: Path) -> list[PortableItem]:
    """Items of a Bitwarden JSON export; :class:`FormatError` when it cannot be read."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FormatError(f"the file is larger than {MAX_FILE_BYTES} bytes", origin=path.name)
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read the file: {exc.strerror}", origin=path.name) from None
    return parse(raw, name=path.name)


def parse(raw: bytes, *, name: str = "the file") -> list[PortableItem]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FormatError("not JSON (is this a Bitwarden .json export?)", origin=name) from None
    if not isinstance(data, dict):
        raise FormatError("not a Bitwarden export (no top-level object)", origin=name)
    if data.get("encrypted") is True or "encKeyValidation_DO_NOT_EDIT" in data:
        raise FormatError(
            "this Bitwarden export is encrypted: export again as unencrypted .json",
            origin=name,
        )
    items = data.get("items")
    if not isinstance(items, list):
        raise FormatError("not a Bitwarden export (no items list)", origin=name)
    if len(items) > MAX_ITEMS:
        raise FormatError(f"more than {MAX_ITEMS} items", origin=name)
    groups = _names(data.get("folders")) | _names(data.get("collections"))
    out: list[PortableItem] = []
    for index, entry in enumerate(items, start=1):
        out.extend(_item(entry, index, groups))
    return out


def _names(listed: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(listed, list):
        for element in listed:
            if isinstance(element, dict) and isinstance(element.get("id"), str):
                out[element["id"]] = _str(element.get("name")) or ""
    return out


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _time(value: Any) -> datetime | None:
    text = _str(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _item(entry: Any, index: int, groups: dict[str, str]) -> list[PortableItem]:
    origin = f"item {index}"
    if not isinstance(entry, dict):
        raise FormatError("an item is not an object", origin=origin)
    title = (_str(entry.get("name")) or "").strip() or "(untitled)"
    origin = f"item {index} ({title})"
    group_name = groups.get(_str(entry.get("folderId")) or "")
    collections = entry.get("collectionIds")
    if not group_name and isinstance(collections, list) and collections:
        group_name = groups.get(_str(collections[0]) or "")
    group = tuple(part for part in (group_name or "").split("/") if part.strip())
    fields: dict[str, str] = {}
    for field in entry.get("fields") or []:
        if isinstance(field, dict):
            key, value = _str(field.get("name")), _str(field.get("value"))
            if key and value is not None:
                fields[key] = value
    written_by_custody = FIELD_KIND in fields
    kind = fields.get(FIELD_KIND, "").strip().lower()
    if kind not in KINDS:
        kind = ""
    tags = split_list(fields.get("custody:tags")) if written_by_custody else group
    notes = _str(entry.get("notes"))
    kind_code = entry.get("type")
    username = url = None
    value = ""
    totp = None
    history: list[PortableVersion] = []
    if kind_code == 1:
        login = _dict(entry.get("login"))
        username = _str(login.get("username"))
        value = _str(login.get("password")) or ""
        totp = (_str(login.get("totp")) or "").strip() or None
        uris = login.get("uris")
        if isinstance(uris, list):
            for uri in uris:
                url = _str(_dict(uri).get("uri"))
                if url:
                    break
        if not kind:
            kind = "totp" if not value and totp else "login"
        if kind == "totp" and not value and totp:
            value, totp = totp, None
        old = entry.get("passwordHistory")
        if isinstance(old, list):
            for version in reversed(old):
                version = _dict(version)
                old_value = _str(version.get("password"))
                if old_value:
                    history.append(
                        PortableVersion(
                            value=old_value, created_at=_time(version.get("lastUsedDate"))
                        )
                    )
    elif kind_code == 2:
        kind = kind or "note"
        value, notes = notes or "", fields.get(FIELD_NOTES) if written_by_custody else None
    elif kind_code == 3:
        kind = kind or "note"
        value = _lines(_dict(entry.get("card")), CARD_FIELDS)
    elif kind_code == 4:
        kind = kind or "note"
        value = _lines(_dict(entry.get("identity")), [(k, k) for k in IDENTITY_FIELDS])
    elif kind_code == 5:
        kind = kind or "ssh-key"
        value = _str(_dict(entry.get("sshKey")).get("privateKey")) or ""
    else:
        raise FormatError("unknown item type", origin=origin)
    item = PortableItem(
        title=title,
        kind=kind,
        username=username or None,
        value=value,
        url=url or None,
        notes=notes or None,
        tags=tags,
        group=group,
        vendor=fields.get(FIELD_VENDOR) or None,
        domains=split_list(fields.get(FIELD_DOMAINS)),
        assets=split_list(fields.get(FIELD_ASSETS)),
        created_at=_time(entry.get("creationDate")),
        updated_at=_time(entry.get("revisionDate")),
        history=tuple(history),
        origin=origin,
    )
    if totp:
        return [item, split_totp(item, totp)]
    return [item]


def _lines(data: dict[str, Any], names: Any) -> str:
    return "\n".join(
        f"{label}: {_str(data.get(key))}" for key, label in names if _str(data.get(key))
    )
