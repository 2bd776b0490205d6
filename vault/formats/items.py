"""The neutral shape of one password-manager entry, shared by every outside format.

Writers (KeePass KDBX, Bitwarden JSON, CSV) take ``PortableItem`` values built from a client's
records; readers (the importers) produce them from another tool's file. Keeping one shape in
the middle is what makes an export -> import round trip give back the same records: each format
only has to map ``PortableItem`` both ways, never Custody's tables.

One item is one Custody secret. A TOTP seed is its own secret (kind ``totp``) in Custody; in
formats with an OTP field on a login (KeePassXC's ``otp``, Bitwarden's ``login.totp``) a
reader splits such an entry into a login and a ``totp`` item with the same links.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class PortableVersion:
    """An earlier value of an item (oldest first in ``PortableItem.history``)."""

    value: str = field(repr=False)
    created_at: datetime | None = None


@dataclass(frozen=True)
class PortableItem:
    """One entry. ``value`` is the password / key / seed; it never appears in a repr."""

    title: str
    kind: str = "login"  # one of vault.services.secrets.KINDS
    username: str | None = field(default=None, repr=False)
    value: str = field(default="", repr=False)
    url: str | None = None
    notes: str | None = field(default=None, repr=False)
    tags: tuple[str, ...] = ()
    # Where the entry sits in a tree-shaped tool (KeePass groups, Bitwarden folders),
    # outermost first. Writers put it there; readers fill it from the file.
    group: tuple[str, ...] = ()
    # Names of the inventory records this secret opens (Custody's secret links).
    vendor: str | None = None
    domains: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    history: tuple[PortableVersion, ...] = field(default=(), repr=False)
    # Where the item came from in the source file ("line 12", "entry Root/Web/Gandi"),
    # for import reports; empty when written by Custody.
    origin: str = ""


@dataclass(frozen=True)
class PortableRecord:
    """An inventory record read from a file with no secret of its own (an IT Glue domain or
    configuration, a Hudu asset or website): ``kind`` is vendor, domain or asset; ``fields``
    holds plain fields by Custody's names (``registrar``, ``expires_on``, ``kind``, ``serial``,
    ``address``, ``location``, ``website``, ``category``)."""

    kind: str
    name: str
    fields: tuple[tuple[str, str], ...] = ()
    origin: str = ""
