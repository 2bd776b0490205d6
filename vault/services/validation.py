"""Checks on user-supplied metadata, shared by every service. Limits live here as constants."""

from __future__ import annotations

import unicodedata
from datetime import date

from vault.errors import InvalidInput

MAX_NAME = 200
MAX_TITLE = 300
MAX_TEXT = 4000
MAX_VALUE_BYTES = 64 * 1024
MAX_TAGS = 32


def clean_name(value: str | None, field: str, *, max_length: int = MAX_NAME) -> str:
    """Trimmed, NFC, printable, non-empty, bounded. The message never echoes the value."""
    if value is None:
        raise InvalidInput(f"{field} is required", field=field)
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(text) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
        raise InvalidInput(f"{field} contains control characters", field=field)
    return text


def name_key(name: str) -> str:
    """Case- and width-insensitive key, so "Acme" and "ACME" are one client."""
    return unicodedata.normalize("NFKC", name).casefold()


def optional_text(value: str | None, field: str, *, max_length: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    return text


def choice(
    value: str | None, field: str, allowed: tuple[str, ...], default: str | None = None
) -> str:
    if value is None or value == "":
        if default is None:
            raise InvalidInput(f"{field} is required; one of: {', '.join(allowed)}", field=field)
        return default
    normalized = value.strip().lower().replace("_", "-").replace(" ", "-")
    if normalized not in allowed:
        raise InvalidInput(f"{field} must be one of: {', '.join(allowed)}", field=field)
    return normalized


def parse_date(value: str | date | None, field: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field} must be a date as YYYY-MM-DD", field=field) from None


def clean_tags(tags: list[str] | None) -> list[str]:
    out: list[str] = []
    for tag in tags or []:
        t = clean_name(tag, "tags", max_length=64).lower()
        if t not in out:
            out.append(t)
    if len(out) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", field="tags")
    return out
