"""Escrow drops: scheduled delivery of a client's export to places the client controls."""

from __future__ import annotations

from typing import Any

import click

from cli.common import (
    json_option,
    keyed_operation_here,
    local_context,
    print_json,
    print_table,
    read_secret_file,
    remote,
)


@click.group("escrow")
def escrow_group() -> None:
    """Scheduled escrow drops: destinations, status, and running them (cron-friendly)."""


@escrow_group.command("add")
@click.argument("client")
@click.option("--dir", "directory", help="An absolute directory on the vault host (admin).")
@click.option("--url", help="An https:// endpoint of the client's.")
@click.option("--token-file", help="File holding the client's bearer token for --url.")
@click.option("--method", type=click.Choice(["PUT", "POST"]), default="PUT", show_default=True)
@click.option("--every", "every_hours", type=int, default=24, show_default=True, help="Hours.")
@click.option("--label", help="A name for this destination.")
@json_option
def escrow_add(
    client: str,
    directory: str | None,
    url: str | None,
    token_file: str | None,
    method: str,
    every_hours: int,
    label: str | None,
    as_json: bool,
) -> None:
    """Deliver CLIENT's export to a directory or an HTTPS endpoint every N hours."""
    token = read_secret_file(token_file, "--token-file") if token_file else None
    body = {
        "directory": directory,
        "url": url,
        "token": token,
        "method": method,
        "every_hours": every_hours,
        "label": label,
    }
    server = remote()
    if server is not None:
        row = server.call("POST", f"/clients/{server.client_id(client)}/escrow", json_body=body)
    else:
        from vault.services import escrow

        with local_context(unsealed=token is not None) as ctx:
            row = escrow.describe(escrow.add_destination(ctx, client, **body))  # type: ignore[arg-type]
    if as_json:
        print_json(row)
    else:
        click.echo(f"escrow destination {row['id']} added: {row['target']}, every {every_hours} h")


@escrow_group.command("list")
@click.argument("client")
@json_option
def escrow_list(client: str, as_json: bool) -> None:
    """CLIENT's destinations with their last success, last error and whether overdue."""
    server = remote()
    if server is not None:
        rows = server.call("GET", f"/clients/{server.client_id(client)}/escrow")
    else:
        from vault.services import escrow

        with local_context() as ctx:
            rows = [escrow.describe(d) for d in escrow.list_destinations(ctx, client)]
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(f"{client} has no escrow destination")
    else:
        print_table(
            ["id", "target", "every", "last success", "last error", "status"],
            [
                (
                    r["id"][:8],
                    r["target"],
                    f"{r['every_hours']} h",
                    r["last_success_at"] or "never",
                    r["last_error"] or "",
                    "OVERDUE" if r["overdue"] else "ok",
                )
                for r in rows
            ],
            title=f"Escrow drops of {client}",
        )


@escrow_group.command("remove")
@click.argument("client")
@click.argument("destination_id")
def escrow_remove(client: str, destination_id: str) -> None:
    """Remove one of CLIENT's destinations (its full id)."""
    server = remote()
    if server is not None:
        server.call("DELETE", f"/clients/{server.client_id(client)}/escrow/{destination_id}")
    else:
        from vault.services import escrow

        with local_context() as ctx:
            escrow.remove_destination(ctx, client, destination_id)
    click.echo("removed")


@escrow_group.command("run")
@click.option("--client", help="Only this client (with --force: all its destinations now).")
@click.option("--force", is_flag=True, help="Deliver now even if not due.")
@json_option
def escrow_run(client: str | None, force: bool, as_json: bool) -> None:
    """Deliver every due drop, complete due takeovers and flag overdue drops (for cron).

    Exit status 1 if any delivery failed."""
    server = remote()
    results: list[dict[str, Any]]
    if server is not None:
        if client is None:
            from vault.errors import InvalidInput

            raise InvalidInput("against a server, name the --client to run now", field="client")
        results = server.call("POST", f"/clients/{server.client_id(client)}/escrow/run")
    else:
        # due takeovers completed and drops delivered by the running vault when one answers
        results = keyed_operation_here(
            "escrow.run", {"client": client, "force": force}, timeout=3600.0
        )
    if as_json:
        print_json(results)
    elif not results:
        click.echo("no drop was due")
    else:
        for r in results:
            status = "ok" if r["ok"] else f"FAILED: {r['error']}"
            click.echo(f"{r['target']}: {status}")
    if any(not r["ok"] for r in results):
        raise SystemExit(1)


COMMANDS = [escrow_group]
