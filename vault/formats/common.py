"""What the readers and writers share: limits, the fields Custody adds to other tools' entries,
URL hosts, TOTP URIs and the pairing of a TOTP item with its login.

Custody keeps what another tool has no place for (the kind, the links to vendors, domains and
assets) in custom fields named ``custody:kind``, ``custody:vendor``, ``custody:domains`` and
``custody:assets`` (KeePass string fields, Bitwarden custom fields, CSV columns). A reader that
finds ``custody:kind`` knows the file was written by Custody and takes kinds, tags and links
from it instead of guessing them from groups and URLs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import replace
from urllib.parse import parse_qs, quote, urlsplit

from vault.formats.items import PortableItem

#: largest file a reader accepts (a 10,000-entry KDBX is a few MiB)
MAX_FILE_BYTES = 256 * 1024 * 1024
#: most entries a reader accepts from one file
MAX_ITEMS = 200_000

FIELD_KIND = "custody:kind"
FIELD_VENDOR = "custody:vendor"
FIELD_DOMAINS = "custody:domains"
FIELD_ASSETS = "custody:assets"
FIELD_NOTES = "custody:notes"  # a note item's notes (its value is the note text itself)
#: the suffix of a TOTP item split off a login ("Gandi" -> "Gandi TOTP")
TOTP_SUFFIX = " TOTP"

KINDS = ("login", "api-key", "totp", "ssh-key", "license", "note")


def split_list(text: str | None) -> tuple[str, ...]:
    """``"a; b;c"`` -> ``("a", "b", "c")``; the separator of list fields in every format."""
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(";") if part.strip())


def join_list(values: Iterable[str]) -> str:
    return "; ".join(values)


def host_of(url: str | None) -> str | None:
    """The lower-case host of a URL (``gandi.net/login`` counts as a URL too), or None."""
    if not url:
        return None
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host or "." not in host or " " in host:
        return None
    return host.rstrip(".").lower()


def registrable(host: str | None) -> str | None:
    """The registrable part of a host, kept simple: its last two labels (three when the
    second-to-last is a short second-level label like ``co.uk``). IP addresses are kept whole.

    This is a heuristic, not the Public Suffix List (which would need a bundled snapshot):
    ``a.b.example.com`` -> ``example.com``, ``shop.example.co.uk`` -> ``example.co.uk``."""
    if not host:
        return None
    labels = host.split(".")
    if all(label.isdigit() for label in labels) or ":" in host:
        return host
    if len(labels) <= 2:
        return host
    if len(labels[-1]) == 2 and labels[-2] in ("co", "com", "net", "org", "ac", "gov", "or", "ne"):
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def totp_uri(value: str, label: str) -> str:
    """An ``otpauth://`` URI for a stored TOTP value: kept as it is when it already is one,
    built (defaults: SHA1, 6 digits, 30 s) around a base32 seed otherwise."""
    text = value.strip()
    if text.startswith("otpauth://"):
        return text
    seed = text.replace(" ", "").upper().rstrip("=")
    return f"otpauth://totp/{quote(label, safe='')}?secret={seed}&period=30&digits=6"


def is_totp_value(value: str) -> bool:
    """Whether ``value`` looks like a TOTP seed (an otpauth URI or base32 of 80 bits or more)."""
    text = value.strip()
    if text.startswith("otpauth://"):
        query = parse_qs(urlsplit(text).query)
        return "secret" in query
    compact = text.replace(" ", "").upper().rstrip("=")
    if len(compact) < 16:
        return False
    try:
        base64.b32decode(compact + "=" * (-len(compact) % 8))
    except (binascii.Error, ValueError):
        return False
    return True


def pair_totp(items: Iterable[PortableItem]) -> Iterator[tuple[PortableItem, PortableItem | None]]:
    """Pair each login with its TOTP item (titled ``"<login> TOTP"``, same links, URL, tags and
    group, no username, notes or history of its own), so tools with an OTP field on a login
    get one entry.

    Yields ``(item, totp)``: ``totp`` is the paired TOTP item or None. A paired TOTP item is not
    yielded on its own; an unpaired one is yielded as an item. Needs the whole list (a TOTP item
    may come before its login), which the writers have anyway."""
    listed = list(items)
    logins = {item.title.casefold(): item for item in listed if item.kind == "login"}
    paired: dict[str, PortableItem] = {}
    for item in listed:
        if item.kind != "totp" or not item.title.endswith(TOTP_SUFFIX):
            continue
        login = logins.get(item.title[: -len(TOTP_SUFFIX)].casefold())
        if (
            login is not None
            and login.title.casefold() not in paired
            and not item.username
            and not item.notes
            and not item.history
            and (item.vendor, item.domains, item.assets)
            == (login.vendor, login.domains, login.assets)
            and item.url == login.url
            and item.tags == login.tags
            and item.group == login.group
        ):
            paired[login.title.casefold()] = item
    taken = {id(totp) for totp in paired.values()}
    for item in listed:
        if id(item) in taken:
            continue
        yield item, (paired.get(item.title.casefold()) if item.kind == "login" else None)


def split_totp(login: PortableItem, seed: str) -> PortableItem:
    """The TOTP item a reader splits off a login with an OTP field (the inverse of pairing)."""
    return replace(
        login,
        title=login.title + TOTP_SUFFIX,
        kind="totp",
        username=None,
        value=seed.strip(),
        notes=None,
        history=(),
        origin=f"{login.origin} (TOTP)" if login.origin else "",
    )
