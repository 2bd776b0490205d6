"""Secrets: add, get, list, history, update, link."""

from __future__ import annotations

from typing import Any

import click

from cli.common import (
    agent_socket,
    iso,
    json_option,
    keyed_operation,
    keyed_operation_here,
    local_context,
    operator_actor,
    print_fields,
    print_json,
    print_table,
    prompt_hidden,
    read_value_from_stdin,
    remote,
    remote_capable,
    running_agent,
    unseal,
    with_store,
)

KIND_CHOICES = ["login", "api-key", "totp", "ssh-key", "license", "note"]


@click.group("secret")
def secret_group() -> None:
    """Secrets of a client: passwords, API keys, TOTP seeds, SSH keys, licenses, notes."""


def _read_value(password_stdin: bool, label: str = "Secret value") -> str:
    if password_stdin:
        return read_value_from_stdin()
    value = prompt_hidden(label, instead="use --password-stdin")
    if value != prompt_hidden("Repeat the value"):
        from vault.errors import InvalidInput

        raise InvalidInput("the two values differ", field="value")
    return value


@secret_group.command("add")
@click.argument("client")
@click.option("--title", required=True)
@click.option("--username")
@click.option("--url")
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="login", show_default=True)
@click.option("--notes", help="Notes (sealed like the value).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeatable.")
@click.option("--exclusive", is_flag=True, help="One check-out at a time.")
@click.option("--sensitive", is_flag=True, help="Check-out needs a fresh TOTP code.")
@click.option("--rotate-after-use", is_flag=True, help="Check-in must supply a new value.")
@click.option("--password-stdin", is_flag=True, help="Read the value from standard input.")
@json_option
@with_store
@remote_capable
def secret_add(
    store: Any,
    client: str,
    title: str,
    username: str | None,
    url: str | None,
    kind: str,
    notes: str | None,
    tags: tuple[str, ...],
    exclusive: bool,
    sensitive: bool,
    rotate_after_use: bool,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Add a secret. The value comes from a hidden prompt or --password-stdin, never an argument."""
    from vault.services import secrets

    fields = {
        "title": title,
        "kind": kind,
        "username": username,
        "url": url,
        "notes": notes,
        "tags": list(tags),
        "exclusive": exclusive,
        "sensitive": sensitive,
        "rotate_after_use": rotate_after_use,
    }
    if store is None:
        value = _read_value(password_stdin)
        server = remote()
        made = server.call(
            "POST",
            f"/clients/{server.client_id(client)}/secrets",
            json_body={**fields, "value": value},
        )
        data = {"id": made["id"], "title": made["title"], "version": made["version"]}
    elif (agent := running_agent()) is not None:
        from vault.agent import call

        value = _read_value(password_stdin)
        data = call(agent, "secret.add", {"client": client, **fields, "value": value})
    else:
        keys = unseal(store)
        value = _read_value(password_stdin)
        with store.context(operator_actor(), keys) as ctx:
            secret = secrets.add_secret(ctx, client, value=value, **fields)
            data = {"id": secret.id, "title": secret.title, "version": secret.current_version}
    print_json(data) if as_json else click.echo(f"added secret {data['title']!r}")


@secret_group.command("get")
@click.argument("client")
@click.argument("title")
@click.option("--version", type=int, help="An earlier version (default: current).")
@click.option(
    "--field",
    "field_name",
    type=click.Choice(["value", "username", "notes", "all"]),
    default="value",
    show_default=True,
)
@click.option("--reason", help="Why you need it (recorded in the audit log).")
@json_option
def secret_get(
    client: str, title: str, version: int | None, field_name: str, reason: str | None, as_json: bool
) -> None:
    """Print a secret's value (the read is recorded in the audit log).

    Against a server (--server), this is a check-out: it asks for a reason, opens a lease and
    prints how to check the secret back in. Locally it is answered by the running vault
    (`custody start`) when there is one; otherwise the vault is opened for this one read.
    """
    server = remote()
    if server is not None:
        if version is not None:
            from vault.errors import InvalidInput

            raise InvalidInput("earlier versions are not handed out over the API", field="version")
        data = _checkout_remote(server, client, title, reason or _ask_reason(), None, None, None)
    else:
        data = _read_via_agent(client, title, version, reason) or _read_direct(
            client, title, version, reason
        )
    if as_json:
        print_json(data)
    elif field_name == "all":
        print_fields(
            [
                (k, data[k])
                for k in ("title", "kind", "version", "username", "url", "value", "notes")
            ]
        )
    else:
        click.echo(data[field_name] or "")


def _read_via_agent(
    client: str, title: str, version: int | None, reason: str | None
) -> dict[str, Any] | None:
    from vault.agent import AgentUnavailable, call

    path = agent_socket()
    if path is None:
        return None
    try:
        result: dict[str, Any] = call(
            path,
            "secret.read",
            {"client": client, "title": title, "version": version, "reason": reason},
        )
    except AgentUnavailable:
        return None
    return result


@with_store
def _read_direct(
    store: Any, client: str, title: str, version: int | None, reason: str | None
) -> dict[str, Any]:
    from vault.services import secrets

    keys = unseal(store)
    with store.context(operator_actor(), keys) as ctx:
        s = secrets.read_secret(ctx, client, title, version=version, reason=reason)
    return s.as_dict()


@secret_group.command("list")
@click.argument("client")
@click.option("--search", "query", help="Match title, url or tag.")
@click.option("--kind", type=click.Choice(KIND_CHOICES))
@click.option("--tag")
@json_option
@with_store
@remote_capable
def secret_list(
    store: Any, client: str, query: str | None, kind: str | None, tag: str | None, as_json: bool
) -> None:
    """List a client's secrets: metadata only, no values."""
    from vault.services import secrets

    if store is None:
        server = remote()
        client_id = server.client_id(client)
        data = server.call(
            "GET", f"/clients/{client_id}/secrets", params={"q": query, "kind": kind, "tag": tag}
        )
        for d in data:
            d["updated_at"] = d["updated_at"][:10] if d["updated_at"] else None
    else:
        with store.context(operator_actor()) as ctx:
            rows = secrets.list_secrets(ctx, client, query=query, kind=kind, tag=tag)
            data = [_meta(s) for s in rows]
    if as_json:
        print_json(data)
    elif not data:
        click.echo("no secrets match")
    else:
        print_table(
            ["title", "kind", "url", "tags", "version", "updated"],
            [
                (
                    d["title"],
                    d["kind"],
                    d["url"],
                    ", ".join(d["tags"]),
                    d["version"],
                    (iso(d["updated_at"]) or "")[:10],
                )
                for d in data
            ],
        )


def _meta(s: Any) -> dict[str, Any]:
    from vault.services.secrets import describe

    return describe(s)


@secret_group.command("history")
@click.argument("client")
@click.argument("title")
@json_option
@with_store
@remote_capable
def secret_history(store: Any, client: str, title: str, as_json: bool) -> None:
    """List a secret's versions (who and when; no values)."""
    from vault.services import secrets

    if store is None:
        server = remote()
        client_id = server.client_id(client)
        data = server.call(
            "GET", f"/clients/{client_id}/secrets/{_secret_id(server, client_id, title)}/versions"
        )
    else:
        with store.context(operator_actor()) as ctx:
            data = [
                {"version": v.version, "created_at": v.created_at, "created_by": v.created_by}
                for v in secrets.history(ctx, client, title)
            ]
    if as_json:
        print_json(data)
    else:
        print_table(
            ["version", "created", "by"],
            [(d["version"], iso(d["created_at"]), d["created_by"]) for d in data],
        )


@secret_group.command("update")
@click.argument("client")
@click.argument("title")
@click.option("--new-value", is_flag=True, help="Ask for a new value (hidden prompt).")
@click.option("--password-stdin", is_flag=True, help="Read the new value from standard input.")
@click.option("--title", "new_title", help="Rename the secret.")
@click.option("--username")
@click.option("--url")
@click.option("--notes")
@click.option("--kind", type=click.Choice(KIND_CHOICES))
@click.option("--tag", "tags", multiple=True, help="Replace the tags; repeatable.")
@click.option("--exclusive/--no-exclusive", default=None)
@click.option("--sensitive/--no-sensitive", default=None)
@click.option("--rotate-after-use/--no-rotate-after-use", default=None)
@json_option
@with_store
@remote_capable
def secret_update(
    store: Any,
    client: str,
    title: str,
    new_value: bool,
    password_stdin: bool,
    new_title: str | None,
    username: str | None,
    url: str | None,
    notes: str | None,
    kind: str | None,
    tags: tuple[str, ...],
    exclusive: bool | None,
    sensitive: bool | None,
    rotate_after_use: bool | None,
    as_json: bool,
) -> None:
    """Update a secret; a new value, username or notes makes a new version."""
    value = _read_value(password_stdin, "New value") if (new_value or password_stdin) else None
    if store is None:
        server = remote()
        client_id = server.client_id(client)
        changes = {
            "value": value,
            "title": new_title,
            "username": username,
            "url": url,
            "notes": notes,
            "kind": kind,
            "tags": list(tags) if tags else None,
            "exclusive": exclusive,
            "sensitive": sensitive,
            "rotate_after_use": rotate_after_use,
        }
        data = server.call(
            "PATCH",
            f"/clients/{client_id}/secrets/{_secret_id(server, client_id, title)}",
            json_body={k: v for k, v in changes.items() if v is not None},
        )
        if as_json:
            print_json(data)
        else:
            click.echo(f"updated secret {data['title']!r} (version {data['version']})")
        return
    given = {"username": username, "url": url, "notes": notes}
    data = keyed_operation(
        store,
        "secret.update",
        {
            "client": client,
            "title": title,
            "value": value,
            "new_title": new_title,
            "kind": kind,
            "tags": list(tags) if tags else None,
            "exclusive": exclusive,
            "sensitive": sensitive,
            "rotate_after_use": rotate_after_use,
            # left out: unchanged (the agent tells an absent field from a cleared one)
            **{name: text for name, text in given.items() if text is not None},
        },
    )
    if as_json:
        print_json(data)
    else:
        click.echo(f"updated secret {data['title']!r} (version {data['version']})")


@secret_group.command("link")
@click.argument("client")
@click.argument("title")
@click.option("--vendor")
@click.option("--domain")
@click.option("--asset")
@json_option
@with_store
@remote_capable
def secret_link(
    store: Any,
    client: str,
    title: str,
    vendor: str | None,
    domain: str | None,
    asset: str | None,
    as_json: bool,
) -> None:
    """Record which vendor account, domain or asset a secret opens."""
    from vault.errors import InvalidInput
    from vault.services import inventory

    targets = [(k, v) for k, v in (("vendor", vendor), ("domain", domain), ("asset", asset)) if v]
    if len(targets) != 1:
        raise InvalidInput("give exactly one of --vendor, --domain, --asset", field="target")
    kind, name = targets[0]
    if store is None:
        server = remote()
        client_id = server.client_id(client)
        server.call(
            "POST",
            f"/clients/{client_id}/secrets/{_secret_id(server, client_id, title)}/links",
            json_body={"kind": kind, "name": name},
        )
    else:
        with store.context(operator_actor()) as ctx:
            inventory.link_secret(ctx, client, title, kind, name)
    if as_json:
        print_json({"secret": title, kind: name})
    else:
        click.echo(f"linked {title!r} to {kind} {name!r}")


def _ask_reason() -> str:
    return str(click.prompt("Reason (or ticket) for this check-out", err=True))


def _secret_id(server: Any, client_id: str, title: str) -> str:
    found = server.call("GET", f"/clients/{client_id}/secrets", params={"title": title})
    return str(found[0]["id"])


def _checkout_remote(
    server: Any,
    client: str,
    title: str,
    reason: str | None,
    ticket: str | None,
    ttl: int | None,
    totp: str | None,
) -> dict[str, Any]:
    client_id = server.client_id(client)
    secret_id = _secret_id(server, client_id, title)
    out: dict[str, Any] = server.call(
        "POST",
        f"/clients/{client_id}/secrets/{secret_id}/checkout",
        json_body={"reason": reason, "ticket": ticket, "ttl_seconds": ttl, "totp": totp},
    )
    lease = out["lease"]
    click.echo(
        f"lease {lease['id']} until {lease['expires_at']}; check in with: "
        f"custody secret checkin {lease['id']}",
        err=True,
    )
    return out


@secret_group.command("checkout")
@click.argument("client")
@click.argument("title")
@click.option("--reason", help="Why (free text); this or --ticket is required.")
@click.option("--ticket", help="A ticket reference.")
@click.option("--ttl", type=int, help="Lease length in seconds (default 3600).")
@click.option("--totp", "totp_code", help="A fresh TOTP code, for sensitive secrets.")
@click.option(
    "--field",
    "field_name",
    type=click.Choice(["value", "username", "notes"]),
    default="value",
    show_default=True,
)
@json_option
def secret_checkout(
    client: str,
    title: str,
    reason: str | None,
    ticket: str | None,
    ttl: int | None,
    totp_code: str | None,
    field_name: str,
    as_json: bool,
) -> None:
    """Check a secret out: opens a lease and prints the value."""
    server = remote()
    if server is not None:
        data = _checkout_remote(server, client, title, reason, ticket, ttl, totp_code)
    else:
        data = keyed_operation_here(
            "secret.checkout",
            {
                "client": client,
                "title": title,
                "reason": reason,
                "ticket": ticket,
                "ttl": ttl,
                "totp": totp_code,
            },
        )
        click.echo(f"lease {data['lease']['id']} until {data['lease']['expires_at']}", err=True)
    if as_json:
        print_json(data)
    else:
        click.echo(data[field_name] or "")


@secret_group.command("checkin")
@click.argument("lease_id")
@click.option("--generate", is_flag=True, help="Rotate to a generated value (printed once).")
@click.option("--new-value", is_flag=True, help="Rotate: ask for the new value.")
@click.option("--password-stdin", is_flag=True, help="Rotate: read the new value from stdin.")
@json_option
def secret_checkin(
    lease_id: str, generate: bool, new_value: bool, password_stdin: bool, as_json: bool
) -> None:
    """End a lease; rotate-after-use secrets need --generate or a new value."""
    value = _read_value(password_stdin, "New value") if (new_value or password_stdin) else None
    server = remote()
    if server is not None:
        data = server.call(
            "POST",
            f"/leases/{lease_id}/checkin",
            json_body={"new_value": value, "generate": generate},
        )
    else:
        data = keyed_operation_here(
            "secret.checkin", {"lease": lease_id, "new_value": value, "generate": generate}
        )
    if as_json:
        print_json(data)
        return
    click.echo(
        f"checked in {lease_id}"
        + (f"; now version {data['new_version']}" if data["new_version"] else "")
    )
    if data.get("generated_value"):
        click.echo(data["generated_value"])


@secret_group.command("totp")
@click.argument("client")
@click.argument("title")
def secret_totp(client: str, title: str) -> None:
    """Print the current code of a stored TOTP seed (the seed itself stays in the vault)."""
    server = remote()
    if server is not None:
        client_id = server.client_id(client)
        out = server.call(
            "POST", f"/clients/{client_id}/secrets/{_secret_id(server, client_id, title)}/totp"
        )
        code, remaining = out["code"], out["valid_for_seconds"]
    else:
        out = keyed_operation_here("secret.totp", {"client": client, "title": title})
        code, remaining = out["code"], out["valid_for_seconds"]
    click.echo(code)
    click.echo(f"valid for {remaining} more seconds", err=True)


@click.group("lease")
def lease_group() -> None:
    """Open check-outs."""


@lease_group.command("list")
@click.option("--overdue", is_flag=True, help="Only leases past their expiry.")
@json_option
def lease_list(overdue: bool, as_json: bool) -> None:
    server = remote()
    if server is not None:
        rows = server.call("GET", "/leases", params={"overdue": overdue})
    else:
        from vault.services import checkout

        with local_context() as ctx:
            rows = [
                {
                    "id": x.id,
                    "holder": x.holder,
                    "secret_id": x.secret_id,
                    "reason": x.reason,
                    "expires_at": x.expires_at,
                }
                for x in checkout.list_leases(ctx, overdue=overdue)
            ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            ["lease", "holder", "reason", "expires"],
            [(r["id"], r["holder"], r["reason"] or "", r["expires_at"]) for r in rows],
        )


@lease_group.command("release")
@click.argument("lease_id")
def lease_release(lease_id: str) -> None:
    """Admin: end someone else's lease now."""
    server = remote()
    if server is not None:
        server.call("POST", f"/leases/{lease_id}/release")
    else:
        from vault.services import checkout

        with local_context() as ctx:
            checkout.force_release(ctx, lease_id)
    click.echo(f"released {lease_id}")


COMMANDS = [secret_group, lease_group]
