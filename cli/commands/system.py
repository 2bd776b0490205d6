"""Vault-wide commands: init, unseal, db upgrade, recover."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.common import json_option, print_json, settings, unseal, with_store

if TYPE_CHECKING:
    from vault.keys import UnsealSecret
    from vault.store import Store


@click.command()
@click.option(
    "--shares",
    type=int,
    default=None,
    help="Split a random unseal secret into this many SLIP-39 shares.",
)
@click.option("--threshold", type=int, default=None, help="Shares needed to unseal.")
@click.option(
    "--admin",
    "admin_name",
    default="admin",
    show_default=True,
    help="Username of the first admin (for the HTTP API).",
)
@json_option
def init(shares: int | None, threshold: int | None, admin_name: str, as_json: bool) -> None:
    """Create a new vault: database, root key and vault identity.

    The unseal passphrase is asked twice (or read from CUSTODY_UNSEAL_FILE /
    CUSTODY_UNSEAL_PASSPHRASE). With --shares N --threshold K, no passphrase: the unseal
    secret is random and printed once as N shares, any K of which unseal the vault.
    """
    from cli.common import local_only

    local_only("custody init")
    from vault.errors import InvalidInput
    from vault.store import init_vault

    conf = settings()
    if (shares is None) != (threshold is None):
        raise InvalidInput("--shares and --threshold go together", field="shares")
    passphrase = None
    if shares is None:
        passphrase = _new_passphrase(conf)
    weak = os.environ.get("CUSTODY_ALLOW_WEAK_KDF") == "1"
    result = init_vault(
        conf,
        passphrase=passphrase,
        shares=(threshold, shares) if shares and threshold else None,
        weak_kdf=weak,
        admin=admin_name,
    )
    if as_json:
        print_json(
            {
                "vault_id": result.vault_id,
                "recipient": result.recipient,
                "shares": result.shares,
                "database": _display_url(conf.database_url),
                "admin": result.admin,
                "admin_password": result.admin_password,
            }
        )
        return
    click.echo(f"Vault created in {_display_url(conf.database_url)}")
    click.echo(f"vault recipient: {result.recipient}")
    click.echo(
        f"first admin: {result.admin}  initial password (shown once): "
        f"{result.admin_password}\n  sign in to the API, enrol TOTP, then change it"
    )
    if weak:
        click.echo("WARNING: weak KDF parameters (CUSTODY_ALLOW_WEAK_KDF=1) - tests only", err=True)
    if result.shares:
        click.echo(
            f"\nUnseal shares: any {threshold} of these {shares} open the vault. Give each "
            "to a different person;\nthey are shown only now.\n"
        )
        for number, share in enumerate(result.shares, start=1):
            click.echo(f"share {number}: {share}")


def _new_passphrase(conf: object) -> str:
    from cli.common import prompt_hidden

    if os.environ.get("CUSTODY_UNSEAL_FILE"):
        from cli.common import read_secret_file

        return read_secret_file(os.environ["CUSTODY_UNSEAL_FILE"], "CUSTODY_UNSEAL_FILE")
    if os.environ.get("CUSTODY_UNSEAL_PASSPHRASE"):
        return os.environ["CUSTODY_UNSEAL_PASSPHRASE"]
    first = prompt_hidden("New unseal passphrase", instead="set CUSTODY_UNSEAL_PASSPHRASE")
    second = prompt_hidden("Repeat the passphrase")
    if first != second:
        from vault.errors import InvalidInput

        raise InvalidInput("the two passphrases differ", field="passphrase")
    return first


def _empty_database(url: str) -> bool:
    from vault.db import engine as db
    from vault.errors import NotInitialized

    try:
        engine = db.make_engine(url)
    except NotInitialized:
        return True  # no SQLite file yet
    try:
        return db.current_revision(engine) is None
    finally:
        engine.dispose()


def _display_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    # Never print a password that may sit in a PostgreSQL URL.
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.command("unseal")
@click.option(
    "--check",
    is_flag=True,
    required=True,
    help="Only check that the passphrase or shares open the vault.",
)
@json_option
@with_store
def unseal_cmd(store: object, check: bool, as_json: bool) -> None:
    """Check that the unseal passphrase or shares open this vault."""
    from cli.common import local_only

    local_only("custody unseal")
    keys = unseal(store)  # type: ignore[arg-type]
    if as_json:
        print_json({"unsealed": True, "vault_id": keys.vault_id, "recipient": str(keys.recipient)})
    else:
        click.echo(f"ok: the vault unseals (vault recipient {keys.recipient})")


@click.group("db")
def db_group() -> None:
    """Database schema management."""


@db_group.command("upgrade")
@json_option
def db_upgrade(as_json: bool) -> None:
    """Migrate the database to this Custody's schema (creates it if needed)."""
    from cli.common import local_only

    local_only("custody db upgrade")
    from vault.db import engine as db

    conf = settings()
    engine = db.make_engine(conf.database_url, create_dirs=True)
    try:
        before, after = db.upgrade(engine)
    finally:
        engine.dispose()
    if as_json:
        print_json({"from": before, "to": after})
    elif before == after:
        click.echo(f"schema already at {after}")
    else:
        click.echo(f"schema upgraded from {before or 'empty'} to {after}")


