"""Each reader on hand-written samples (tests/vectors/import/), and on garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.errors import FormatError
from vault.formats import bitwarden, csv_, keepass, passstore
from vault.formats.items import PortableItem

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "import"


def _by_title(items: list[PortableItem]) -> dict[str, PortableItem]:
    return {i.title: i for i in items}


def test_bitwarden_individual() -> None:
    items = _by_title(bitwarden.read(VECTORS / "bitwarden-individual.json"))
    assert set(items) == {
        "Gandi",
        "Gandi TOTP",
        "Core switch",
        "Alarm code",
        "Company card",
        "Director",
    }
    gandi = items["Gandi"]
    assert (gandi.kind, gandi.username, gandi.value) == (
        "login",
        "ops@acme.example",
        "gandi-pass-3",
    )
    assert gandi.url == "https://account.gandi.net/login"
    assert gandi.notes == "registrar account"
    assert gandi.group == ("Infra",) and "Infra" in gandi.tags
    assert [v.value for v in gandi.history] == ["gandi-pass-1", "gandi-pass-2"]  # oldest first
    totp = items["Gandi TOTP"]
    assert (totp.kind, totp.value, totp.username, totp.url) == (
        "totp",
        "JBSWY3DPEHPK3PXP",
        None,
        gandi.url,
    )
    assert items["Core switch"].group == ("Infra", "Network")
    note = items["Alarm code"]
    assert (note.kind, note.value, note.notes) == ("note", "1234#", None)
    card = items["Company card"]
    assert card.kind == "note" and "Number: 4111111111111111" in card.value
    assert (
        "Email: " not in items["Director"].value and "ada@acme.example" in items["Director"].value
    )
    assert gandi.origin == "item 1 (Gandi)"


def test_bitwarden_organization_collections_become_groups() -> None:
    (item,) = bitwarden.read(VECTORS / "bitwarden-organization.json")
    assert item.group == ("Clients", "Acme")
    assert item.value == "m365-secret"


def test_bitwarden_encrypted_export_is_refused() -> None:
    with pytest.raises(FormatError, match="encrypted"):
        bitwarden.read(VECTORS / "bitwarden-encrypted.json")


def test_keepass_xml() -> None:
    items = _by_title(keepass.read(VECTORS / "keepass2.xml"))
    assert set(items) == {"Gandi", "Gandi TOTP", "backup host"}  # the recycle bin is skipped
    gandi = items["Gandi"]
    assert (gandi.value, gandi.username, gandi.url) == ("now-pass", "ops", "https://www.gandi.net/")
    assert gandi.tags == ("dns", "registrar")  # the root group is not a tag
    assert [v.value for v in gandi.history] == ["old-pass"]
    assert gandi.created_at is not None and gandi.created_at.year == 2022
    assert items["Gandi TOTP"].value.startswith("otpauth://totp/")
    key = items["backup host"]
    assert key.kind == "ssh-key" and key.group == ("SSH Keys",)
    assert key.origin == "entry SSH Keys/backup host"


def test_itglue_presets() -> None:
    items, records = csv_.read(VECTORS / "itglue-passwords.csv", preset="itglue-passwords")
    assert not records
    by = _by_title(items)
    assert set(by) == {"Firewall admin", "Domain registrar", "Domain registrar TOTP"}
    assert by["Firewall admin"].assets == ("FW01",)
    assert by["Domain registrar"].notes == "two\nlines"
    assert by["Domain registrar"].origin == "line 3"
    assert by["Domain registrar"].group == ("Vendors",)
    _, domains = csv_.read(VECTORS / "itglue-domains.csv", preset="itglue-domains")
    assert [(d.name, dict(d.fields)) for d in domains] == [
        ("acme.example", {"registrar": "Namecheap", "expires_on": "2027-06-30"}),
        ("acme-shop.example", {"registrar": "Gandi", "expires_on": "2026-11-15"}),
    ]
    _, assets = csv_.read(VECTORS / "itglue-configurations.csv", preset="itglue-configurations")
    assert [(a.name, dict(a.fields)["kind"]) for a in assets] == [
        ("FW01", "firewall"),
        ("PRN-2", "printer"),
    ]
    assert dict(assets[0].fields)["serial"] == "FGT60F0000001"


def test_hudu_presets() -> None:
    items, _ = csv_.read(VECTORS / "hudu-passwords.csv", preset="hudu-passwords")
    by = _by_title(items)
    assert by["WiFi guest"].notes == "Guest network" and by["WiFi guest"].value == "guest-wifi-pw"
    assert by["WordPress admin"].group == ("Web",)
    _, assets = csv_.read(VECTORS / "hudu-assets.csv", preset="hudu-assets")
    assert dict(assets[0].fields) == {"kind": "nas", "serial": "SYN123"}
    _, sites = csv_.read(VECTORS / "hudu-websites.csv", preset="hudu-websites")
    assert [(s.kind, s.name) for s in sites] == [("domain", "acme.example")]


def test_passportal_preset() -> None:
    items, _ = csv_.read(VECTORS / "passportal.csv", preset="passportal")
    by = _by_title(items)
    assert by["Edge router"].tags == ("Router",) and by["Edge router"].group == ("Network",)
    assert by["Hosting panel"].url == "https://panel.hosting.example"


def test_generic_csv_with_a_map(tmp_path: Path) -> None:
    (item,) = csv_.read(VECTORS / "generic.csv", mapping=VECTORS / "generic.map")[0]
    assert (item.title, item.username, item.value, item.notes) == (
        "Backup portal",
        "backup@acme.example",
        "bk-pass",
        "nightly",
    )
    as_json = tmp_path / "map.json"
    as_json.write_text(json.dumps({"Account": "title", "Secret": "password"}))
    (same,) = csv_.read(VECTORS / "generic.csv", mapping=as_json)[0]
    assert same.value == "bk-pass" and same.username is None
    bad = tmp_path / "bad.map"
    bad.write_text("Account=title\nSecret=colour\n")
    with pytest.raises(FormatError, match="unknown field"):
        csv_.read(VECTORS / "generic.csv", mapping=bad)
    missing = tmp_path / "missing.map"
    missing.write_text("Nope=title\n")
    with pytest.raises(FormatError, match="lacks"):
        csv_.read(VECTORS / "generic.csv", mapping=missing)


def test_csv_without_a_title_column_asks_for_a_map() -> None:
    with pytest.raises(FormatError, match="--preset or --map"):
        csv_.read(VECTORS / "generic.csv")


def test_keepass_refuses_other_files(tmp_path: Path) -> None:
    other = tmp_path / "x.kdbx"
    other.write_bytes(b"\x03\xd9\xa2\x9a\x67\xfb\x4b\xb5" + b"\x00" * 100)
    with pytest.raises(FormatError, match="KDBX"):
        keepass.read(other, passphrase="x")
    with pytest.raises(FormatError, match="passphrase or key file"):
        keepass.read(other)
    with pytest.raises(FormatError, match="not a KeePass file"):
        keepass.read(VECTORS / "generic.csv")


def _garbage_file(tmp: Path, data: bytes) -> Path:
    path = tmp / "garbage"
    path.write_bytes(data)
    return path


_GARBAGE = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=300).map(str.encode),
    st.builds(
        lambda body: b'{"encrypted": false, "items": ' + body.encode() + b"}",
        st.text(alphabet='[]{}",:0123456789abtype nul', max_size=80),
    ),
    st.builds(
        lambda body: b"<?xml version='1.0'?><KeePassFile><Root>" + body.encode(),
        st.text(alphabet="<>/GroupEntryStringKeyValue =\"'", max_size=120),
    ),
    st.builds(lambda body: b"title,value\n" + body.encode(), st.text(max_size=200)),
    st.builds(lambda body: keepass.KDBX_SIGNATURE + body, st.binary(max_size=300)),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_GARBAGE)
def test_readers_raise_only_the_typed_error_on_garbage(tmp_path: Path, data: bytes) -> None:
    path = _garbage_file(tmp_path, data)
    readers = [
        lambda: bitwarden.read(path),
        lambda: keepass.read(path),
        lambda: keepass.read(path, passphrase="p"),
        lambda: csv_.read(path),
        lambda: csv_.read(path, preset="itglue-domains"),
    ]
    for read in readers:
        try:
            read()
        except FormatError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_pass_entries_parse_anything(text: str) -> None:
    items = passstore.parse_entry(text, "dir/name", "entry dir/name")
    assert items and items[0].title == "dir/name" and items[0].group == ("dir",)
    assert all(i.kind in ("login", "totp") for i in items)
