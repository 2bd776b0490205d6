"""A client's takeover of its own records, and the notices the consultancy gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.commands.export import kdbx_keyfile_option, kdbx_passphrase_option, kdbx_protection
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
            json_body={"totp_code": totp_code},
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
            json_body={"notice_days": days},
        )
    else:
        from vault.services import takeover

        with local_context() as ctx:
            status = takeover.set_notice_days(ctx, client, days).as_dict()
    _show(status, as_json)


# --- the takeover kit: check a bundle, read it, make one without the server ----------------------


def _manifest_for(bundle: Path, manifest: Path | None) -> str:
    """The manifest text: --manifest, else FILE.manifest, else FILE with .manifest for .age."""
    from vault.errors import InvalidInput

    candidates = (
        [manifest]
        if manifest is not None
        else [bundle.with_name(bundle.name + ".manifest"), bundle.with_suffix(".manifest")]
    )
    for path in candidates:
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                raise InvalidInput(f"cannot read the manifest {path}", field="manifest") from None
    raise InvalidInput(
        f"no manifest found for {bundle} (looked for {candidates[0].name}); give --manifest",
        field="manifest",
    )


def _pinned_key(key: str | None) -> str | None:
    """--key: a verifier key string, or a file holding one."""
    if key is None:
        return None
    path = Path(key)
    if "+" not in key and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    return key.strip()


def _verify(
    bundle: Path,
    identity_file: Path,
    manifest: Path | None,
    key: str | None,
    allow_unsigned: bool,
) -> Any:
    """What `verify` establishes (a VerifiedBundle); a failed check is a Finding (exit 1)."""
    verified, _content = _open_bundle(bundle, identity_file, manifest, key, allow_unsigned)
    return verified


def _open_bundle(
    bundle: Path,
    identity_file: Path,
    manifest: Path | None,
    key: str | None,
    allow_unsigned: bool,
    *,
    manifest_optional: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """What `verify` establishes, a VerifiedBundle (None when ``manifest_optional`` and there
    is no manifest),
    and the bundle's content: the identity loaded once (an encrypted one asks for its
    passphrase once) and the bundle decrypted once."""
    from cli.commands.clients import load_identities
    from cli.common import Finding
    from vault.errors import InvalidInput, VerificationFailed
    from vault.formats.bundle import open_bundle, read_content

    identities = load_identities(identity_file)
    try:
        text: str | None = _manifest_for(bundle, manifest)
    except InvalidInput:
        if manifest is not None or not manifest_optional:
            raise
        text = None
    with bundle.open("rb") as fh:
        if text is None:
            try:
                return None, read_content(fh, identities)
            except VerificationFailed as exc:  # nothing to verify against: bad input
                raise InvalidInput(f"{bundle.name}: {exc.message}", field="bundle") from None
        try:
            verified, content = open_bundle(
                fh, text, identities, verifier_key=_pinned_key(key), allow_unsigned=allow_unsigned
            )
        except VerificationFailed as exc:
            raise Finding(f"{bundle.name}: {exc.message}") from None
    return verified, content


_bundle_argument = click.argument(
    "bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
_identity_option = click.option(
    "--identity",
    "identity_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client's age identity file (passphrase-protected or plain).",
)
_manifest_option = click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The manifest (default: BUNDLE.manifest).",
)
_key_option = click.option(
    "--key",
    help="The vault's log verifier key (name+hash+base64, from `custody audit key`), or a "
    "file holding it: proves the bundle came from that vault.",
)
_unsigned_option = click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Accept an unsigned manifest (an offline bundle you made yourself).",
)


@takeover_group.command("verify")
@_bundle_argument
@_identity_option
@_manifest_option
@_key_option
@_unsigned_option
@json_option
def takeover_verify(
    bundle: Path,
    identity_file: Path,
    manifest: Path | None,
    key: str | None,
    allow_unsigned: bool,
    as_json: bool,
) -> None:
    """Check an export bundle offline: the manifest's signature, that the bundle decrypts
    with your identity, its hash and size, and every record count.

    Exit status 1 (one FAILED line naming the check) if anything does not match."""
    result = _verify(bundle, identity_file, manifest, key, allow_unsigned)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_verified(bundle, result)
    for warning in result.warnings:
        click.echo(f"custody: warning: {warning}", err=True)


def _print_verified(bundle: Path, result: Any) -> None:
    m = result.manifest
    if result.signature == "signed":
        who = result.verifier_key.split("+", 1)[0] if result.verifier_key else "?"
        signed = f"signed by {who}" + (" (pinned key)" if result.key_pinned else "")
    else:
        signed = "UNSIGNED (offline bundle, accepted with --allow-unsigned)"
    click.echo(f"OK: {bundle.name} is the {m.mode} export of {m.client_name}, made {m.created}")
    click.echo(f"  manifest {signed}")
    click.echo("  " + ", ".join(f"{n} {kind}" for kind, n in result.counts.items()))
    if result.checkpoint is not None:
        click.echo(f"  log checkpoint: {result.checkpoint.size} events, signature verified")


@takeover_group.command("open")
@_bundle_argument
@_identity_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for runbook.html and runbook.md (created if missing).",
)
@_manifest_option
@_key_option
@_unsigned_option
def takeover_open(
    bundle: Path,
    identity_file: Path,
    out_dir: Path,
    manifest: Path | None,
    key: str | None,
    allow_unsigned: bool,
) -> None:
    """Write the takeover runbook of a bundle (HTML and Markdown) for the client's owner: every
    vendor, domain and device, who holds it, which passwords open what (titles only: the
    runbook holds no password), and what to change first.

    The bundle is checked against its manifest first when there is one (as `verify` does)."""
    from cli.commands.export import write_text_file
    from vault.errors import InvalidInput
    from vault.formats.runbook import render

    verification, content = _open_bundle(
        bundle, identity_file, manifest, key, allow_unsigned, manifest_optional=True
    )
    html, markdown = render(
        content, verification=verification.as_dict() if verification is not None else None
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create {out_dir}: {exc.strerror}", field="out") from None
    write_text_file(out_dir / "runbook.html", html)
    write_text_file(out_dir / "runbook.md", markdown)
    click.echo(f"runbook for {content['client']['name']} -> {out_dir}/runbook.html, runbook.md")
    if verification is None:
        click.echo("custody: warning: no manifest found: the bundle was not verified", err=True)


@takeover_group.command("convert")
@_bundle_argument
@_identity_option
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["kdbx", "bitwarden-json", "csv"]),
    help="kdbx: KeePass / KeePassXC; bitwarden-json and csv: plain text, for importing.",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (mode 0600; replaced only once it is whole).",
)
@kdbx_passphrase_option
@kdbx_keyfile_option
@_manifest_option
@_key_option
@_unsigned_option
@json_option
def takeover_convert(
    bundle: Path,
    identity_file: Path,
    fmt: str,
    out_path: Path,
    kdbx_passphrase_file: str | None,
    kdbx_keyfile: Path | None,
    manifest: Path | None,
    key: str | None,
    allow_unsigned: bool,
    as_json: bool,
) -> None:
    """Write a bundle's secrets for another password manager - a KeePass file, or Bitwarden
    JSON or CSV to import - with only the client's identity: no vault, no server.

    The bundle is verified against its manifest first, as `verify` does (a bundle with no
    manifest is refused: pass --manifest). Logins carry their TOTP seeds; a secret that opens
    a vendor account sits in the group Vendors/<vendor>, any other in a group per kind."""
    from cli.commands.export import atomic_output
    from vault.services.export import write_bundle_portable

    passphrase, key_data = kdbx_protection(fmt, kdbx_passphrase_file, kdbx_keyfile)
    verified, content = _open_bundle(bundle, identity_file, manifest, key, allow_unsigned)
    with atomic_output(out_path) as out:
        written = write_bundle_portable(content, fmt, out, passphrase=passphrase, keyfile=key_data)
    verification = verified.as_dict()
    if as_json:
        print_json(
            {
                "client": verification["client"],
                "format": fmt,
                "entries": written,
                "out": str(out_path),
                "verification": verification,
            }
        )
    else:
        click.echo(
            f"{written} {'entry' if written == 1 else 'entries'} of "
            f"{verification['client']['name']} -> {out_path} ({fmt}); "
            f"bundle {verification['signature']}"
            + (", key pinned" if verification["key_pinned"] else "")
        )
    for warning in verified.warnings:
        click.echo(f"custody: warning: {warning}", err=True)
    if fmt != "kdbx":
        click.echo(
            f"custody: warning: {out_path.name} holds every password in plain text: import "
            "it, then delete it",
            err=True,
        )


@takeover_group.command("offline")
@click.option(
    "--db",
    "database",
    required=True,
    help="A copy of the SQLite file (or a database URL) to export from.",
)
@_identity_option
@click.option("--client", "client_name", required=True, help="The client to export.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The bundle to write (its manifest goes to FILE.manifest).",
)
@click.option("--history", is_flag=True, help="Include every earlier version of each secret.")
@json_option
def takeover_offline(
    database: str,
    identity_file: Path,
    client_name: str,
    out_path: Path,
    history: bool,
    as_json: bool,
) -> None:
    """Make the client's export bundle from a database copy, with only the client's identity:
    no vault passphrase, no server. The vault's key stays sealed, so the manifest is unsigned
    (marked offline): verify it with --allow-unsigned."""
    from cli.commands.clients import load_identities
    from cli.commands.export import atomic_output, manifest_path, write_text_file
    from cli.common import local_only, progress_bar
    from vault.config import database_url_for
    from vault.services import export
    from vault.services.recovery import open_backup

    local_only("custody takeover offline")
    identities = load_identities(identity_file)
    engine = open_backup(database_url_for(database))
    try:
        with progress_bar("Exporting") as progress, atomic_output(out_path) as out:
            result = export.write_offline(
                engine, client_name, identities, out, history=history, progress=progress
            )
    finally:
        engine.dispose()
    write_text_file(manifest_path(out_path), result.manifest_text)
    if as_json:
        print_json(result.as_dict())
        return
    counts = result.manifest.counts
    click.echo(
        f"exported {result.manifest.client_name} offline: "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        + f" -> {out_path}"
    )
    click.echo(f"manifest (unsigned) -> {manifest_path(out_path)}")


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


@takeover_group.command("adopt")
@_bundle_argument
@_identity_option
@_manifest_option
@_key_option
@_unsigned_option
@click.option("--name", help="Name the client here (default: its name in the bundle).")
@json_option
def takeover_adopt(
    bundle: Path,
    identity_file: Path,
    manifest: Path | None,
    key: str | None,
    allow_unsigned: bool,
    name: str | None,
    as_json: bool,
) -> None:
    """Set a client up in this vault from its export bundle: every record kind as it was
    (contacts, escrow recipients, vendors, domains, assets, every secret version, links).

    For a new consultancy taking the client on, or a client running its own vault. The bundle
    is verified against its manifest first; it is opened here, with the client's identity,
    which never leaves this machine. Local store only."""

    from cli.common import local_only, open_store, operator_actor, unseal
    from vault.services import adopt

    local_only("takeover adopt")
    _verification, content = _open_bundle(bundle, identity_file, manifest, key, allow_unsigned)
    store = open_store()
    try:
        keys = unseal(store)
        with store.context(operator_actor(), keys) as ctx:
            result = adopt.adopt_client(ctx, content, name=name)
    finally:
        store.engine.dispose()
    data = result.as_dict()
    if as_json:
        print_json(data)
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts.items() if n)
    click.echo(f"adopted {result.client}: {counts}")


COMMANDS = [takeover_group, notice_group]