@db_group.command("status")
@json_option
def db_status(as_json: bool) -> None:
    """Show the database's schema revision and this Custody's."""
    from cli.common import local_only

    local_only("custody db status")
    from vault.db import engine as db

    conf = settings()
    engine = db.make_engine(conf.database_url)
    try:
        current, head = db.current_revision(engine), db.head_revision()
    finally:
        engine.dispose()
    if as_json:
        print_json({"current": current, "head": head, "up_to_date": current == head})
    else:
        click.echo(
            f"database {current or 'empty'}, this Custody {head}"
            + ("" if current == head else "  (run `custody db upgrade`)")
        )


@click.command()
@click.option(
    "--db",
    "database",
    required=True,
    help="A copy of the SQLite file (or a database URL) to recover from.",
)
@click.option(
    "--identity",
    "identity_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client's age identity file (passphrase-protected or plain).",
)
@click.option("--client", "client_name", required=True, help="The client to recover.")
@click.option("--history", is_flag=True, help="Also print every earlier version of each secret.")
@json_option
def recover(
    database: str, identity_file: Path, client_name: str, history: bool, as_json: bool
) -> None:
    """Print every record of one client from a database copy, with only the client's identity.

    Needs no vault passphrase and no server; opens the database read-only.
    """
    from cli.common import local_only

    local_only("custody recover")
    from cli.commands.clients import load_identities
    from cli.common import progress_bar
    from vault.config import database_url_for
    from vault.services.recovery import open_backup, recover_client

    identities = load_identities(identity_file)
    engine = open_backup(database_url_for(database))
    try:
        with progress_bar("Decrypting") as progress:
            result = recover_client(
                engine, client_name, identities, with_history=history, progress=progress
            )
    finally:
        engine.dispose()
    if as_json:
        print_json(_recovered_json(result, history))
        return
    out = sys.stdout
    out.write(f"# Client: {result.name}\n\n## Secrets ({len(result.secrets)})\n")
    for s in result.secrets:
        out.write(f"\n[{s.secret.title}]  kind={s.secret.kind}  version={s.version}\n")
        for label, value in (
            ("username", s.username),
            ("url", s.secret.url),
            ("password", s.value),
            ("notes", s.notes),
        ):
            if value:
                out.write(f"  {label}: {value}\n")
        for link in result.links.get(s.secret.title, []):
            for kind, name in link.items():
                out.write(f"  opens {kind}: {name}\n")
        if history:
            for old in result.history.get(s.secret.title, []):
                if old.version != s.version:
                    out.write(f"  version {old.version} ({old.created_at:%Y-%m-%d}): {old.value}\n")
    for kind, rows in result.inventory.items():
        out.write(f"\n## {kind.capitalize()}s ({len(rows)})\n")
        for row in rows:
            out.write(f"\n[{row['name']}]\n")
            for key, value in row.items():
                if key != "name" and value not in (None, "", []):
                    out.write(f"  {key}: {value}\n")


def _recovered_json(result: object, history: bool) -> dict[str, object]:
    from vault.services.recovery import RecoveredClient

    assert isinstance(result, RecoveredClient)

    def secret(s: object) -> dict[str, object]:
        from vault.services.secrets import RevealedSecret

        assert isinstance(s, RevealedSecret)
        return {
            **s.as_dict(),
            "tags": s.secret.tags,
            "created_at": s.created_at,
            "opens": result.links.get(s.secret.title, []),
        }

    data: dict[str, object] = {
        "client": result.name,
        "secrets": [secret(s) for s in result.secrets],
    }
    data.update({f"{k}s": v for k, v in result.inventory.items()})
    if history:
        data["history"] = {t: [secret(v) for v in vs] for t, vs in result.history.items()}
    return data


