"""`custody export`: a client's records in one file, for the client to keep or to move house.

The default format, ``age-json``, is the escrow bundle (docs/export-format.md): age-encrypted
to the client's escrow recipients only, its signed manifest written beside it as FILE.manifest.
The other formats are for another password manager and are written by
``vault.formats.writers``.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

import click

from cli.common import json_option, print_json, progress_bar, remote

FORMATS = ["age-json", "kdbx", "bitwarden-json", "csv"]


def manifest_path(bundle: Path) -> Path:
    """Where a bundle's manifest lives: FILE.manifest beside FILE."""
    return bundle.with_name(bundle.name + ".manifest")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """The name of a private (0600) empty temporary file beside ``target``, renamed over it
    when the block succeeds and removed when it fails: a failed export never leaves half a
    file. Whoever fills it must flush it to disk."""
    from vault.errors import InvalidInput

    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise InvalidInput(f"{directory} is not a directory", field="out")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise InvalidInput(f"cannot write in {directory}: {exc.strerror}", field="out") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(target: Path) -> Iterator[BinaryIO]:
    """:func:`atomic_path`, opened for writing and fsynced at the end."""
    with atomic_path(target) as tmp, tmp.open("wb") as out:
        yield cast(BinaryIO, out)
        out.flush()
        os.fsync(out.fileno())


def write_text_file(path: Path, text: str) -> None:
    with atomic_output(path) as out:
        out.write(text.encode("utf-8"))


kdbx_passphrase_option = click.option(
    "--kdbx-passphrase-file",
    type=click.Path(exists=True, dir_okay=False),
    help="File holding the KDBX passphrase (otherwise asked for).",
)
kdbx_keyfile_option = click.option(
    "--kdbx-keyfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A key file protecting the KDBX (with or instead of a passphrase).",
)


def kdbx_protection(
    fmt: str, passphrase_file: str | None, keyfile: Path | None
) -> tuple[str | None, bytes | None]:
    """The passphrase and key file bytes protecting a KDBX file (the passphrase asked for
    twice when neither option gives one); other formats take neither option."""
    from cli.common import prompt_hidden, read_secret_file
    from vault.errors import InvalidInput

    if fmt != "kdbx":
        if passphrase_file is not None or keyfile is not None:
            raise InvalidInput("--kdbx-passphrase-file and --kdbx-keyfile are for --format kdbx")
        return None, None
    passphrase = None
    key_data = keyfile.read_bytes() if keyfile is not None else None
    if passphrase_file is not None:
        passphrase = read_secret_file(passphrase_file, "--kdbx-passphrase-file")
    elif key_data is None:
        passphrase = prompt_hidden(
            "Passphrase for the KDBX file", instead="use --kdbx-passphrase-file"
        )
        if prompt_hidden("Repeat it") != passphrase:
            raise InvalidInput("the two passphrases differ", field="kdbx_passphrase")
    if passphrase is not None and not passphrase:
        raise InvalidInput("the KDBX passphrase must not be empty", field="kdbx_passphrase")
    return passphrase, key_data


@click.command("export")
@click.argument("client")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (its manifest goes to FILE.manifest).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="age-json",
    show_default=True,
    help="age-json: the escrow bundle; kdbx, bitwarden-json, csv: for another tool.",
)
@click.option("--history", is_flag=True, help="Include every earlier version of each secret.")
@kdbx_passphrase_option
@kdbx_keyfile_option
@json_option
def export_command(
    client: str,
    out_path: Path,
    fmt: str,
    history: bool,
    kdbx_passphrase_file: str | None,
    kdbx_keyfile: Path | None,
    as_json: bool,
) -> None:
    """Export every record of CLIENT to one file (an admin, or the client's own contact).

    The age-json bundle opens with `age -d -i IDENTITY FILE`; `custody takeover verify`
    checks it against its signed manifest."""
    server = remote()
    if fmt != "age-json":
        summary = _export_portable(
            client, out_path, fmt, history, kdbx_passphrase_file, kdbx_keyfile
        )
    elif server is not None:
        summary = _export_remote(server, client, out_path, history)
    else:
        summary = _export_local(client, out_path, history)
    if as_json:
        print_json(summary)
        return
    counts = summary.get("counts") or {}
    click.echo(
        f"exported {summary['client']['name']}: "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        + f" -> {out_path}"
    )
    if fmt == "age-json":
        click.echo(f"manifest -> {manifest_path(out_path)}")


