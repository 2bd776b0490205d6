"""The `custody` command tree (click). ``cli.main`` is the entry point that runs it.

Each command imports the parts of ``vault`` it needs when it runs, so start-up stays fast.
Every :class:`vault.errors.CustodyError` is caught once, in :func:`run`, and printed as one
line with exit code 2; a :class:`cli.common.Finding` (a check that found something wrong, such
as a tampered log) is printed the same way with exit code 1.
"""

from __future__ import annotations

import os

import click

from cli.commands import (
    access,
    audit,
    clients,
    escrow,
    export,
    imports,
    inventory,
    maintenance,
    ownership,
    secrets,
    session,
    system,
)
from cli.common import Finding


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="custody-vault", prog_name="custody")
@click.option(
    "--server",
    envvar="CUSTODY_SERVER",
    metavar="URL",
    help="Work against a Custody server (after `custody login`) instead of the "
    "local store. Also CUSTODY_SERVER.",
)
def cli(server: str | None) -> None:
    """Custody: a credential and vendor escrow vault for IT consultants and their clients.

    Data lives in ./custody-data (CUSTODY_HOME) in SQLite, or in PostgreSQL when
    CUSTODY_DATABASE_URL is set. The unseal passphrase comes from a prompt,
    CUSTODY_UNSEAL_FILE or CUSTODY_UNSEAL_PASSPHRASE - never from an argument.
    """


for module in (
    system,
    session,
    access,
    clients,
    secrets,
    inventory,
    audit,
    ownership,
    escrow,
    maintenance,
    export,
    imports,
):
    for command in module.COMMANDS:
        cli.add_command(command)
for command in maintenance.DB_COMMANDS:
    system.db_group.add_command(command)


def run(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="custody", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("custody: aborted", err=True)
        return 130
    except click.ClickException as exc:  # usage errors: one line, exit 2
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        click.echo(f"custody: error: {exc.format_message()}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except Finding as exc:
        click.echo(f"custody: FAILED: {exc.message}", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        from vault.errors import CustodyError

        if isinstance(exc, CustodyError):
            click.echo(f"custody: error: {exc.message}", err=True)
            return 2
        if os.environ.get("CUSTODY_DEBUG") == "1":
            raise
        # An unexpected error's text could hold anything: name its type only.
        click.echo(
            f"custody: internal error ({type(exc).__name__}); "
            "set CUSTODY_DEBUG=1 to see the traceback",
            err=True,
        )
        return 1
    return 0
