"""Takeover readiness: how hard it would be for a client to leave today (the hostage-risk report).

Each check looks at the client's records (and, when the vault is unsealed, at sealed fields
and current values - never returned, only compared) and produces findings: what is wrong,
the record it concerns, and how to fix it. The score starts at 100 and loses points per
finding by severity, with diminishing weight for repeats of the same check, so one forgotten
router does not sink a client and a hundred orphans do not hide everything else.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select

from vault.db.models import (
    Asset,
    Client,
    Contact,
    Domain,
    Grant,
    Lease,
    Recipient,
    Reveal,
    Secret,
    SecretLink,
    User,
    Vendor,
    utcnow,
)
from vault.services import Context, audit
from vault.services.clients import get_client

SEVERITY_WEIGHT = {"critical": 30, "high": 10, "medium": 4, "low": 1}
SEVERITIES = tuple(SEVERITY_WEIGHT)
EXPIRY_WINDOW = timedelta(days=60)
RENEWAL_WINDOW = timedelta(days=60)
#: a value this long with three character classes is not worth running zxcvbn on
_STRONG_ENOUGH = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9]).{16,}$")
#: comma-separated e-mail domains of the consultancy (recovery addresses there are findings)
CONSULTANCY_DOMAINS_ENV = "CUSTODY_CONSULTANCY_DOMAINS"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    title: str
    fix: str
    record_kind: str | None = None
    record_id: str | None = None
    record_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "title": self.title,
            "fix": self.fix,
            "record": None
            if self.record_kind is None
            else {"kind": self.record_kind, "id": self.record_id, "name": self.record_name},
        }


@dataclass
class Readiness:
    client_id: str
    client_name: str
    score: int
    grade: str
    findings: list[Finding] = field(default_factory=list)
    #: checks that could not run (e.g. the vault is sealed), with why
    skipped: list[str] = field(default_factory=list)
    computed_at: datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}
        return {
            "client": {"id": self.client_id, "name": self.client_name},
            "score": self.score,
            "grade": self.grade,
            "counts": counts,
            "findings": [f.as_dict() for f in self.findings],
            "skipped": self.skipped,
            "computed_at": self.computed_at,
        }


def score_of(findings: Iterable[Finding]) -> int:
    """100 minus each check's penalty: its weight for the first finding, half for the second,
    a quarter for the third ... (at most twice the weight per check)."""
    per_code: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        per_code[f.code].append(f)
    penalty = 0.0
    for items in per_code.values():
        weight = max(SEVERITY_WEIGHT[f.severity] for f in items)
        penalty += weight * (2 - 2 ** (1 - len(items)))
    return max(0, round(100 - penalty))


def grade_of(score: int) -> str:
    return "A" if score >= 90 else "B" if score >= 75 else "C" if score >= 50 else "D"


def readiness(ctx: Context, client_name: str, *, today: date | None = None) -> Readiness:
    """Compute the report for one client (any role that may see the client)."""
    ctx.require("admin", "consultant", "client", "auditor")
    client = get_client(ctx, client_name)
    today = today or utcnow().date()
    findings: list[Finding] = []
    skipped: list[str] = []
    findings += _escrow(ctx, client)
    findings += _owners(ctx, client)
    findings += _dates(ctx, client, today)
    findings += _twofa(ctx, client)
    findings += _rotation_debt(ctx, client)
    findings += _never_checked_in(ctx, client)
    findings += _orphans(ctx, client)
    if ctx.keys is None:
        skipped.append(
            "reused or weak passwords and recovery contacts: the vault is sealed, so sealed "
            "fields cannot be compared"
        )
    else:
        findings += _values(ctx, client)
        findings += _recovery_contacts(ctx, client)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order[f.severity], f.code, f.record_name or ""))
    score = score_of(findings)
    audit.record(
        ctx,
        "report.readiness",
        client_id=client.id,
        score=score,
        findings=len(findings),
    )
    return Readiness(
        client_id=client.id,
        client_name=client.name,
        score=score,
        grade=grade_of(score),
        findings=findings,
        skipped=skipped,
    )


# --- the checks ----------------------------------------------------------------------------------


def _escrow(ctx: Context, client: Client) -> list[Finding]:
    from vault.db.models import EscrowDestination
    from vault.services.escrow import is_overdue

    out = []
    now = utcnow()
    destinations = list(
        ctx.session.scalars(
            select(EscrowDestination).where(EscrowDestination.client_id == client.id)
        )
    )
    for row in destinations:
        if row.overdue_since is not None or is_overdue(row, now):
            when = row.last_success_at.strftime("%Y-%m-%d") if row.last_success_at else "never"
            out.append(
                Finding(
                    "escrow-drop-overdue",
                    "high",
                    f"The escrow drop to {row.label or row.kind} is overdue (last success: {when})",
                    "Check the destination (`custody escrow list`): its last error says why",
                    "escrow_destination",
                    row.id,
                    row.label or row.kind,
                )
            )
    if not destinations:
        out.append(
            Finding(
                "no-escrow-drop",
                "low",
                "No scheduled escrow drop: the client has only the exports it asks for",
                "Add a destination the client controls (`custody escrow add`)",
                "client",
                client.id,
                client.name,
            )
        )
    count = ctx.session.scalar(
        select(Recipient.id).where(Recipient.client_id == client.id).limit(1)
    )
    if count is None:
        return out + [
            Finding(
                "no-escrow-recipient",
                "critical",
                "No escrow key is registered: the client cannot open an export without us",
                "Have the client run `custody client keygen` (or age-keygen) and register the "
                "public key with `custody recipient add`",
                "client",
                client.id,
                client.name,
            )
        ]
    return out


def _owners(ctx: Context, client: Client) -> list[Finding]:
    out = []
    for model, kind in ((Vendor, "vendor"), (Domain, "domain"), (Asset, "asset")):
        rows = ctx.session.execute(
            select(model.id, model.name, model.owner_kind).where(
                model.client_id == client.id, model.owner_kind.in_(("consultancy", "unknown"))
            )
        )
        for rid, name, owner in rows:
            if owner == "consultancy":
                out.append(
                    Finding(
                        "owned-by-consultancy",
                        "high",
                        f"The {kind} {name!r} is registered to the consultancy, not the client",
                        f"Transfer the {kind} into the client's name, then set its owner of "
                        "record to the client",
                        kind,
                        rid,
                        name,
                    )
                )
            else:
                out.append(
                    Finding(
                        "owner-unknown",
                        "medium",
                        f"Nobody knows who owns the {kind} {name!r}",
                        "Find the owner of record and write it down (owner_kind)",
                        kind,
                        rid,
                        name,
                    )
                )
    return out


def _dates(ctx: Context, client: Client, today: date) -> list[Finding]:
    out = []
    for rid, name, expires in ctx.session.execute(
        select(Domain.id, Domain.name, Domain.expires_on).where(
            Domain.client_id == client.id,
            Domain.expires_on.is_not(None),
            Domain.expires_on <= today + EXPIRY_WINDOW,
        )
    ):
        assert expires is not None  # filtered above
        days = (expires - today).days
        out.append(
            Finding(
                "domain-expiring",
                "critical" if days < 14 else "high",
                f"The domain {name!r} "
                + (f"expired {-days} days ago" if days < 0 else f"expires in {days} days"),
                "Renew it at the registrar (and turn on auto-renew with the client's card)",
                "domain",
                rid,
                name,
            )
        )
    for rid, name, renewal in ctx.session.execute(
        select(Vendor.id, Vendor.name, Vendor.renewal_date).where(
            Vendor.client_id == client.id,
            Vendor.renewal_date.is_not(None),
            Vendor.renewal_date <= today + RENEWAL_WINDOW,
        )
    ):
        assert renewal is not None  # filtered above
        days = (renewal - today).days
        out.append(
            Finding(
                "renewal-due",
                "medium",
                f"The {name!r} contract "
                + (f"lapsed {-days} days ago" if days < 0 else f"renews in {days} days"),
                "Confirm the renewal with the client and who pays for it",
                "vendor",
                rid,
                name,
            )
        )
    return out


def _twofa(ctx: Context, client: Client) -> list[Finding]:
    # A vendor linked to a TOTP secret in the vault has its seed here whatever the field says.
    seeded = (
        select(SecretLink.vendor_id)
        .join(Secret, Secret.id == SecretLink.secret_id)
        .where(Secret.client_id == client.id, Secret.kind == "totp")
    )
    rows = ctx.session.execute(
        select(Vendor.id, Vendor.name, Vendor.twofa_location).where(
            Vendor.client_id == client.id,
            Vendor.twofa_location.in_(("consultant-device", "unknown", "vendor-sms")),
            Vendor.id.not_in(seeded),
        )
    )
    out = []
    for rid, name, where in rows:
        if where == "consultant-device":
            severity, title = "high", f"The 2FA for {name!r} is on a consultant's phone"
        elif where == "vendor-sms":
            severity, title = "medium", f"The 2FA for {name!r} is an SMS to someone's phone"
        else:
            severity, title = "medium", f"Nobody recorded where the 2FA for {name!r} lives"
        out.append(
            Finding(
                "twofa-not-in-vault",
                severity,
                title,
                "Re-enrol the 2FA and store the seed in the vault (a TOTP secret linked to the "
                "vendor), or move it to a device the client owns",
                "vendor",
                rid,
                name,
            )
        )
    return out


def _rotation_debt(ctx: Context, client: Client) -> list[Finding]:
    """Current values seen by a consultant who has since lost access to this client."""
    now = utcnow()
    active_grant = exists().where(
        Grant.user_id == User.id,
        Grant.client_id == client.id,
        or_(Grant.expires_at.is_(None), Grant.expires_at > now),
    )
    rows = ctx.session.execute(
        select(Secret.id, Secret.title, User.username)
        .join(Reveal, Reveal.secret_id == Secret.id)
        .join(User, User.id == Reveal.user_id)
        .where(
            Secret.client_id == client.id,
            Reveal.version == Secret.current_version,
            User.role != "admin",
            or_(User.disabled_at.is_not(None), ~active_grant),
        )
        .order_by(Secret.title_key, User.username)
    )
    return [
        Finding(
            "rotation-debt",
            "high",
            f"{title!r} was seen by {username}, who no longer has access, and not rotated since",
            "Rotate the secret (check it out, change it at the vendor, check in the new value)",
            "secret",
            sid,
            title,
        )
        for sid, title, username in rows
    ]


def _never_checked_in(ctx: Context, client: Client) -> list[Finding]:
    now = utcnow()
    rows = ctx.session.execute(
        select(Secret.id, Secret.title, Lease.holder)
        .join(Lease, Lease.secret_id == Secret.id)
        .where(
            Secret.client_id == client.id,
            Lease.version == Secret.current_version,
            or_(
                Lease.release_kind == "expired",
                and_(Lease.released_at.is_(None), Lease.expires_at < now),
            ),
        )
        .distinct()
    )
    return [
        Finding(
            "never-checked-in",
            "medium",
            f"{title!r} was checked out by {holder} and never checked in",
            "Ask them to check it in, or rotate it",
            "secret",
            sid,
            title,
        )
        for sid, title, holder in rows
    ]


def _orphans(ctx: Context, client: Client) -> list[Finding]:
    rows = ctx.session.execute(
        select(Secret.id, Secret.title).where(
            Secret.client_id == client.id,
            Secret.kind.in_(("login", "api-key", "totp", "ssh-key", "license")),
            ~exists().where(SecretLink.secret_id == Secret.id),
        )
    )
    return [
        Finding(
            "orphan-secret",
            "low",
            f"{title!r} is not linked to any vendor, domain or device",
            "Link it (`custody secret link`) so the client knows what it opens",
            "secret",
            sid,
            title,
        )
        for sid, title in rows
    ]


def _values(ctx: Context, client: Client) -> list[Finding]:
    """Reused and weak passwords, from the current values (compared in memory, never shown)."""
    from vault.db.models import SecretVersion
    from vault.services.secrets import reveal_version

    cipher = ctx.keyring().cipher(client)
    seen: dict[bytes, list[tuple[str, str]]] = defaultdict(list)
    weak: list[tuple[str, str]] = []
    salt = os.urandom(16)  # fingerprints live only for this call
    rows = ctx.session.execute(
        select(Secret, SecretVersion)
        .join(
            SecretVersion,
            (SecretVersion.secret_id == Secret.id)
            & (SecretVersion.version == Secret.current_version),
        )
        .where(Secret.client_id == client.id, Secret.kind.in_(("login", "api-key")))
        .order_by(Secret.title_key)
        .execution_options(yield_per=500)
    )
    for secret, version in rows:
        value = reveal_version(cipher, client, secret, version).value
        if not value:
            continue
        fingerprint = hmac.new(salt, value.encode("utf-8"), hashlib.sha256).digest()
        seen[fingerprint].append((secret.id, secret.title))
        if secret.kind == "login" and not _strong(value, secret.title):
            weak.append((secret.id, secret.title))
    out = []
    for group in seen.values():
        if len(group) > 1:
            names = ", ".join(repr(t) for _, t in group)
            for sid, title in group:
                out.append(
                    Finding(
                        "password-reused",
                        "high",
                        f"{title!r} shares its password with {len(group) - 1} other record(s): "
                        f"{names}",
                        "Give each account its own generated password",
                        "secret",
                        sid,
                        title,
                    )
                )
    for sid, title in weak:
        out.append(
            Finding(
                "password-weak",
                "medium",
                f"The password of {title!r} is weak (guessable)",
                "Rotate it to a generated value",
                "secret",
                sid,
                title,
            )
        )
    return out


def _strong(value: str, title: str) -> bool:
    if len(value) >= 64 or _STRONG_ENOUGH.match(value):
        return True
    from zxcvbn import zxcvbn

    return int(zxcvbn(value[:64], user_inputs=[title])["score"]) >= 3


def _recovery_contacts(ctx: Context, client: Client) -> list[Finding]:
    """Vendor recovery e-mail/phone that is not the client's."""
    from vault.services.inventory import VENDOR, _open_private

    contacts = list(
        ctx.session.execute(
            select(Contact.email, Contact.phone).where(Contact.client_id == client.id)
        )
    )
    client_domains = {e.rsplit("@", 1)[-1].lower() for e, _ in contacts if e and "@" in e}
    client_phones = {_digits(p) for _, p in contacts if p}
    ours = {
        d.strip().lower()
        for d in os.environ.get(CONSULTANCY_DOMAINS_ENV, "").split(",")
        if d.strip()
    }
    out = []
    for vendor in ctx.session.scalars(select(Vendor).where(Vendor.client_id == client.id)):
        private = _open_private(ctx, VENDOR, client, vendor)
        email = (private.get("recovery_email") or "").strip()
        phone = (private.get("recovery_phone") or "").strip()
        domain = email.rsplit("@", 1)[-1].lower() if "@" in email else ""
        if domain and (domain in ours or (client_domains and domain not in client_domains)):
            out.append(
                Finding(
                    "recovery-email-not-client",
                    "high" if domain in ours else "medium",
                    f"The recovery e-mail of {vendor.name!r} is at {domain}"
                    + (", the consultancy's domain" if domain in ours else ", not the client's"),
                    "Change the account's recovery e-mail to an address the client controls",
                    "vendor",
                    vendor.id,
                    vendor.name,
                )
            )
        if phone and client_phones and _digits(phone) not in client_phones:
            out.append(
                Finding(
                    "recovery-phone-not-client",
                    "medium",
                    f"The recovery phone of {vendor.name!r} is not one of the client's contacts",
                    "Change the account's recovery phone to a number the client controls",
                    "vendor",
                    vendor.id,
                    vendor.name,
                )
            )
    return out


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-9:]
