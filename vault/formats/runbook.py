"""The takeover runbook: an export's content as a plain-language guide for the client's owner.

``custody takeover open`` writes it as HTML and Markdown (jinja2 templates shipped beside this
module, ``templates/runbook.*.j2``). It lists every vendor account, domain and device with who
holds it, which credentials open what - **by title only: the runbook never contains a secret
value, username or note** - and an ordered list of what to change first:

1. the domain registrar and DNS (whoever controls them controls e-mail and the website);
2. e-mail and identity (password resets of everything else arrive there);
3. accounts the consultancy holds in its own name (the client does not control them yet);
4. everything else: other vendor accounts, then devices, then credentials linked to nothing.

Pure: takes the decoded content (a dict), returns text. No database, no keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

#: vendor categories that control the domain itself
REGISTRAR_CATEGORIES = ("registrar", "dns")
#: vendor categories through which password resets and sign-ins flow
IDENTITY_CATEGORIES = ("email",)
#: a domain expiring within this many days is flagged
EXPIRY_WARNING_DAYS = 60

OWNER_LABELS = {
    "client": "you",
    "consultancy": "your IT consultancy",
    "third-party": "a third party",
    "unknown": "not recorded",
}


@dataclass
class Step:
    """One group of the "change first" list."""

    title: str
    why: str
    items: list[dict[str, Any]] = field(default_factory=list)


def _opens(content: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """(record kind, record name) -> titles of the credentials that open it."""
    found: dict[tuple[str, str], list[str]] = {}
    for secret in content.get("secrets") or []:
        for link in secret.get("links") or []:
            found.setdefault((link["kind"], link["name"]), []).append(secret["title"])
    return found


def _owner(record: dict[str, Any]) -> str:
    label = OWNER_LABELS.get(record.get("owner") or "unknown", "not recorded")
    if record.get("owner") == "third-party" and record.get("owner_name"):
        label = f"{label} ({record['owner_name']})"
    return label


def _held(record: dict[str, Any]) -> str:
    if (record.get("owner") or "unknown") == "unknown":
        return "owner not recorded"
    return f"held by {_owner(record)}"


def _days_left(expires_on: Any, today: date) -> int | None:
    if not expires_on:
        return None
    try:
        return (date.fromisoformat(str(expires_on)) - today).days
    except ValueError:
        return None


def rotation_plan(content: dict[str, Any]) -> list[Step]:
    """The ordered "change these first" list (see the module docstring)."""
    opens = _opens(content)
    vendors = list(content.get("vendors") or [])
    domains = list(content.get("domains") or [])
    assets = list(content.get("assets") or [])
    placed: set[tuple[str, str]] = set()

    def item(kind: str, record: dict[str, Any], reason: str) -> dict[str, Any]:
        placed.add((kind, record["name"]))
        return {
            "kind": kind,
            "name": record["name"],
            "reason": reason,
            "held": _held(record),
            "credentials": sorted(opens.get((kind, record["name"]), [])),
        }

    registrar = Step(
        "Domain registrar and DNS",
        "Whoever controls the domain controls your e-mail and website: change these first.",
    )
    registrar_names = {d.get("registrar") for d in domains} | {d.get("dns_host") for d in domains}
    for vendor in vendors:
        if vendor.get("category") in REGISTRAR_CATEGORIES or vendor["name"] in registrar_names:
            registrar.items.append(item("vendor", vendor, "registrar or DNS provider"))
    for domain in domains:
        registrar.items.append(item("domain", domain, "your domain name"))

    identity = Step(
        "E-mail and sign-in accounts",
        "Password resets for everything else arrive here: secure them before the rest.",
    )
    for vendor in vendors:
        if ("vendor", vendor["name"]) not in placed and vendor.get(
            "category"
        ) in IDENTITY_CATEGORIES:
            identity.items.append(item("vendor", vendor, "e-mail / identity provider"))

    consultancy = Step(
        "Accounts held by your IT consultancy",
        "These are registered to your consultancy, not to you: ask for them to be moved to "
        "your name, and change their passwords.",
    )
    for kind, records in (("vendor", vendors), ("domain", domains), ("asset", assets)):
        for record in records:
            if (kind, record["name"]) not in placed and record.get("owner") == "consultancy":
                consultancy.items.append(item(kind, record, "owner of record: the consultancy"))

    rest = Step("Everything else", "Change these when the steps above are done.")
    for kind, records in (("vendor", vendors), ("asset", assets)):
        for record in records:
            if (kind, record["name"]) not in placed:
                rest.items.append(
                    item(kind, record, "vendor account" if kind == "vendor" else "device")
                )
    linked = {title for titles in opens.values() for title in titles}
    for secret in content.get("secrets") or []:
        if secret["title"] not in linked:
            rest.items.append(
                {
                    "kind": "credential",
                    "name": secret["title"],
                    "reason": "not linked to any account or device",
                    "held": "",
                    "credentials": [secret["title"]],
                }
            )
    return [step for step in (registrar, identity, consultancy, rest) if step.items]


def runbook_context(
    content: dict[str, Any],
    *,
    verification: dict[str, Any] | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """Everything the templates show - built here, so that no template can reach a value."""
    today = today or date.today()
    opens = _opens(content)
    client = content.get("client") or {}

    def with_credentials(kind: str, record: dict[str, Any]) -> dict[str, Any]:
        return {
            **{k: v for k, v in record.items() if k != "notes"},
            "owner_label": _owner(record),
            "credentials": sorted(opens.get((kind, record["name"]), [])),
        }

    domains = []
    for domain in content.get("domains") or []:
        row = with_credentials("domain", domain)
        left = _days_left(domain.get("expires_on"), today)
        row["days_left"] = left
        row["expiring"] = left is not None and left <= EXPIRY_WARNING_DAYS
        domains.append(row)
    credentials = [
        {
            "title": s["title"],
            "kind": s["kind"],
            "url": s.get("url"),
            "opens": [f"{link['kind']} {link['name']}" for link in s.get("links") or []],
            "version": s.get("version"),
        }
        for s in content.get("secrets") or []
    ]
    return {
        "client": {
            "name": client.get("name", "?"),
            "id": client.get("id", "?"),
            "contacts": client.get("contacts") or [],
            "notice_days": client.get("notice_days"),
        },
        "created_at": content.get("created_at"),
        "mode": content.get("mode"),
        "generated_at": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "verification": verification,
        "recipients": content.get("recipients") or [],
        "plan": rotation_plan(content),
        "vendors": [with_credentials("vendor", v) for v in content.get("vendors") or []],
        "domains": domains,
        "assets": [with_credentials("asset", a) for a in content.get("assets") or []],
        "credentials": credentials,
        "expiry_days": EXPIRY_WARNING_DAYS,
    }


def render(
    content: dict[str, Any],
    *,
    verification: dict[str, Any] | None = None,
    today: date | None = None,
) -> tuple[str, str]:
    """(HTML, Markdown) runbooks for an export's content."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vault.formats", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _markdown_cell
    env.filters["mdtext"] = _markdown_text
    context = runbook_context(content, verification=verification, today=today)
    html = env.get_template("runbook.html.j2").render(**context)
    markdown = env.get_template("runbook.md.j2").render(**context)
    return html, markdown


def _markdown_text(value: Any) -> str:
    """Text safe in Markdown prose: no raw HTML."""
    return str(value).replace("<", "&lt;").replace(">", "&gt;")


def _markdown_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell (no pipes, no line breaks, no raw HTML)."""
    if value is None or value == "":
        return "-"
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split()) or "-"
