"""`custody import SOURCE FILE --client NAME`: records from another tool, with a dry run."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from cli.common import (
    json_option,
    operator_actor,
    print_json,
    print_table,
    progress_bar,
    read_secret_file,
    remote,
    remote_capable,
    running_agent,
    unseal,
    with_store,
)

SOURCES = ["bitwarden", "keepass", "pass", "csv"]
PRESETS = [
    "itglue-passwords",
    "itglue-domains",
    "itglue-configurations",
    "hudu-passwords",
    "hudu-assets",
    "hudu-websites",
    "passportal",
]


@click.command("import")
@click.argument("source", type=click.Choice(SOURCES))
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--client", "client", required=True, help="The client to import into.")
@click.option("--dry-run", is_flag=True, help="Show what would be created, matched or skipped.")
@click.option(
    "--kdbx-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the KDBX passphrase (default: a hidden prompt).",
)
@click.option("--keyfile", type=click.Path(dir_okay=False, path_type=Path), help="KDBX key file.")
@click.option(
    "--map",
    "mapping",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV column map: JSON object or `column=field` lines.",
)
@click.option("--preset", type=click.Choice(PRESETS), help="A known CSV export's column map.")
@click.option("--batch-size", type=int, default=500, show_default=True, hidden=True)
@json_option
@with_store
@remote_capable
def import_command(
    store: Any,
    source: str,
    file: Path,
    client: str,
    dry_run: bool,
    kdbx_passphrase_file: Path | None,
    keyfile: Path | None,
    mapping: Path | None,
    preset: str | None,
    batch_size: int,
    as_json: bool,
) -> None:
    """Import secrets (and vendors, domains, assets) from another tool's export.

    SOURCE is bitwarden (unencrypted JSON), keepass (KDBX 4 or KeePass 2 XML), pass (a
    password-store directory, decrypted with your gpg) or csv (--preset or --map). Importing
    the same file twice creates nothing new; see docs/import.md.
    """
    passphrase = None
    if source == "keepass" and _is_kdbx(file):
        if kdbx_passphrase_file is not None:
            passphrase = read_secret_file(str(kdbx_passphrase_file), "--kdbx-passphrase-file")
        elif keyfile is None:
            import sys

            if not sys.stdin.isatty():
                from vault.errors import InvalidInput

                raise InvalidInput(
                    "the KDBX passphrase is needed: no terminal to ask on "
                    "(give --kdbx-passphrase-file)",
                    field="kdbx_passphrase",
                )
            passphrase = click.prompt("KDBX passphrase", hide_input=True, err=True)
    if store is None:
        data = _remote_import(source, file, client, dry_run, passphrase, keyfile, mapping, preset)
    else:
        data = _local_import(
            store, source, file, client, dry_run, passphrase, keyfile, mapping, preset, batch_size
        )
    if as_json:
        print_json(data)
        return
    _print_report(data, dry_run)


def _is_kdbx(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x03\xd9\xa2\x9a"
    except OSError:
        return False


def _local_import(
    store: Any,
    source: str,
    file: Path,
    client: str,
    dry_run: bool,
    passphrase: str | None,
    keyfile: Path | None,
    mapping: Path | None,
    preset: str | None,
    batch_size: int,
) -> dict[str, Any]:
    from vault.agent_server import AGENT_IMPORT_SOURCES
    from vault.services.imports import import_file

    agent = running_agent() if source in AGENT_IMPORT_SOURCES else None
    if agent is not None:
        # The running vault imports with the keys it holds: no passphrase asked here.
        from vault.agent import call

        def absolute(path: Path | None) -> str | None:
            return None if path is None else str(path.expanduser().absolute())

        args = {
            "client": client,
            "source": source,
            "file": absolute(file),
            "dry_run": dry_run,
            "passphrase": passphrase,
            "keyfile": absolute(keyfile),
            "mapping": absolute(mapping),
            "preset": preset,
            "batch_size": batch_size,
        }
        with progress_bar("importing (by the running vault)"):
            result: dict[str, Any] = call(agent, "secret.import", args, timeout=IMPORT_TIMEOUT)
        return result
    keys = unseal(store)
    # A dry run only reads: no progress to show.
    with nullcontext(None) if dry_run else progress_bar("importing") as update:
        return import_file(
            store,
            keys,
            operator_actor(),
            client,
            source,
            file,
            dry_run=dry_run,
            passphrase=passphrase,
            keyfile=keyfile,
            mapping=mapping,
            preset=preset,
            batch_size=batch_size,
            progress=update,
        )


#: how long an import by the running vault may take (it answers when the last batch is in)
IMPORT_TIMEOUT = 3600.0


def _remote_import(
    source: str,
    file: Path,
    client: str,
    dry_run: bool,
    passphrase: str | None,
    keyfile: Path | None,
    mapping: Path | None,
    preset: str | None,
) -> dict[str, Any]:
    from vault.errors import InvalidInput

    if source == "pass":
        raise InvalidInput("a pass store is decrypted with your gpg: import it locally")
    server = remote()
    files = {"file": (file.name, file.read_bytes())}
    if keyfile is not None:
        files["keyfile"] = (keyfile.name, keyfile.read_bytes())
    if mapping is not None:
        files["map"] = (mapping.name, mapping.read_bytes())
    form = {"source": source, "dry_run": "true" if dry_run else "false"}
    if passphrase:
        form["passphrase"] = passphrase
    if preset:
        form["preset"] = preset
    result: dict[str, Any] = server.upload(
        f"/clients/{server.client_id(client)}/imports", files=files, form=form
    )
    return result


def _print_report(data: dict[str, Any], dry_run: bool) -> None:
    entries = data["entries"]
    notable = [e for e in entries if e["action"] != "create" or dry_run]
    if notable:
        print_table(
            ["Origin", "Title", "Kind", "Action", "Why"],
            [(e["origin"], e["title"], e["kind"], e["action"], e["reason"]) for e in notable[:200]],
            title="Would import" if dry_run else "Not imported",
        )
        if len(notable) > 200:
            click.echo(f"... and {len(notable) - 200} more (use --json for all)")
    counts = data["counts"]
    rows = [
        ("entries read", counts["entries"]),
        (
            "secrets to create" if dry_run else "secrets created",
            counts.get("created", counts["create"]),
        ),
        ("already present", counts["present"]),
        ("skipped", counts["skip"]),
    ]
    for kind in ("vendor", "domain", "asset"):
        rows.append(
            (f"{kind}s created" if not dry_run else f"{kind}s to create", counts[f"{kind}s_create"])
        )
        rows.append((f"{kind}s matched", counts[f"{kind}s_match"]))
    rows.append(("links", counts["links"]))
    print_table(
        ["", "Count"],
        rows,
        title=f"Import into {data['client']}" + (" (dry run)" if dry_run else ""),
    )
    for error in data.get("errors", []):
        click.echo(f"error: {error}", err=True)


COMMANDS = [import_command]
