"""Import on a real store (SQLite and PostgreSQL): plan, dry run, idempotency, bad rows,
batches, the one audit event, and round trips through every writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import Vault
from vault.db.models import (
    Asset,
    AuditEvent,
    Domain,
    Secret,
    SecretLink,
    SecretVersion,
    Vendor,
)
from vault.formats import writers
from vault.formats.items import PortableItem, PortableVersion
from vault.formats.readers import read_source
from vault.services import Context, clients, export, imports, inventory, secrets
from vault.services.validation import name_key

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "import"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DP"


def _count(vault: Vault, model: type) -> int:
    with vault.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _run(vault: Vault, client: str, items: list[PortableItem], **kwargs: Any) -> Any:
    return imports.run_import(lambda: vault.ctx(), client, items, **kwargs)


def portable_records(ctx: Context, client_name: str) -> list[PortableItem]:
    """A client's secrets as portable items, with every earlier version and the links."""
    client = clients.get_client(ctx, client_name)
    cipher = ctx.keyring().cipher(client)
    names: dict[str, tuple[str, str]] = {}
    for kind, model in (("vendor", Vendor), ("domain", Domain), ("asset", Asset)):
        for row in ctx.session.scalars(select(model).where(model.client_id == client.id)):
            names[row.id] = (kind, row.name)
    out = []
    for secret in ctx.session.scalars(select(Secret).where(Secret.client_id == client.id)):
        versions = [
            secrets.reveal_version(cipher, client, secret, row)
            for row in ctx.session.scalars(
                select(SecretVersion)
                .where(SecretVersion.secret_id == secret.id)
                .order_by(SecretVersion.version)
            )
        ]
        links: dict[str, list[str]] = {"vendor": [], "domain": [], "asset": []}
        for link in ctx.session.scalars(
            select(SecretLink).where(SecretLink.secret_id == secret.id)
        ):
            kind, name = names[link.vendor_id or link.domain_id or link.asset_id or ""]
            links[kind].append(name)
        current = versions[-1]
        out.append(
            PortableItem(
                title=secret.title,
                kind=secret.kind,
                username=current.username,
                value=current.value,
                url=secret.url,
                notes=current.notes,
                tags=tuple(secret.tags),
                vendor=links["vendor"][0] if links["vendor"] else None,
                domains=tuple(sorted(links["domain"])),
                assets=tuple(sorted(links["asset"])),
                history=tuple(PortableVersion(v.value, v.created_at) for v in versions[:-1]),
            )
        )
    return sorted(out, key=lambda i: i.title)


def _comparable(item: PortableItem, *, history: bool = True) -> tuple[Any, ...]:
    value: Any = item.value
    if item.kind == "totp":
        key, digits, period, algorithm = secrets.parse_totp_seed(item.value)
        value = (key, digits, period, algorithm.name)
    return (
        item.title,
        item.kind,
        item.username,
        value,
        item.url,
        item.notes,
        item.tags,
        item.vendor,
        item.domains,
        item.assets,
        tuple(v.value for v in item.history) if history else (),
    )


