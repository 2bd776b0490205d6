"""Users, grants and the offboarding report - on the local store or a server."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import click

from cli.common import (
    json_option,
    keyed_operation_here,
    local_context,
    print_json,
    print_table,
    prompt_hidden,
    remote,
)


def _user_row(u: Any) -> dict[str, Any]:
    return {
        "username": u.username,
        "role": u.role,
        "client_id": u.client_id,
        "totp_enrolled": u.totp_confirmed_at is not None,
        "disabled": u.disabled_at is not None,
    }


@click.group("user")
def user_group() -> None:
    """People who sign in to the server: admins, consultants, client contacts, auditors."""


@user_group.command("add")
@click.argument("username")
@click.option(
    "--role", required=True, type=click.Choice(["admin", "consultant", "client", "auditor"])
)
@click.option("--client", help="For a client contact: the client it belongs to.")
@click.option("--password-stdin", is_flag=True, help="Read the initial password from stdin.")
@json_option
def user_add(
    username: str, role: str, client: str | None, password_stdin: bool, as_json: bool
) -> None:
    """Add a user. The initial password is asked twice (or read from stdin); the user enrols
    TOTP at first sign-in."""
    from cli.common import read_value_from_stdin

    password = read_value_from_stdin() if password_stdin else _new_password()
    server = remote()
    if server is not None:
        row = server.call(
            "POST",
            "/users",
            json_body={"username": username, "role": role, "password": password, "client": client},
        )
    else:
        from vault.services import users

        with local_context() as ctx:
            row = _user_row(
                users.create_user(ctx, username, role=role, password=password, client_name=client)
            )
    print_json(row) if as_json else click.echo(f"added {role} {row['username']}")


def _new_password() -> str:
    from vault.errors import InvalidInput

    first = prompt_hidden("Initial password", instead="use --password-stdin")
    if first != prompt_hidden("Repeat the password"):
        raise InvalidInput("the two passwords differ", field="password")
    return first


@user_group.command("list")
@json_option
def user_list(as_json: bool) -> None:
    server = remote()
    if server is not None:
        rows = server.call("GET", "/users")
    else:
        from vault.services import users

        with local_context() as ctx:
            rows = [_user_row(u) for u in users.list_users(ctx)]
    if as_json:
        print_json(rows)
    else:
        print_table(
            ["user", "role", "TOTP", "disabled"],
            [
                (
                    r["username"],
                    r["role"],
                    "yes" if r["totp_enrolled"] else "not yet",
                    "yes" if r["disabled"] else "",
                )
                for r in rows
            ],
        )


def _set_disabled(username: str, disabled: bool) -> None:
    server = remote()
    if server is not None:
        server.call("PATCH", f"/users/{username}", json_body={"disabled": disabled})
        return
    from vault.services import users

    with local_context() as ctx:
        users.set_disabled(ctx, username, disabled)


@user_group.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable a user: every session ends at once."""
    _set_disabled(username, True)
    click.echo(f"disabled {username}; their sessions are revoked")


@user_group.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    _set_disabled(username, False)
    click.echo(f"enabled {username}")


@user_group.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
def user_password(username: str, password_stdin: bool) -> None:
    """Set a password: your own, or anyone's as admin. Their sessions end."""
    from cli.common import read_value_from_stdin

    password = read_value_from_stdin() if password_stdin else _new_password()
    server = remote()
    if server is not None:
        server.call("PATCH", f"/users/{username}", json_body={"password": password})
    else:
        from vault.services import users

        with local_context() as ctx:
            users.set_password(ctx, username, password)
    click.echo(f"password of {username} changed; their sessions are ended")


@click.group("grant")
def grant_group() -> None:
    """Which clients a consultant works on (and which an auditor sees)."""


@grant_group.command("add")
@click.argument("username")
@click.argument("client")
@click.option(
    "--until",
    "until",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last day of the grant (YYYY-MM-DD).",
)
def grant_add(username: str, client: str, until: datetime | None) -> None:
    expires = datetime.combine(until.date(), time.max, tzinfo=UTC) if until else None
    server = remote()
    if server is not None:
        client_id = server.client_id(client)
        server.call(
            "PUT",
            f"/grants/{username}/{client_id}",
            json_body={"expires_at": expires.isoformat() if expires else None},
        )
    else:
        from vault.services import users

        with local_context() as ctx:
            users.grant(ctx, username, client, expires_at=expires)
    click.echo(f"granted {client} to {username}" + (f" until {until:%Y-%m-%d}" if until else ""))


@grant_group.command("remove")
@click.argument("username")
@click.argument("client")
def grant_remove(username: str, client: str) -> None:
    """Remove a grant: it takes effect on the user's very next request."""
    server = remote()
    if server is not None:
        server.call("DELETE", f"/grants/{username}/{server.client_id(client)}")
    else:
        from vault.services import users

        with local_context() as ctx:
            users.revoke_grant(ctx, username, client)
    click.echo(f"removed {username}'s grant on {client}")


@grant_group.command("list")
@click.option("--user", "username")
@json_option
def grant_list(username: str | None, as_json: bool) -> None:
    server = remote()
    if server is not None:
        rows = server.call("GET", "/grants", params={"username": username} if username else None)
    else:
        from vault.services import users

        with local_context() as ctx:
            rows = [
                {"username": u.username, "client": c.name, "expires_at": g.expires_at}
                for g, u, c in users.list_grants(ctx, username)
            ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            ["user", "client", "until"],
            [(r["username"], r["client"], r["expires_at"] or "") for r in rows],
        )


@click.group("report")
def report_group() -> None:
    """Reports."""


@report_group.command("offboarding")
@click.argument("username")
@json_option
def report_offboarding(username: str, as_json: bool) -> None:
    """What USERNAME checked out and nobody has rotated since: rotate these when they leave."""
    server = remote()
    if server is not None:
        items = server.call("GET", f"/reports/offboarding/{username}")["items"]
    else:
        from vault.services import checkout

        with local_context(reading=True) as ctx:
            items = [
                {
                    "client_id": s.client_id,
                    "title": s.title,
                    "version": r.version,
                    "last_seen": r.last_at,
                }
                for s, r in checkout.offboarding(ctx, username)
            ]
    if as_json:
        print_json(items)
    elif not items:
        click.echo(f"{username} has seen nothing that is still unrotated")
    else:
        print_table(
            ["secret", "version seen", "last seen"],
            [(i["title"], i["version"], i["last_seen"]) for i in items],
            title=f"Seen by {username}, not rotated since",
        )


@report_group.command("readiness")
@click.argument("client")
@json_option
def report_readiness(client: str, as_json: bool) -> None:
    """How ready CLIENT is to take over without us: a score and what to fix."""
    server = remote()
    if server is not None:
        report = server.call("GET", f"/reports/readiness/{server.client_id(client)}")
    else:
        report = keyed_operation_here("report.readiness", {"client": client})
    if as_json:
        print_json(report)
        return
    click.echo(
        f"{report['client']['name']}: takeover readiness {report['score']}/100 "
        f"(grade {report['grade']})"
    )
    for note in report["skipped"]:
        click.echo(f"not checked: {note}")
    if not report["findings"]:
        click.echo("no findings")
        return
    print_table(
        ["severity", "finding", "fix"],
        [(f["severity"], f["title"], f["fix"]) for f in report["findings"]],
        title="Findings, most urgent first",
    )


COMMANDS = [user_group, grant_group, report_group]
