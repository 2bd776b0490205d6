"""Import and export against the real tools: Debian's keepassxc-cli (KDBX written by KeePassXC
is read; KDBX written by Custody opens in KeePassXC with every entry intact) and gpg (a pass
store). A missing tool fails the test under CUSTODY_REQUIRE_INTEROP=1 (tests/interop.py)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from vault.errors import FormatError
from vault.formats import keepass, passstore, writers
from vault.formats.items import PortableItem, PortableVersion

from ..interop import require_tool

pytestmark = pytest.mark.interop
DB_PASS = "kx-database-pass"
TIMEOUT = 120


def _run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args,
        input=stdin.encode(),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


@pytest.fixture(scope="module")
def kxc() -> str:
    return require_tool("keepassxc-cli")


def test_kdbx_made_by_keepassxc_imports(kxc: str, tmp_path: Path) -> None:
    db = tmp_path / "made-by-keepassxc.kdbx"
    _run(kxc, "db-create", "-p", str(db), stdin=f"{DB_PASS}\n{DB_PASS}\n")
    _run(kxc, "mkdir", str(db), "Network", stdin=f"{DB_PASS}\n")
    _run(
        kxc, "add", "-u", "admin", "--url", "https://10.0.0.1", "--notes", "core firewall",
        "-p", str(db), "Network/Firewall", stdin=f"{DB_PASS}\nfirst-pass\n",
    )  # fmt: skip
    _run(kxc, "edit", "-p", str(db), "Network/Firewall", stdin=f"{DB_PASS}\nsecond-pass\n")
    _run(kxc, "add", "-u", "ops", "-p", str(db), "Mail", stdin=f"{DB_PASS}\nmail-pass\n")
    items = {i.title: i for i in keepass.read(db, passphrase=DB_PASS)}
    assert set(items) == {"Firewall", "Mail"}
    firewall = items["Firewall"]
    assert (firewall.username, firewall.value, firewall.url, firewall.notes) == (
        "admin",
        "second-pass",
        "https://10.0.0.1",
        "core firewall",
    )
    assert firewall.group == ("Network",) and "Network" in firewall.tags
    assert [v.value for v in firewall.history] == ["first-pass"]
    assert items["Mail"].value == "mail-pass"
    with pytest.raises(FormatError, match="wrong passphrase"):
        keepass.read(db, passphrase="not it")


def test_kdbx_with_a_key_file_only(kxc: str, tmp_path: Path) -> None:
    db, key = tmp_path / "k.kdbx", tmp_path / "k.key"
    _run(kxc, "db-create", "--set-key-file", str(key), str(db))
    _run(kxc, "add", "--no-password", "-k", str(key), "-p", str(db), "Only", stdin="pw-only\n")
    (item,) = keepass.read(db, keyfile=key)
    assert item.value == "pw-only"


def _items() -> list[PortableItem]:
    seed = "JBSWY3DPEHPK3PXPJBSWY3DP"
    return [
        PortableItem(
            title="Gandi", username="ops", value="pw, with \"quotes\"", url="https://gandi.net",
            notes="line one\nline two", tags=("dns",), group=("Web", "Registrars"),
            vendor="Gandi", history=(PortableVersion("older"),),
        ),
        PortableItem(
            title="Gandi TOTP", kind="totp", value=seed, url="https://gandi.net", tags=("dns",),
            group=("Web", "Registrars"), vendor="Gandi",
        ),
        PortableItem(title="Standalone TOTP", kind="totp", value=seed),
        PortableItem(title="Ünïcode ✓", value="pässwörd", username="ü"),
    ]  # fmt: skip


def test_kdbx_written_by_custody_opens_in_keepassxc(kxc: str, tmp_path: Path) -> None:
    out = tmp_path / "custody.kdbx"
    items = _items()
    assert writers.write("kdbx", items, out, passphrase=DB_PASS) == 3
    exported = _run(kxc, "export", "-f", "csv", str(out), stdin=f"{DB_PASS}\n")
    rows = {row["Title"]: row for row in csv.DictReader(io.StringIO(exported))}
    assert set(rows) == {"Gandi", "Standalone TOTP", "Ünïcode ✓"}
    for item in items:
        if item.title.endswith("TOTP") and item.title in rows:
            row = rows[item.title]
            assert row["Password"] == ""
            assert "secret=JBSWY3DPEHPK3PXPJBSWY3DP" in row["TOTP"]
            continue
        if item.title not in rows:
            continue
        row = rows[item.title]
        assert row["Group"] == "/".join(("Root", *item.group))
        assert (row["Username"], row["Password"], row["URL"], row["Notes"]) == (
            item.username or "",
            item.value,
            item.url or "",
            item.notes or "",
        )
    assert "secret=JBSWY3DPEHPK3PXPJBSWY3DP" in rows["Gandi"]["TOTP"]
    # KeePassXC computes the same code from the otp field as we do from the seed
    code = _run(kxc, "show", "-t", str(out), "Web/Registrars/Gandi", stdin=f"{DB_PASS}\n")
    totp, now = pyotp.TOTP("JBSWY3DPEHPK3PXPJBSWY3DP"), time.time()
    assert code.strip().splitlines()[-1] in {totp.at(now + step) for step in (-30, 0, 30)}
    # and history is kept
    xml = _run(kxc, "export", "-f", "xml", str(out), stdin=f"{DB_PASS}\n")
    assert xml.count("<History>") == 1 and "older" in xml


@pytest.fixture
def gnupg(tmp_path: Path) -> Iterator[dict[str, str]]:
    gpg = require_tool("gpg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home)}
    _run(
        gpg, "--batch", "--passphrase", "", "--quick-gen-key", "pass-test@example.invalid",
        "ed25519", "cert", "never", env=env,
    )  # fmt: skip
    fpr = _run(gpg, "--batch", "--with-colons", "--list-keys", env=env)
    fingerprint = next(line.split(":")[9] for line in fpr.splitlines() if line.startswith("fpr"))
    _run(
        gpg, "--batch", "--passphrase", "", "--pinentry-mode", "loopback", "--quick-add-key",
        fingerprint, "cv25519", "encr", "never", env=env,
    )  # fmt: skip
    yield {**env, "GPG": gpg, "FPR": fingerprint}
    # stop the agent this test's GNUPGHOME started (and only that one)
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, **env}, check=False)


def test_pass_store_imports(
    gnupg: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "password-store"
    entries = {
        "web/gandi": "gandi-pw\nlogin: ops\nurl: https://gandi.net\n"
        "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP\nextra note\n",
        "wifi": "wifi-pw\n",
    }
    env = {"GNUPGHOME": gnupg["GNUPGHOME"]}
    for name, text in entries.items():
        target = store / f"{name}.gpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        _run(
            gnupg["GPG"], "--batch", "--yes", "--trust-model", "always", "-r", gnupg["FPR"],
            "-o", str(target), "-e", stdin=text, env=env,
        )  # fmt: skip
    (store / ".gpg-id").write_text(gnupg["FPR"] + "\n")
    monkeypatch.setenv("GNUPGHOME", gnupg["GNUPGHOME"])
    items = {i.title: i for i in passstore.read(store)}
    assert set(items) == {"web/gandi", "web/gandi TOTP", "wifi"}
    gandi = items["web/gandi"]
    assert (gandi.value, gandi.username, gandi.url, gandi.notes) == (
        "gandi-pw",
        "ops",
        "https://gandi.net",
        "extra note",
    )
    assert gandi.group == ("web",) and gandi.origin == "entry web/gandi"
    assert items["web/gandi TOTP"].value.startswith("otpauth://")
    assert items["wifi"].value == "wifi-pw"
    other = tmp_path / "other-gnupg"
    other.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(other))
    with pytest.raises(FormatError, match="could not decrypt"):
        passstore.read(store)
