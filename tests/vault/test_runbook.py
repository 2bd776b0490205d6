"""The takeover runbook: what to change first, in order, and never a secret value."""

from __future__ import annotations

import io
import json
from datetime import date
from typing import Any

from tests.conftest import Vault
from vault.crypto import age
from vault.formats.runbook import render, rotation_plan
from vault.services import clients, export, inventory, secrets

VALUES = ["rb-canary-registrar-pw", "rb-canary-mail-pw", "rb-canary-router-pw", "rb-canary-x"]


def _content(vault: Vault) -> dict[str, Any]:
    me = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(me.recipient)])
        clients.add_contact(ctx, "Acme", "Ann Owner", email="ann@acme.example", role="CEO")
        add = inventory.add_record
        add(ctx, "vendor", "Acme", name="CRM Cloud", category="saas", owner="client")
        add(ctx, "vendor", "Acme", name="Backup Co", category="cloud", owner="consultancy")
        add(
            ctx,
            "vendor",
            "Acme",
            name="M365",
            category="email",
            account_number="M365-ACCT-9",
            notes="rb-canary-vendor-notes",
            support_contacts=[{"name": "Microsoft", "phone": "+1 800 642 7676"}],
        )
        add(ctx, "vendor", "Acme", name="Gandi", category="registrar", owner="consultancy")
        add(ctx, "domain", "Acme", name="acme.example", registrar="Gandi", expires_on="2027-01-10")
        add(
            ctx,
            "asset",
            "Acme",
            name="Front <router>",
            kind="router",
            location="Server closet",
            owner="client",
        )
        for title, value in zip(
            ["Gandi login", "M365 admin", "Router admin", "Wi-Fi guest"], VALUES, strict=True
        ):
            secrets.add_secret(
                ctx, "Acme", title=title, value=value, username="rb-canary-user", notes="rb-n"
            )
        inventory.link_secret(ctx, "Acme", "Gandi login", "vendor", "Gandi")
        inventory.link_secret(ctx, "Acme", "M365 admin", "vendor", "M365")
        inventory.link_secret(ctx, "Acme", "Router admin", "asset", "Front <router>")
    out = io.BytesIO()
    export.export_client(vault.store, vault.keys, "operator:t", "Acme", out)
    data: dict[str, Any] = json.loads(age.decrypt(out.getvalue(), [me]))
    return data


def test_rotation_order(vault: Vault) -> None:
    plan = rotation_plan(_content(vault))
    assert [s.title for s in plan] == [
        "Domain registrar and DNS",
        "E-mail and sign-in accounts",
        "Accounts held by your IT consultancy",
        "Everything else",
    ]
    names = [[i["name"] for i in s.items] for s in plan]
    assert names[0] == ["Gandi", "acme.example"]
    assert names[1] == ["M365"]
    assert names[2] == ["Backup Co"]  # Gandi (consultancy's too) is already in step 1
    assert names[3] == ["CRM Cloud", "Front <router>", "Wi-Fi guest"]
    assert plan[0].items[0]["credentials"] == ["Gandi login"]


def test_runbook_lists_everything_but_never_a_value(vault: Vault) -> None:
    html, markdown = render(_content(vault), today=date(2026, 12, 1))
    for text in (html, markdown):
        for value in [*VALUES, "rb-canary-user", "rb-canary-vendor-notes"]:
            assert value not in text
        for expected in (
            "M365-ACCT-9",
            "+1 800 642 7676",
            "acme.example",
            "Server closet",
            "Ann Owner",
            "Router admin",
            "40 days left",
        ):
            assert expected in text, expected
    # HTML is escaped; Markdown table cells too
    assert "Front &lt;router&gt;" in html and "<router>" not in html
    assert "Front &lt;router&gt;" in markdown and "<router>" not in markdown
    assert "owner not recorded" in markdown and "held by your IT consultancy" in markdown
    assert markdown.index("Change these first") < markdown.index("## Vendor accounts")
    assert "this export was not checked" in markdown
