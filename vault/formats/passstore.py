"""Reader for a pass / gopass store: a directory of ``.gpg`` files, one entry each.

Each file is decrypted with the operator's own ``gpg`` (``gpg --batch --quiet --decrypt``; the
agent asks for the key's passphrase if it needs one). Mapping (docs/import.md):

- the path below the store, without ``.gpg`` -> title (``web/gandi`` -> "web/gandi"); the
  directories -> ``group`` and tags;
- the first line -> the value (the password);
- ``login:``, ``user:``, ``username:`` -> username; ``url:`` -> url; an ``otpauth://`` line ->
  a separate ``totp`` item "<title> TOTP";
- every other line -> notes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from vault.errors import FormatError
from vault.formats.common import MAX_ITEMS, split_totp
from vault.formats.items import PortableItem

GPG_TIMEOUT_SECONDS = 60
USER_KEYS = ("login", "user", "username", "email")


def read(path: Path, *, gpg: str | None = None) -> list[PortableItem]:
    if not path.is_dir():
        raise FormatError("not a directory (give the password store's folder)", origin=path.name)
    binary = gpg or shutil.which("gpg")
    if binary is None:
        raise FormatError(
            "gpg is not installed: it is needed to decrypt the store", origin=path.name
        )
    files = sorted(p for p in path.rglob("*.gpg") if ".git" not in p.parts)
    if len(files) > MAX_ITEMS:
        raise FormatError(f"more than {MAX_ITEMS} entries", origin=path.name)
    items: list[PortableItem] = []
    for file in files:
        relative = file.relative_to(path).with_suffix("")
        origin = f"entry {relative.as_posix()}"
        try:
            done = subprocess.run(
                [binary, "--batch", "--quiet", "--decrypt", str(file)],
                capture_output=True,
                timeout=GPG_TIMEOUT_SECONDS,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired):
            raise FormatError("gpg did not run", origin=origin) from None
        if done.returncode != 0:
            raise FormatError("gpg could not decrypt this entry (is its key here?)", origin=origin)
        try:
            text = done.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("the decrypted entry is not UTF-8 text", origin=origin) from None
        items.extend(parse_entry(text, relative.as_posix(), origin))
    return items


def parse_entry(text: str, name: str, origin: str) -> list[PortableItem]:
    lines = text.splitlines()
    value = lines[0] if lines else ""
    username = url = otp = None
    notes: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        key, sep, rest = stripped.partition(":")
        if stripped.startswith("otpauth://") and otp is None:
            otp = stripped
        elif sep and key.strip().lower() in USER_KEYS and username is None:
            username = rest.strip()
        elif sep and key.strip().lower() == "url" and url is None:
            url = rest.strip()
        else:
            notes.append(line)
    group = tuple(name.split("/")[:-1])
    item = PortableItem(
        title=name,
        kind="login" if value else ("totp" if otp else "login"),
        username=username or None,
        value=value or (otp or ""),
        url=url or None,
        notes="\n".join(notes).strip() or None,
        tags=group,
        group=group,
        origin=origin,
    )
    if otp and value:
        return [item, split_totp(item, otp)]
    return [item]
