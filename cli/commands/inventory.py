"""Vendors, domains and assets: one command group per kind, built from one table of fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli.common import (
    json_option,
    keyed_operation,
    operator_actor,
    print_fields,
    print_json,
    print_table,
    remote,
    remote_capable,
    with_store,
)

OWNER_HELP = "Owner of record: client, consultancy, third-party or unknown."

# kind -> [(field, help, choices or None)]
FieldSpec = list[tuple[str, str, tuple[str, ...] | None]]
FIELDS: dict[str, FieldSpec] = {
    "vendor": [
        (
            "category",
            "registrar, web-host, dns, email, isp, saas, software, telecom, hardware, "
            "support, cloud, payment or other",
            None,
        ),
        ("website", "Sign-in or support site.", None),
        ("renewal_date", "Contract or subscription renewal (YYYY-MM-DD).", None),
        (
            "twofa_location",
            "Where the account's 2FA lives: vault, client-device, "
            "consultant-device, vendor-sms, none, unknown.",
            None,
        ),
        ("account_number", "Account or customer number (sealed).", None),
        ("recovery_email", "Account recovery email (sealed).", None),
        ("recovery_phone", "Account recovery phone (sealed).", None),
    ],
    "domain": [
        ("registrar", "Registrar (a vendor; created if new).", None),
        ("registrant", "Registrant as registered.", None),
        ("expires_on", "Expiry date (YYYY-MM-DD).", None),
        ("dns_host", "DNS host (a vendor; created if new).", None),
    ],
    "asset": [
        (
            "kind",
            "router, firewall, switch, access-point, printer, print-server, server, nas, "
            "phone-system, ups, workstation, camera or other",
            None,
        ),
        ("location", "Where it is.", None),
        ("serial", "Serial number.", None),
        ("address", "Host name or IP address.", None),
        ("managing_vendor", "Vendor that manages it (created if new).", None),
    ],
}
COMMON: FieldSpec = [
    ("owner", OWNER_HELP, None),
    ("owner_name", "Name of a third-party owner.", None),
    ("notes", "Notes (sealed).", None),
]
COLUMNS = {
    "vendor": ["name", "category", "renewal_date", "twofa_location", "owner"],
    "domain": ["name", "registrar", "expires_on", "dns_host", "owner"],
    "asset": ["name", "kind", "location", "address", "owner"],
}


def kind_options(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name, help_text, _ in reversed(FIELDS[kind] + COMMON):
            func = click.option("--" + name.replace("_", "-"), name, help=help_text)(func)
        return func

    return decorate


def _plain(kind: str, row: Any, ctx: Any) -> dict[str, Any]:
    from vault.services.inventory import describe, vendor_namer

    return describe(kind, row, vendor_namer(ctx))


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def make_group(kind: str) -> click.Group:
    group = click.Group(kind, help=f"A client's {kind}s: add, list, show, update.")

    article = "an" if kind[0] in "aeiou" else "a"

    @group.command("add", help=f"Add {article} {kind} to a client.")
    @click.argument("client")
    @click.argument("name")
    @kind_options(kind)
    @json_option
    @with_store
    @remote_capable
    def add(store: Any, /, client: str, name: str, as_json: bool, **values: Any) -> None:
        if store is None:
            server, base = _remote_base(client, kind)
            data = server.call("POST", base, json_body={"name": name, **_given(values)})
            print_json(data) if as_json else click.echo(f"added {kind} {data['name']!r}")
            return
        args = {"kind": kind, "client": client, "name": name, "values": _given(values)}
        data = keyed_operation(store, "inventory.add", args)
        if as_json:
            print_json(data)
            return
        click.echo(f"added {kind} {data['name']!r}")
        for vendor in data["created_vendors"]:
            click.echo(f"added vendor {vendor!r}")

    @group.command("update", help=f"Change fields of a {kind} (an empty string clears a field).")
    @click.argument("client")
    @click.argument("name")
    @click.option("--name", "new_name", help="Rename it.")
    @kind_options(kind)
    @json_option
    @with_store
    @remote_capable
    def update(
        store: Any, /, client: str, name: str, new_name: str | None, as_json: bool, **values: Any
    ) -> None:
        given = _given(values)
        if store is None:
            server, base = _remote_base(client, kind)
            body = {**given, **({"name": new_name} if new_name is not None else {})}
            data = server.call("PATCH", f"{base}/{_quote(name)}", json_body=body)
            print_json(data) if as_json else click.echo(f"updated {kind} {data['name']!r}")
            return
        args = {"kind": kind, "client": client, "name": name, "new_name": new_name}
        data = keyed_operation(store, "inventory.update", {**args, "values": given})
        print_json(data) if as_json else click.echo(f"updated {kind} {data['name']!r}")

    @group.command("list", help=f"List a client's {kind}s (sealed fields not shown).")
    @click.argument("client")
    @click.option("--search", "query", help="Match the name.")
    @json_option
    @with_store
    @remote_capable
    def list_(store: Any, client: str, query: str | None, as_json: bool) -> None:
        from vault.services import inventory

        if store is None:
            server, base = _remote_base(client, kind)
            data = server.call("GET", base, params={"q": query})
        else:
            with store.read_context(operator_actor()) as ctx:
                rows = inventory.list_records(ctx, kind, client, query)
                data = [_plain(kind, r, ctx) for r in rows]
        if as_json:
            print_json(data)
        elif not data:
            click.echo(f"no {kind}s")
        else:
            print_table(COLUMNS[kind], [[d.get(c) for c in COLUMNS[kind]] for d in data])

    @group.command("show", help=f"Show one {kind} with its sealed fields (the read is recorded).")
    @click.argument("client")
    @click.argument("name")
    @json_option
    @with_store
    @remote_capable
    def show(store: Any, client: str, name: str, as_json: bool) -> None:
        if store is None:
            server, base = _remote_base(client, kind)
            data = server.call("GET", f"{base}/{_quote(name)}")
        else:
            args = {"kind": kind, "client": client, "name": name}
            data = keyed_operation(store, "inventory.show", args)
        if as_json:
            print_json(data)
        else:
            print_fields([(k, v) for k, v in data.items() if k not in ("id",)])

    return group


def _remote_base(client: str, kind: str) -> tuple[Any, str]:
    server = remote()
    return server, f"/clients/{server.client_id(client)}/{kind}s"


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


COMMANDS = [make_group(k) for k in ("vendor", "domain", "asset")]
