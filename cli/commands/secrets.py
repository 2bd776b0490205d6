"""Secrets: add, get, list, history, update, link."""

from __future__ import annotations

from typing import Any

import click

from cli.common import (
    iso,
    json_option,
    operator_actor,
    print_fields,
    print_json,
    print_table,
    prompt_hidden,
    read_value_from_stdin,
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
    value = prompt_hidden(label)
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

    keys = unseal(store)
    value = _read_value(password_stdin)
    with store.context(operator_actor(), keys) as ctx:
        secret = secrets.add_secret(
            ctx,
            client,
            title=title,
            value=value,
            kind=kind,
            username=username,
            url=url,
            notes=notes,
            tags=list(tags),
            exclusive=exclusive,
            sensitive=sensitive,
            rotate_after_use=rotate_after_use,
        )
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

    Answered by the running vault (`custody start`) when there is one; otherwise the vault
    is opened and unsealed for this one read.
    """
    data = _read_via_agent(client, title, version, reason)
    if data is None:
        data = _read_direct(client, title, version, reason)
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
    import os

    from vault.agent import AgentUnavailable, call, socket_path

    if os.environ.get("CUSTODY_NO_AGENT") == "1":
        return None
    path = socket_path()
    if not os.path.exists(path):
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
    return {
        "title": s.secret.title,
        "kind": s.secret.kind,
        "version": s.version,
        "username": s.username,
        "url": s.secret.url,
        "value": s.value,
        "notes": s.notes,
    }


@secret_group.command("list")
@click.argument("client")
@click.option("--search", "query", help="Match title, url or tag.")
@click.option("--kind", type=click.Choice(KIND_CHOICES))
@click.option("--tag")
@json_option
@with_store
def secret_list(
    store: Any, client: str, query: str | None, kind: str | None, tag: str | None, as_json: bool
) -> None:
    """List a client's secrets: metadata only, no values."""
    from vault.services import secrets

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
    return {
        "id": s.id,
        "title": s.title,
        "kind": s.kind,
        "url": s.url,
        "tags": s.tags,
        "version": s.current_version,
        "exclusive": s.exclusive,
        "sensitive": s.sensitive,
        "rotate_after_use": s.rotate_after_use,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


@secret_group.command("history")
@click.argument("client")
@click.argument("title")
@json_option
@with_store
def secret_history(store: Any, client: str, title: str, as_json: bool) -> None:
    """List a secret's versions (who and when; no values)."""
    from vault.services import secrets

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
    from vault.services import secrets
    from vault.services.secrets import _UNSET

    keys = unseal(store)
    value = _read_value(password_stdin, "New value") if (new_value or password_stdin) else None
    with store.context(operator_actor(), keys) as ctx:
        secret = secrets.update_secret(
            ctx,
            client,
            title,
            value=value,
            new_title=new_title,
            username=_UNSET if username is None else username,
            url=_UNSET if url is None else url,
            notes=_UNSET if notes is None else notes,
            kind=kind,
            tags=list(tags) if tags else None,
            exclusive=exclusive,
            sensitive=sensitive,
            rotate_after_use=rotate_after_use,
        )
        data = _meta(secret)
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
    with store.context(operator_actor()) as ctx:
        inventory.link_secret(ctx, client, title, kind, name)
    if as_json:
        print_json({"secret": title, kind: name})
    else:
        click.echo(f"linked {title!r} to {kind} {name!r}")


COMMANDS = [secret_group]