def _fill(vault: Vault, client: str) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, client)
        inventory.add_record(ctx, "vendor", client, name="Gandi", category="registrar")
        inventory.add_record(ctx, "domain", client, name="acme.example", registrar="Gandi")
        inventory.add_record(ctx, "asset", client, name="FW01", kind="firewall")
        add = secrets.add_secret
        add(
            ctx,
            client,
            title="Gandi",
            value="first",
            username="ops",
            url="https://gandi.net",
            notes="registrar\nsecond line",
            tags=["dns", "billing"],
        )
        add(
            ctx,
            client,
            title="Gandi TOTP",
            kind="totp",
            value=SEED,
            url="https://gandi.net",
            tags=["dns", "billing"],
        )
        add(ctx, client, title="Lone TOTP", kind="totp", value=SEED)
        add(ctx, client, title="Alarm", kind="note", value="1234#", notes="front door")
        add(ctx, client, title="Stripe", kind="api-key", value="sk_test_abc", username="acct")
        add(
            ctx,
            client,
            title="Backup host",
            kind="ssh-key",
            value="-----BEGIN KEY-----\nabc\n-----END KEY-----",
            username="root",
        )
        add(ctx, client, title="Office licence", kind="license", value="AAAA-BBBB")
        add(ctx, client, title="Firewall", value="fw!", username="admin", url="https://10.0.0.1")
        secrets.update_secret(ctx, client, "Gandi", value="second")
        secrets.update_secret(ctx, client, "Gandi", value="third")
        for title in ("Gandi", "Gandi TOTP"):
            inventory.link_secret(ctx, client, title, "vendor", "Gandi")
            inventory.link_secret(ctx, client, title, "domain", "acme.example")
        inventory.link_secret(ctx, client, "Firewall", "asset", "FW01")


@pytest.mark.parametrize("fmt", writers.FORMATS)
def test_round_trip_through_each_writer(vault: Vault, tmp_path: Path, fmt: str) -> None:
    _fill(vault, "Acme")
    with vault.ctx() as ctx:
        original = portable_records(ctx, "Acme")
        clients.add_client(ctx, "Fresh")
    out = tmp_path / f"acme.{fmt}"
    # The real export path (what `custody export --format FMT` runs), with every version.
    with out.open("wb") as fh:
        result = export.export_portable(
            vault.store,
            vault.keys,
            "operator:test",
            "Acme",
            fmt,
            fh,
            history=True,
            passphrase="export pass" if fmt == "kdbx" else None,
        )
    assert result.manifest.counts["secrets"] == len(original)
    source = {"kdbx": "keepass", "bitwarden-json": "bitwarden", "csv": "csv"}[fmt]
    items, records = read_source(source, out, passphrase="export pass")
    result = _run(vault, "Fresh", items, records=records, source=source)
    assert result.created == len(original) and not result.errors
    with vault.ctx() as ctx:
        imported = portable_records(ctx, "Fresh")
    history = fmt != "csv"  # a CSV row has no history
    assert [_comparable(i, history=history) for i in imported] == [
        _comparable(i, history=history) for i in original
    ]
    # and importing it again creates nothing
    again = _run(vault, "Fresh", items, records=records, source=source)
    assert again.created == 0 and again.plan.counts()["present"] == len(original)


