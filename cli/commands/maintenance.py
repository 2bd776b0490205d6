"""Operator maintenance on the local store: key rotation, backup, restore, database log check.

These need the host and (for rotation) the unseal passphrase, so they never run against a
server. They are safe while a server runs on the same database: a backup reads one snapshot,
and a rotation commits in one transaction that the server processes pick up by themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import (
    json_option,
    operator_actor,
    print_fields,
    print_json,
    settings,
    unseal,
    with_store,
)


@click.group("key")
def key_group() -> None:
    """The vault's keys: list them, rotate them."""


@key_group.command("list")
@json_option
@with_store
def key_list(store: Any, as_json: bool) -> None:
    """The vault identity and log keys, current and retired (public parts only)."""
    from sqlalchemy import select

    from vault.db.models import VaultKey

    with store.read_session() as session:
        rows = session.scalars(select(VaultKey).order_by(VaultKey.created_at)).all()
        data = [
            {
                "id": k.id,
                "purpose": k.purpose,
                "public": k.public,
                "created_at": k.created_at.isoformat(),
                "retired_at": k.retired_at.isoformat() if k.retired_at else None,
            }
            for k in rows
        ]
    if as_json:
        print_json(data)
        return
    for k in data:
        state = f"retired {k['retired_at']}" if k["retired_at"] else "current"
        click.echo(f"{k['purpose']:8s} {state:40s} {k['public']}")


@key_group.group("rotate")
def rotate_group() -> None:
    """Replace a key; nothing is lost, the old key opens nothing written afterwards."""


def _rotated(store: Any, keys: Any, result: Any, as_json: bool) -> None:
    store.refresh_keys(keys)
    data = result.as_dict()
    if as_json:
        print_json(data)
        return
    print_fields((k, v) for k, v in data.items() if v is not None)


@rotate_group.command("client")
@click.argument("client")
@json_option
@with_store
def rotate_client(store: Any, client: str, as_json: bool) -> None:
    """Give CLIENT a new client key: every sealed value is re-sealed under it and it is
    wrapped to the vault and the client's *current* escrow recipients only (run it after
    removing a recipient, so that recipient opens nothing written from now on)."""
    from vault.services import rotation

    keys = unseal(store)
    with store.context(operator_actor(), keys) as ctx:
        result = rotation.rotate_client_key(ctx, client)
    _rotated(store, keys, result, as_json)


@rotate_group.command("identity")
@json_option
@with_store
def rotate_identity(store: Any, as_json: bool) -> None:
    """New vault identity; every client key is re-wrapped to it; the old one is retired."""
    from vault.services import rotation

    keys = unseal(store)
    with store.context(operator_actor(), keys) as ctx:
        result = rotation.rotate_vault_identity(ctx)
    _rotated(store, keys, result, as_json)


@rotate_group.command("log")
@json_option
@with_store
def rotate_log(store: Any, as_json: bool) -> None:
    """New log key. The handover checkpoint is signed by the old key and the new one, so
    verifiers that pinned the old key follow; re-pin with `custody audit key`."""
    from vault.services import rotation

    keys = unseal(store)
    with store.context(operator_actor(), keys) as ctx:
        result = rotation.rotate_log_key(ctx)
    _rotated(store, keys, result, as_json)


@click.command("backup")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file to write (a SQLite database, mode 0600).",
)
@json_option
def backup_cmd(out: Path, as_json: bool) -> None:
    """Write a consistent backup of the vault, safe while the server runs.

    One SQLite file from either engine, carrying everything a restore needs (sealed keys,
    the log and its key, the schema revision). A client opens it with `custody recover`
    and its own escrow identity."""
    from cli.common import local_only
    from vault.services import backup

    local_only("backup")
    info = backup.backup(settings().database_url, out)
    data = info.as_dict()
    if as_json:
        print_json(data)
        return
    print_fields(
        [
            ("backup", data["path"]),
            ("schema", data["revision"]),
            ("events", data["events"]),
            ("bytes", data["bytes"]),
        ]
    )


@click.command("restore")
@click.argument("backup_file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def restore_cmd(backup_file: Path, as_json: bool) -> None:
    """Restore BACKUP_FILE into this host's empty database (CUSTODY_HOME or
    CUSTODY_DATABASE_URL). Refuses a backup from a newer schema and a database that already
    holds a vault; migrates an older backup; verifies the log before anything is visible."""
    from cli.common import local_only
    from vault.services import backup

    local_only("restore")
    info = backup.restore(backup_file, settings().database_url)
    data = info.as_dict()
    if as_json:
        print_json(data)
        return
    click.echo("restored; the log verifies")
    print_fields(list(data.items()))


@click.command("check")
@json_option
@with_store
def db_check(store: Any, as_json: bool) -> None:
    """Verify the log as the database holds it: every event against its leaf hash, the tree
    against every signed checkpoint and the head. Exit 1 when it does not verify."""
    from cli.common import Finding
    from vault.log.errors import LogError
    from vault.services import backup

    with store.read_session() as session, session.begin():
        try:
            check = backup.check_log(session)
        except LogError as exc:
            raise Finding(f"the log does not verify: {exc.message}") from None
    data = {"size": check.size, "checkpoints": check.checkpoints, "log_keys": check.keys}
    if as_json:
        print_json(data)
        return
    click.echo("the log verifies")
    print_fields(list(data.items()))


COMMANDS = [key_group, backup_cmd, restore_cmd]
DB_COMMANDS = [db_check]
