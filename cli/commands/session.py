"""Signing in to a server: login (with TOTP enrolment on first sign-in), logout, tokens."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from cli.common import json_option, print_json, print_table, prompt_hidden, server_url


def _need_server() -> str:
    url = server_url()
    if url is None:
        from vault.errors import InvalidInput

        raise InvalidInput("give the server: custody --server URL login", field="server")
    return url


@click.command()
@click.option("--username", "-u", prompt=True, help="Your username on the server.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--totp", "totp_code", help="The current TOTP code (asked if not given).")
def login(username: str, password_stdin: bool, totp_code: str | None) -> None:
    """Sign in to a server; the token is kept in your config directory (mode 0600).

    The password and the TOTP code are asked on the terminal. On your first sign-in you enrol
    an authenticator app (a QR code is shown), confirm it with a first code, then sign in.
    """
    from cli.remote import Remote, save_session

    url = _need_server()
    server = Remote(url, token="")
    from cli.common import read_value_from_stdin

    password = (
        read_value_from_stdin()
        if password_stdin
        else prompt_hidden("Password", instead="use --password-stdin")
    )
    code = totp_code
    if code is None:
        code = click.prompt(
            "TOTP code (empty if not enrolled yet)", default="", show_default=False, err=True
        )
    answer = _login(server, username, password, code or None)
    if answer["scope"] == "enroll":
        _enroll(Remote(url, token=answer["token"]))
        code = click.prompt("Next TOTP code, to sign in", err=True)
        answer = _login(server, username, password, code)
    save_session(url, username, answer["token"], answer["expires_at"])
    click.echo(f"signed in to {url} as {username} until {answer['expires_at']}")


def _login(server: Any, username: str, password: str, code: str | None) -> dict[str, Any]:
    result: dict[str, Any] = server.call(
        "POST",
        "/auth/login",
        auth=False,
        json_body={"username": username, "password": password, "totp": code},
    )
    return result


def _enroll(server: Any) -> None:
    uri = server.call("POST", "/auth/totp/enroll")["otpauth_uri"]
    click.echo("Scan this with your authenticator app (or enter the URI by hand):", err=True)
    import io

    import segno

    out = io.StringIO()
    segno.make(uri, error="m").terminal(out=out, compact=True)
    click.echo(out.getvalue(), err=True)
    click.echo(uri, err=True)
    code = click.prompt("First code from the app", err=True)
    server.call("POST", "/auth/totp/confirm", json_body={"code": code})
    click.echo("TOTP enrolled.", err=True)


@click.command()
def logout() -> None:
    """End your session on the server: the token is revoked there and forgotten here."""
    from cli.remote import Remote, forget_session
    from vault.errors import Unauthenticated

    url = _need_server()
    # Already expired or revoked: forgetting it is all that is left to do.
    with contextlib.suppress(Unauthenticated):
        Remote(url).call("POST", "/auth/logout")
    forget_session(url)
    click.echo(f"signed out of {url}")


@click.group("token")
def token_group() -> None:
    """Your API tokens on the server (for scripts)."""


@token_group.command("list")
@json_option
def token_list(as_json: bool) -> None:
    from cli.remote import Remote

    rows = Remote(_need_server()).call("GET", "/auth/tokens")
    if as_json:
        print_json(rows)
    else:
        print_table(
            ["id", "label", "scope", "expires", "revoked", "last used"],
            [
                (
                    r["id"],
                    r["label"],
                    r["scope"],
                    r["expires_at"],
                    r["revoked_at"] or "",
                    r["last_used_at"] or "",
                )
                for r in rows
            ],
        )


@token_group.command("create")
@click.option("--label", required=True)
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 365))
def token_create(label: str, days: int) -> None:
    """Make an API token; it is printed once."""
    from cli.remote import Remote

    row = Remote(_need_server()).call(
        "POST", "/auth/tokens", json_body={"label": label, "ttl_days": days}
    )
    click.echo(row["token"])


@token_group.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    from cli.remote import Remote

    Remote(_need_server()).call("DELETE", f"/auth/tokens/{token_id}")
    click.echo(f"revoked {token_id}")


COMMANDS = [login, logout, token_group]