@click.command()
@click.option(
    "--init",
    "init_if_needed",
    is_flag=True,
    help="Create the vault first if there is none (asks for a new passphrase).",
)
def start(init_if_needed: bool) -> None:
    """Unseal the vault and keep it running for this host's CLI (Ctrl-C to stop).

    While it runs, `custody secret get` answers from the unsealed vault over a private
    Unix socket ($CUSTODY_HOME/custody.sock, only your user can connect) without asking
    for the passphrase again. Stopping it seals the vault.
    """
    from cli.common import local_only

    local_only("custody start")
    import signal

    from vault.agent import socket_path
    from vault.agent_server import serve
    from vault.errors import NotInitialized, SchemaError
    from vault.keys import UnsealSecret
    from vault.process import freeze_startup_heap
    from vault.store import Store, init_vault

    conf = settings()
    keys = None
    try:
        store = Store.open(conf)
        store.meta()
    except (NotInitialized, SchemaError):
        # Create a vault only where there is no schema at all; a database that merely needs
        # an upgrade (or is newer) is refused with the usual message.
        if not init_if_needed or not _empty_database(conf.database_url):
            raise
        click.echo(
            "No vault yet: creating one. Choose an unseal passphrase (12+ characters).", err=True
        )
        passphrase = _new_passphrase(conf)
        result = init_vault(
            conf, passphrase=passphrase, weak_kdf=os.environ.get("CUSTODY_ALLOW_WEAK_KDF") == "1"
        )
        click.echo(f"Vault created in {_display_url(conf.database_url)}", err=True)
        click.echo(
            f"first admin: {result.admin}  initial password (shown once): {result.admin_password}",
            err=True,
        )
        store = Store.open(conf)
        keys = store.unseal(UnsealSecret.from_passphrase(passphrase))
        assert str(keys.recipient) == result.recipient
    if keys is None:
        keys = unseal(store)
    path = socket_path(conf.home)

    def ready() -> None:
        click.echo(f"Custody vault unsealed (vault recipient {keys.recipient})")
        click.echo(f"agent listening on {path}; Ctrl-C to stop and seal", err=False)
        click.echo("in another terminal: .venv/bin/custody --help", err=True)

    def terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    freeze_startup_heap()  # this process now only answers the CLI, for as long as it runs
    try:
        serve(path, store, keys, ready=ready)
    except KeyboardInterrupt:
        click.echo("stopped; the vault is sealed", err=True)
    finally:
        store.engine.dispose()


@click.command()
@json_option
def status(as_json: bool) -> None:
    """Show whether the vault agent is running and where the data lives."""
    from vault.agent import AgentUnavailable, call, socket_path

    conf = settings()
    path = socket_path(conf.home)
    try:
        info = call(path, "ping")
        running = True
    except AgentUnavailable:
        info, running = None, False
    data = {
        "database": _display_url(conf.database_url),
        "agent": running,
        "socket": str(path),
        **(info or {}),
    }
    if as_json:
        print_json(data)
        return
    click.echo(f"database  {data['database']}")
    state = f"running (unsealed), pid {data['pid']}" if running else "not running (sealed)"
    click.echo(f"agent     {state}")


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (127.0.0.1: this machine only).",
)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key.")
@click.option(
    "--sealed",
    "start_sealed",
    is_flag=True,
    help="Start sealed; unseal through POST /sys/unseal (single worker only).",
)
@click.option(
    "--cpu-affinity",
    type=click.Choice(["auto", "off"]),
    default="off",
    show_default=True,
    help="auto: each worker process on a CPU of its own when there are enough (Linux): "
    "about a quarter more throughput on a host of its own.",
)
def serve(
    host: str,
    port: int,
    workers: int,
    tls_cert: str | None,
    tls_key: str | None,
    start_sealed: bool,
    cpu_affinity: str,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) with uvicorn (on Linux, several workers
    each listen on a socket of their own, so the kernel spreads connections evenly).

    Unseals at start from a prompt, CUSTODY_UNSEAL_FILE or CUSTODY_UNSEAL_PASSPHRASE, or
    starts sealed with --sealed. With several workers, each worker process receives the
    unseal secret through its environment (never a file or an argument).
    """
    from cli.common import local_only

    local_only("custody serve")
    import base64

    from api.server import ServeOptions
    from api.server import serve as serve_app
    from vault.errors import InvalidInput
    from vault.store import Store

    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("--tls-cert and --tls-key go together", field="tls")
    if start_sealed and workers > 1:
        raise InvalidInput(
            "--sealed needs a single worker: each worker unseals itself", field="workers"
        )
    conf = settings()
    store = Store.open(conf)
    try:
        if not start_sealed:
            secret = _unseal_secret(store)
            store.unseal(secret)  # fail here, with one clear line, if it is wrong
            os.environ["CUSTODY_UNSEAL_SECRET"] = base64.b64encode(secret.reveal()).decode()
    finally:
        store.engine.dispose()
    if host not in ("127.0.0.1", "localhost", "::1") and tls_cert is None:
        click.echo(
            f"WARNING: serving on {host} without TLS: tokens and secrets would cross "
            "the network in clear. Use --tls-cert/--tls-key or a TLS proxy.",
            err=True,
        )
    click.echo(
        f"Custody API on {'https' if tls_cert else 'http'}://{host}:{port} "
        f"(docs at /docs), {workers} worker(s)",
        err=True,
    )
    status = serve_app(
        ServeOptions(
            app="api.main:app_from_env",
            host=host,
            port=port,
            workers=workers,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            cpu_affinity=cpu_affinity,
        )
    )
    if status:
        raise click.exceptions.Exit(2)


def _unseal_secret(store: Store) -> UnsealSecret:
    from cli.common import prompt_hidden
    from vault.store import unseal_secret_from

    return unseal_secret_from(
        store.meta(), store.settings, env=dict(os.environ), prompt=prompt_hidden
    )


COMMANDS = [init, unseal_cmd, start, serve, status, db_group, recover]