def test_dry_run_writes_nothing(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    items, _ = read_source("bitwarden", VECTORS / "bitwarden-individual.json")
    before = [_count(vault, m) for m in (Secret, SecretVersion, Vendor, Domain, AuditEvent)]
    with vault.ctx() as ctx:
        plan = imports.plan_import(ctx, "Acme", items)
    assert plan.counts()["create"] == len(items) == 6
    assert plan.counts()["vendors_create"] == 1  # gandi.net, from the URL
    assert [_count(vault, m) for m in (Secret, SecretVersion, Vendor, Domain, AuditEvent)] == before


def test_import_is_idempotent_and_audited_once(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Core switch", value="other", username="admin")
    items, _ = read_source("bitwarden", VECTORS / "bitwarden-individual.json")
    first = _run(vault, "Acme", items, source="bitwarden")
    counts = first.counts()
    assert counts["created"] == 5 and counts["skip"] == 1
    (skipped,) = [e for e in first.plan.entries if e.action == "skip"]
    assert skipped.reason == "a different secret already has this title"
    assert _count(vault, SecretVersion) == 1 + 5 + 2  # Gandi has two earlier versions
    before = [_count(vault, m) for m in (Secret, SecretVersion, Vendor, SecretLink)]
    second = _run(vault, "Acme", items, source="bitwarden")
    assert second.created == 0 and second.counts()["present"] == 5
    assert [_count(vault, m) for m in (Secret, SecretVersion, Vendor, SecretLink)] == before
    with vault.store.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    actions = [e.action for e in events]
    assert actions == ["client.add", "secret.add", "secret.import", "secret.import"]
    detail = events[2].detail
    assert detail["created"] == 5 and detail["source_format"] == "bitwarden"
    assert "gandi-pass" not in str([e.detail for e in events])


def test_same_secret_under_another_title_is_present(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(
            ctx,
            "Acme",
            title="M365",
            value="m365-secret",
            username="ADMIN@acme.onmicrosoft.com",
            url="https://admin.microsoft.com",
        )
    items, _ = read_source("bitwarden", VECTORS / "bitwarden-organization.json")
    with vault.ctx() as ctx:
        plan = imports.plan_import(ctx, "Acme", items)
    assert [(e.action, e.reason) for e in plan.entries] == [
        ("present", "already present as 'M365'")
    ]


def test_bad_rows_are_reported_with_their_line(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    items, _ = read_source("csv", VECTORS / "bad-row.csv")
    result = _run(vault, "Acme", items, source="csv")
    assert result.created == 1
    skipped = {e.item.origin: e.reason for e in result.plan.entries if e.action == "skip"}
    assert skipped == {
        "line 3": "invalid: kind must be one of: login, api-key, totp, ssh-key, license, note",
        "line 4": "invalid: title must not be empty",
        "line 5": "invalid: the secret value must not be empty",
    }
    assert _count(vault, Secret) == 1


def test_records_and_links_from_csv_presets(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    for preset in ("itglue-domains", "itglue-configurations"):
        _, records = read_source("csv", VECTORS / f"{preset}.csv", preset=preset)
        _run(vault, "Acme", [], records=records, source="csv")
    items, _ = read_source("csv", VECTORS / "itglue-passwords.csv", preset="itglue-passwords")
    result = _run(vault, "Acme", items, source="csv")
    assert result.created == 3
    with vault.ctx() as ctx:
        domain = inventory.show_record(ctx, "domain", "Acme", "acme.example")
        assert inventory.vendor_name(ctx, domain.row.registrar_id) == "Namecheap"
        assert inventory.show_record(ctx, "asset", "Acme", "FW01").row.kind == "firewall"
        records = {i.title: i for i in portable_records(ctx, "Acme")}
    assert records["Firewall admin"].assets == ("FW01",)
    # namecheap.com is not the client's domain: the URL names a vendor, matched by name
    assert records["Domain registrar"].vendor == "namecheap.com"


def test_batches_commit_separately(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    items = [
        PortableItem(title=f"S{i}", value=f"v{i}", url=f"https://www.h{i % 3}.org")
        for i in range(7)
    ]
    seen: list[tuple[int, int]] = []
    result = _run(vault, "Acme", items, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert result.batches == 3 and result.created == 7
    assert seen == [(0, 7), (3, 7), (6, 7), (7, 7)]
    assert _count(vault, Vendor) == 3 and _count(vault, SecretLink) == 7
    with vault.store.session() as s:
        assert [e.action for e in s.scalars(select(AuditEvent))].count("secret.import") == 1


def test_matching_is_case_insensitive(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(
            ctx, "Acme", title="gandi", value="pw", username="OPS", url="HTTPS://GANDI.NET"
        )
        inventory.add_record(ctx, "vendor", "Acme", name="GANDI.net")
    item = PortableItem(title="Gandi", value="pw", username="ops", url="https://gandi.net")
    other = PortableItem(title="Gandi API", kind="api-key", value="k", url="https://api.gandi.net")
    with vault.ctx() as ctx:
        plan = imports.plan_import(ctx, "Acme", [item, other])
    assert [e.action for e in plan.entries] == ["present", "create"]
    assert plan.entries[1].links == [("vendor", "GANDI.net")]
    assert plan.counts()["vendors_match"] == 1
    assert name_key("GANDI.net") == "gandi.net"


CANARY = "CANARY-1d2e3f-import-never-leaks"


def test_import_never_leaks_values(
    vault: Vault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    from vault.errors import FormatError

    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
    items = [
        PortableItem(
            title="Router",
            value=CANARY + "-value",
            username=CANARY + "-user",
            notes=CANARY + "-notes",
            history=(PortableVersion(CANARY + "-old"),),
        ),
        PortableItem(title="Huge", value=CANARY * 5000),
        PortableItem(title="Bad seed", kind="totp", value=CANARY),
    ]
    out = tmp_path / "x.json"
    writers.write("bitwarden-json", items, out)
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy.engine", "sqlalchemy.pool"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        read, _ = read_source("bitwarden", out)
        result = _run(vault, "Acme", read, source="bitwarden")
        again = _run(vault, "Acme", read, source="bitwarden")
    finally:
        for name in ("sqlalchemy.engine", "sqlalchemy.pool"):
            logging.getLogger(name).setLevel(logging.WARNING)
    assert result.created == 1 and again.created == 0
    assert CANARY not in caplog.text
    for obj in (result, again, result.plan, *result.plan.entries, *read):
        assert CANARY not in repr(obj)
    assert CANARY not in json.dumps(result.as_dict()) + json.dumps(again.as_dict())
    with vault.store.session() as s:
        for event in s.scalars(select(AuditEvent)):
            assert CANARY not in repr(event.detail)
    broken = tmp_path / "broken.json"
    for text in (
        '{"items": [{"type": 9, "name": "x", "login": {"password": "CANARY"}}]}',
        '{"items": [1, "CANARY"]}',
        '{"encrypted": true, "data": "CANARY"}',
        '{"items": "CANARY"',
    ):
        text = text.replace("CANARY", CANARY)
        broken.write_text(text)
        with pytest.raises(FormatError) as err:
            read_source("bitwarden", broken)
        assert CANARY not in str(err.value) and CANARY not in repr(err.value)
    with vault.ctx() as ctx:
        assert secrets.read_secret(ctx, "Acme", "Router").value == CANARY + "-value"
        assert secrets.read_secret(ctx, "Acme", "Router", version=1).value == CANARY + "-old"


@pytest.mark.interop
def test_kdbx_export_opens_in_keepassxc_with_every_entry(vault: Vault, tmp_path: Path) -> None:
    """`custody export --format kdbx`, opened by Debian's keepassxc-cli: every secret of the
    client is an entry with its username, password, URL and notes; TOTP seeds are in
    KeePassXC's otp field (paired with the login they belong to)."""
    import csv
    import io
    import subprocess

    from tests.interop import require_tool

    kxc = require_tool("keepassxc-cli")
    _fill(vault, "Acme")
    with vault.ctx() as ctx:
        original = portable_records(ctx, "Acme")
    out = tmp_path / "acme.kdbx"
    with out.open("wb") as fh:
        export.export_portable(
            vault.store, vault.keys, "operator:test", "Acme", "kdbx", fh, passphrase="kx pass 1"
        )
    done = subprocess.run(
        [kxc, "export", "-f", "csv", str(out)],
        input=b"kx pass 1\n",
        capture_output=True,
        timeout=120,
        check=True,
    )
    rows = {r["Title"]: r for r in csv.DictReader(io.StringIO(done.stdout.decode()))}
    paired = {"Gandi TOTP"}  # carried in the otp field of the "Gandi" entry
    assert set(rows) == {i.title for i in original} - paired
    for item in original:
        if item.title in paired:
            assert "secret=" in rows["Gandi"]["TOTP"]
            continue
        row = rows[item.title]
        if item.kind == "totp":
            assert row["Password"] == "" and "secret=" in row["TOTP"]
            continue
        assert (row["Username"], row["Password"], row["URL"], row["Notes"]) == (
            item.username or "",
            item.value,
            item.url or "",
            item.notes or "",
        )
