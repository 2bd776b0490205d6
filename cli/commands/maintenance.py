"""Operator maintenance: key listing and rotation, backup, restore, database log check.

Backup, restore and the log check need the host, so they never run against a server. The key
commands run on the local store (with the unseal passphrase) or, for an admin, against a
server (`--server`). All are safe while a server runs on the same database: a backup reads one
snapshot, and a rotation commits in one transaction that the server processes pick up by
themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.common import (
    iso,
    json_option,
    operator_actor,
    print_fields,
    print_json,
    remote,
    remote_capable,
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
@remote_capable
def key_list(store: Any, as_json: bool) -> None:
    """The vault identity and log keys, current and retired (public parts only)."""
    from vault.services import rotation

    if store is None:
        data = remote().call("GET", "/keys")
    else:
        with store.read_session() as session:
            data = [
                {**k, "created_at": iso(k["created_at"]), "retired_at": iso(k["retired_at"])}
                for k in rotation.list_keys(session)
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


def _rotate(store: Any, path: str, rotate: Callable[[Any], Any], as_json: bool) -> None:
    """Rotate through the server (``path``), or on the local store with ``rotate(ctx)``."""
    if store is None:
        data = remote().call("POST", path)
    else:
        keys = unseal(store)
        with store.context(operator_actor(), keys) as ctx:
            data = rotate(ctx).as_dict()
        store.refresh_keys(keys)
    if as_json:
        print_json(data)
        return
    print_fields((k, v) for k, v in data.items() if v is not None)


@rotate_group.command("client")
@click.argument("client")
@json_option
@with_store
@remote_capable
def rotate_client(store: Any, client: str, as_json: bool) -> None:
    """Give CLIENT a new client key: every sealed value is re-sealed under it and it is
    wrapped to the vault and the client's *current* escrow recipients only (run it after
    removing a recipient, so that recipient opens nothing written from now on)."""
    from vault.services import rotation

    path = f"/keys/rotate/client/{remote().client_id(client)}" if store is None else ""
    _rotate(store, path, lambda ctx: rotation.rotate_client_key(ctx, client), as_json)


@rotate_group.command("identity")
@json_option
@with_store
@remote_capable
def rotate_identity(store: Any, as_json: bool) -> None:
    """New vault identity; every client key is re-wrapped to it; the old one is retired."""
    from vault.services import rotation

    _rotate(store, "/keys/rotate/identity", rotation.rotate_vault_identity, as_json)


@rotate_group.command("log")
@json_option
@with_store
@remote_capable
def rotate_log(store: Any, as_json: bool) -> None:
    """New log key. The handover checkpoint is signed by the old key and the new one, so
    verifiers that pinned the old key follow; re-pin with `custody audit key`."""
    from vault.services import rotation

    _rotate(store, "/keys/rotate/log", rotation.rotate_log_key, as_json)


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
