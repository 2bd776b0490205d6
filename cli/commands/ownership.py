"""A client's takeover of its own records, and the notices the consultancy gets."""

from __future__ import annotations

from typing import Any

import click

from cli.common import (
    json_option,
    local_context,
    print_fields,
    print_json,
    print_table,
    remote,
)


@click.group("takeover")
def takeover_group() -> None:
    """A client taking its records over: start, follow, call off; the notice period."""


def _show(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(status)
        return
    print_fields(
        [
            ("client", status["client"]["name"]),
            ("state", status["state"]),
            ("notice period", f"{status['notice_days']} days"),
            ("requested", status["requested_at"] or "-"),
            ("requested by", status["requested_by"] or "-"),
            ("takes effect", status["effective_at"] or "-"),
            ("owned by the client since", status["owned_at"] or "-"),
        ]
    )


@takeover_group.command("status")
@click.argument("client")
@json_option
def takeover_status(client: str, as_json: bool) -> None:
    """Where CLIENT's takeover stands."""
    server = remote()
    if server is not None:
        status = server.call("GET", f"/clients/{server.client_id(client)}/takeover")
    else:
        from vault.services import takeover

        with local_context() as ctx:
            status = takeover.status(ctx, client).as_dict()
    _show(status, as_json)


@takeover_group.command("start")
@click.argument("client")
@click.option("--totp", "totp_code", help="A fresh TOTP code (asked for if not given).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def takeover_start(client: str, totp_code: str | None, yes: bool, as_json: bool) -> None:
    """Start taking CLIENT's records over (a client contact, against the server).

    At once every escrow destination of the client gets a full export and the consultancy is
    notified; after the notice period the consultancy's grants end and the client's contacts
    manage access. Locally (the operator) this is a voluntary hand-over."""
    if not yes:
        click.confirm(f"Start the takeover of {client}?", abort=True, err=True)
    server = remote()
    if server is not None:
        if totp_code is None:
            totp_code = click.prompt("TOTP code", err=True)
        status = server.call(
            "POST",
            f"/clients/{server.client_id(client)}/takeover",
            json={"totp_code": totp_code},
        )
    else:
        from vault.services import takeover

        with local_context() as ctx:
            status = takeover.start(ctx, client).as_dict()
    _show(status, as_json)


@takeover_group.command("cancel")
@click.argument("client")
@json_option
def takeover_cancel(client: str, as_json: bool) -> None:
    """Call CLIENT's takeover off before it completes (the client only)."""
    server = remote()
    if server is None:
        from vault.errors import Forbidden

        raise Forbidden("only the client can call its takeover off: use --server after login")
    status = server.call("DELETE", f"/clients/{server.client_id(client)}/takeover")
    _show(status, as_json)


@takeover_group.command("notice")
@click.argument("client")
@click.argument("days", type=click.IntRange(0, 90))
@json_option
def takeover_notice(client: str, days: int, as_json: bool) -> None:
    """Set the notice the consultancy gets when CLIENT takes over (admin; 0 allowed)."""
    server = remote()
    if server is not None:
        status = server.call(
            "PUT",
            f"/clients/{server.client_id(client)}/takeover/notice",
            json={"notice_days": days},
        )
    else:
        from vault.services import takeover

        with local_context() as ctx:
            status = takeover.set_notice_days(ctx, client, days).as_dict()
    _show(status, as_json)


@click.group("notice")
def notice_group() -> None:
    """Notices for the consultancy's admins (takeovers, overdue escrow drops)."""


@notice_group.command("list")
@click.option("--all", "include_all", is_flag=True, help="Include acknowledged notices.")
@json_option
def notice_list(include_all: bool, as_json: bool) -> None:
    server = remote()
    if server is not None:
        items = server.call("GET", "/notices", params={"all": str(include_all).lower()})
    else:
        from vault.services import takeover

        with local_context() as ctx:
            items = [
                takeover.describe_notice(n)
                for n in takeover.list_notices(ctx, include_acknowledged=include_all)
            ]
    if as_json:
        print_json(items)
    elif not items:
        click.echo("no notices")
    else:
        print_table(
            ["id", "when", "kind", "message", "acknowledged"],
            [
                (n["id"][:8], n["created_at"], n["kind"], n["message"], n["acknowledged_by"] or "")
                for n in items
            ],
            title="Notices",
        )


@notice_group.command("ack")
@click.argument("notice_id")
def notice_ack(notice_id: str) -> None:
    """Acknowledge a notice (its full id)."""
    server = remote()
    if server is not None:
        server.call("POST", f"/notices/{notice_id}/ack")
    else:
        from vault.services import takeover

        with local_context() as ctx:
            takeover.acknowledge(ctx, notice_id)
    click.echo("acknowledged")


COMMANDS = [takeover_group, notice_group]
