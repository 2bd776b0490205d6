"""Takeover readiness: each check finds what it should, and fixing it raises the score."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Vault
from vault.crypto import age
from vault.db.models import User, utcnow
from vault.errors import NotFound
from vault.services import (
    Principal,
    checkout,
    clients,
    escrow,
    inventory,
    readiness,
    secrets,
    users,
)

PW = "a long enough password"
STRONG = "Xk9#vQ2!mZ7$wR4@pL8&"


def _codes(report: readiness.Readiness) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for f in report.findings:
        out.setdefault(f.code, []).append(f.record_name)
    return out


def _report(vault: Vault, keys: bool = True, today: date | None = None) -> readiness.Readiness:
    with vault.ctx(keys=keys) as ctx:
        return readiness.readiness(ctx, "Acme", today=today)


def test_a_clean_client_scores_100(vault: Vault, tmp_path: Path) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(age.X25519Identity.generate().recipient)])
        inventory.add_record(
            ctx, "vendor", "Acme", name="Gandi", owner="client", twofa_location="vault"
        )
        secrets.add_secret(ctx, "Acme", title="Gandi login", value=STRONG)
        inventory.link_secret(ctx, "Acme", "Gandi login", "vendor", "Gandi")
        escrow.add_destination(ctx, "Acme", directory=str(tmp_path))
    report = _report(vault)
    assert report.findings == [] and report.score == 100 and report.grade == "A"


def test_every_check_finds_its_problem(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(readiness.CONSULTANCY_DOMAINS_ENV, "msp.example")
    today = utcnow().date()
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")  # no escrow recipient
        clients.add_contact(ctx, "Acme", "Ann Owner", email="ann@acme.example", phone="+1 555 0100")
        inventory.add_record(
            ctx,
            "vendor",
            "Acme",
            name="Gandi",
            owner="consultancy",
            twofa_location="consultant-device",
            recovery_email="noc@msp.example",
            recovery_phone="+1 555 0199",
        )
        inventory.add_record(
            ctx,
            "vendor",
            "Acme",
            name="M365",
            owner="client",
            twofa_location="vault",
            renewal_date=str(today + timedelta(days=20)),
            recovery_email="it@elsewhere.example",
        )
        inventory.add_record(
            ctx,
            "domain",
            "Acme",
            name="acme.example",
            owner="client",
            expires_on=str(today + timedelta(days=10)),
        )
        inventory.add_record(ctx, "asset", "Acme", name="Core switch", owner="unknown")
        secrets.add_secret(ctx, "Acme", title="Gandi login", value="password1")
        secrets.add_secret(ctx, "Acme", title="M365 admin", value="password1")
        secrets.add_secret(ctx, "Acme", title="Router", value=STRONG)
        inventory.link_secret(ctx, "Acme", "Gandi login", "vendor", "Gandi")
        inventory.link_secret(ctx, "Acme", "M365 admin", "vendor", "M365")
        users.create_user(ctx, "carol", role="consultant", password=PW)
        users.grant(ctx, "carol", "Acme")
    with vault.store.session() as s:
        carol = users.principal_for(
            s, s.scalars(select(User).where(User.username == "carol")).one()
        )
    with vault.store.context(carol, vault.keys) as ctx:
        checkout.checkout(ctx, "Acme", "Router", reason="fix VPN")
    with vault.ctx() as ctx:
        users.revoke_grant(ctx, "carol", "Acme")
        checkout.expire_leases(ctx, now=utcnow() + timedelta(days=1))

    report = _report(vault)
    found = _codes(report)
    assert found["no-escrow-recipient"] == ["Acme"]
    assert found["no-escrow-drop"] == ["Acme"]
    assert found["owned-by-consultancy"] == ["Gandi"]
    assert found["owner-unknown"] == ["Core switch"]
    assert found["domain-expiring"] == ["acme.example"]
    assert found["renewal-due"] == ["M365"]
    assert found["twofa-not-in-vault"] == ["Gandi"]
    assert found["rotation-debt"] == ["Router"]
    assert found["never-checked-in"] == ["Router"]
    assert found["orphan-secret"] == ["Router"]
    assert sorted(found["password-reused"]) == ["Gandi login", "M365 admin"]
    assert sorted(found["password-weak"]) == ["Gandi login", "M365 admin"]
    assert sorted(found["recovery-email-not-client"]) == ["Gandi", "M365"]
    assert found["recovery-phone-not-client"] == ["Gandi"]
    assert report.findings[0].severity == "critical"
    assert report.score < 50 and report.grade == "D"
    by_code = {f.code: f for f in report.findings}
    assert by_code["recovery-email-not-client"].severity in ("high", "medium")
    # no finding ever carries a value
    text = repr([f.as_dict() for f in report.findings])
    assert "password1" not in text and STRONG not in text

    # sealed: the value checks are skipped and say so, the rest still runs
    sealed = _report(vault, keys=False)
    assert "password-reused" not in _codes(sealed) and sealed.skipped
    assert "rotation-debt" in _codes(sealed)

    # fixing things raises the score
    with vault.ctx() as ctx:
        clients.add_recipient(ctx, "Acme", str(age.X25519Identity.generate().recipient))
        inventory.update_record(
            ctx, "domain", "Acme", "acme.example", expires_on=str(today + timedelta(days=400))
        )
    better = _report(vault)
    assert "no-escrow-recipient" not in _codes(better) and "domain-expiring" not in _codes(better)
    assert better.score > report.score


def test_score_gives_repeats_less_weight() -> None:
    one = [readiness.Finding("x", "low", "t", "f")]
    many = one * 50
    assert readiness.score_of(one) == 99
    assert readiness.score_of(many) == 98  # a pile of small things stays small
    assert readiness.score_of([readiness.Finding("y", "critical", "t", "f")]) == 70


def test_scope_other_client_is_not_found(vault: Vault) -> None:
    with vault.ctx() as ctx:
        acme = clients.add_client(ctx, "Acme")
        clients.add_client(ctx, "Globex")
    contact = Principal(name="user:ann", role="client", clients=frozenset([acme.id]))
    with vault.store.context(contact, vault.keys) as ctx:
        assert readiness.readiness(ctx, "Acme").client_name == "Acme"
    with vault.store.context(contact, vault.keys) as ctx, pytest.raises(NotFound):
        readiness.readiness(ctx, "Globex")