def _export_by_agent(client: str, out_path: Path, history: bool) -> dict[str, Any] | None:
    """The export done by the running vault agent (`custody start`), which has the store open
    and the keys unsealed: this process imports no database code and derives no key. None when
    no agent answers (the caller then does the work itself)."""
    from cli.common import running_agent
    from vault.agent import call

    path = running_agent()
    if path is None:
        return None
    with atomic_path(out_path) as tmp:
        reply = call(
            path,
            "client.export",
            {"client": client, "path": str(tmp.resolve()), "history": history},
            timeout=3600.0,
        )
    write_text_file(manifest_path(out_path), reply["manifest"])
    summary: dict[str, Any] = reply["summary"]
    return summary


def _export_local(client: str, out_path: Path, history: bool) -> dict[str, Any]:
    by_agent = _export_by_agent(client, out_path, history)  # before importing any database code
    if by_agent is not None:
        return by_agent
    from cli.common import open_store, operator_actor, unseal
    from vault.services import export

    store = open_store()
    try:
        keys = unseal(store)
        with progress_bar("Exporting") as progress, atomic_output(out_path) as out:
            result = export.export_client(
                store, keys, operator_actor(), client, out, history=history, progress=progress
            )
    finally:
        store.engine.dispose()
    write_text_file(manifest_path(out_path), result.manifest_text)
    return result.as_dict()


def _export_remote(server: Any, client: str, out_path: Path, history: bool) -> dict[str, Any]:
    from vault.errors import CustodyError
    from vault.formats.bundle import Manifest, split_manifest

    path = f"/clients/{server.client_id(client)}/export"
    with progress_bar("Downloading") as progress, atomic_output(out_path) as out:
        size, headers = server.stream(
            "POST", path, out, params={"history": "true" if history else None}, progress=progress
        )
        encoded = headers.get("custody-export-manifest")
        if not encoded:
            raise CustodyError("the server sent no export manifest")
        try:
            manifest_text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except ValueError:
            raise CustodyError("the server sent a malformed export manifest") from None
    write_text_file(manifest_path(out_path), manifest_text)
    m = Manifest.parse_text(split_manifest(manifest_text)[0])
    return {
        "client": {"id": m.client_id, "name": m.client_name},
        "format": "age-json",
        "mode": m.mode,
        "created": m.created,
        "history": m.history,
        "counts": m.counts,
        "sha256": m.sha256,
        "size": m.size,
        "bundle_bytes": size,
        "manifest": manifest_text,
    }


def _export_portable(
    client: str,
    out_path: Path,
    fmt: str,
    history: bool,
    passphrase_file: str | None,
    keyfile: Path | None,
) -> dict[str, Any]:
    from cli.common import keyed_operation_here, local_only

    local_only(f"custody export --format {fmt}")
    passphrase, key_data = kdbx_protection(fmt, passphrase_file, keyfile)
    # written into a private file made here, by the running vault when one answers
    with atomic_path(out_path) as tmp:
        summary: dict[str, Any] = keyed_operation_here(
            "client.export_portable",
            {
                "client": client,
                "path": str(tmp.resolve()),
                "format": fmt,
                "history": history,
                "passphrase": passphrase,
                "keyfile": None if key_data is None else base64.b64encode(key_data).decode(),
            },
            timeout=3600.0,
        )
    for key in ("manifest", "sha256", "size", "bundle_bytes", "checkpoint"):
        summary.pop(key, None)
    return summary


COMMANDS = [export_command]
