"""Clients, their contacts, escrow recipients, and the client-side key generator."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cli.common import (
    iso,
    json_option,
    keyed_operation,
    operator_actor,
    print_fields,
    print_json,
    print_table,
    prompt_hidden,
    remote,
    remote_capable,
    with_store,
)

ENCRYPTED_PREFIXES = (b"age-encryption.org/v1", b"-----BEGIN AGE ENCRYPTED FILE-----")


@click.group("client")
def client_group() -> None:
    """Clients (tenants): add, list, show; keygen for a client's own machine."""


@client_group.command("add")
@click.argument("name")
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    help="An escrow recipient (age1... or ssh-ed25519 ...); repeatable.",
)
@json_option
@with_store
@remote_capable
def client_add(store: Any, name: str, recipients: tuple[str, ...], as_json: bool) -> None:
    """Add a client; its new key is wrapped to the vault and to each --recipient."""
    out: dict[str, Any]
    if store is None:
        made = remote().call(
            "POST", "/clients", json_body={"name": name, "recipients": list(recipients)}
        )
        out = {
            "id": made["id"],
            "name": made["name"],
            "recipients": [r["recipient"] for r in made["recipients"]],
        }
    else:
        out = keyed_operation(store, "client.add", {"name": name, "recipients": list(recipients)})
    if as_json:
        print_json(out)
        return
    click.echo(f"added client {out['name']}")
    if not recipients:
        click.echo(
            "note: no escrow recipient yet - the client cannot open its data without you."
            "\n      Ask the client to run `custody client keygen` and add the recipient "
            "it prints:\n      custody recipient add " + _quote(out["name"]) + " age1...",
            err=True,
        )


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@client_group.command("list")
@json_option
@with_store
@remote_capable
def client_list(store: Any, as_json: bool) -> None:
    """List clients with their record counts."""
    from vault.services import clients

    if store is None:
        data = [
            {"name": c["name"], "id": c["id"], "created_at": c["created_at"], **c["counts"]}
            for c in remote().call("GET", "/clients")
        ]
    else:
        with store.context(operator_actor()) as ctx:
            rows = [clients.summarize(ctx, c) for c in clients.list_clients(ctx)]
            data = [
                {
                    "name": s.client.name,
                    "id": s.client.id,
                    "created_at": s.client.created_at,
                    **s.counts,
                }
                for s in rows
            ]
    if as_json:
        print_json(data)
        return
    if not data:
        click.echo("no clients yet: custody client add NAME")
        return
    print_table(
        ["client", "secrets", "vendors", "domains", "assets", "escrow recipients"],
        [
            (
                d["name"],
                d["secrets"],
                d["vendors"],
                d["domains"],
                d["assets"],
                d["recipients"] or "none (!)",
            )
            for d in data
        ],
    )


@client_group.command("show")
@click.argument("name")
@json_option
@with_store
@remote_capable
def client_show(store: Any, name: str, as_json: bool) -> None:
    """Show one client: counts, escrow recipients, contacts."""
    from vault.services import clients

    if store is None:
        data = remote().call("GET", "/clients", params={"name": name})[0]
    else:
        with store.context(operator_actor()) as ctx:
            data = clients.describe(ctx, clients.get_client(ctx, name))
    if as_json:
        print_json(data)
        return
    print_fields(
        [
            ("client", data["name"]),
            ("id", data["id"]),
            ("created", iso(data["created_at"])),
            *[(k, v) for k, v in data["counts"].items()],
        ]
    )
    click.echo("\nescrow recipients:" + ("" if data["recipients"] else " none"))
    for r in data["recipients"]:
        click.echo(f"  {r['recipient']}" + (f"  ({r['label']})" if r["label"] else ""))
    if data["contacts"]:
        click.echo("\ncontacts:")
        for p in data["contacts"]:
            click.echo(
                "  "
                + ", ".join(str(v) for v in (p["name"], p["role"], p["email"], p["phone"]) if v)
            )


@client_group.command("contact")
@click.argument("client")
@click.argument("name")
@click.option("--email")
@click.option("--phone")
@click.option("--role", help="e.g. owner, office manager")
@json_option
@with_store
@remote_capable
def client_contact(
    store: Any,
    client: str,
    name: str,
    email: str | None,
    phone: str | None,
    role: str | None,
    as_json: bool,
) -> None:
    """Add a contact person to a client."""
    from vault.services import clients

    if store is None:
        server = remote()
        made = server.call(
            "POST",
            f"/clients/{server.client_id(client)}/contacts",
            json_body={"name": name, "email": email, "phone": phone, "role": role},
        )
        data = {"id": made["id"], "name": made["name"]}
        print_json(data) if as_json else click.echo(f"added contact {data['name']}")
        return
    with store.context(operator_actor()) as ctx:
        contact = clients.add_contact(ctx, client, name, email=email, phone=phone, role=role)
        data = {"id": contact.id, "name": contact.name}
    print_json(data) if as_json else click.echo(f"added contact {data['name']}")


@client_group.command("keyfile")
@click.argument("name")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the client key file (an age file; refuses to overwrite).",
)
@json_option
@with_store
def client_keyfile(store: Any, name: str, out_path: Path, as_json: bool) -> None:
    """Write a client's stored key file: an age file the client opens with its own identity.

    `age -d -i IDENTITY FILE` prints the client key - proof, with standard tools, that the
    client can open its own data without the consultancy. Needs no unsealing.
    """
    from vault.errors import InvalidInput
    from vault.services import audit, clients

    if out_path.exists():
        raise InvalidInput(f"{out_path} already exists; refusing to overwrite", field="out")
    with store.context(operator_actor()) as ctx:
        client = clients.get_client(ctx, name)
        blob = client.wrapped_key
        recipients = [r.recipient for r in client.recipients]
        audit.record(
            ctx, "client.keyfile", client_id=client.id, subject_kind="client", subject_id=client.id
        )
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    if as_json:
        print_json({"file": str(out_path), "recipients": recipients})
        return
    click.echo(
        f"wrote {out_path}; it opens with the identity of: "
        + (", ".join(recipients) if recipients else "the vault only (no escrow recipient!)")
    )


@client_group.command("keygen")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the new identity (refuses to overwrite).",
)
@click.option(
    "--no-passphrase",
    is_flag=True,
    help="Write the identity unencrypted (only for a key kept on encrypted storage).",
)
@json_option
def client_keygen(out_path: Path, no_passphrase: bool, as_json: bool) -> None:
    """Make an escrow identity on the client's own machine and print its recipient.

    Runs without any vault: the private key never leaves this machine. The file is an age
    identity, encrypted with a passphrase (age scrypt), readable by `age -d -i FILE`.
    Give the printed age1... recipient to your consultant.
    """
    from vault.crypto import age
    from vault.errors import InvalidInput

    if out_path.exists():
        raise InvalidInput(f"{out_path} already exists; refusing to overwrite a key", field="out")
    identity = age.X25519Identity.generate()
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    text = (
        f"# created: {now}\n# public key: {identity.recipient}\n"
        f"# Custody escrow identity: keep this file and its passphrase safe.\n"
        f"{identity}\n"
    ).encode("ascii")
    if not no_passphrase:
        passphrase = _new_identity_passphrase()
        text = age.encrypt(text, [age.ScryptRecipient(passphrase)], armor=True)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text)
    if as_json:
        print_json(
            {
                "recipient": str(identity.recipient),
                "identity_file": str(out_path),
                "encrypted": not no_passphrase,
            }
        )
        return
    click.echo(
        f"Identity written to {out_path}" + ("" if no_passphrase else " (passphrase-protected)"),
        err=True,
    )
    click.echo(f"Public key: {identity.recipient}", err=True)
    click.echo(str(identity.recipient))


def _identity_passphrase_from_env() -> str | None:
    path = os.environ.get("CUSTODY_IDENTITY_PASSPHRASE_FILE")
    if path:
        from cli.common import read_secret_file

        return read_secret_file(path, "CUSTODY_IDENTITY_PASSPHRASE_FILE")
    return None


def _new_identity_passphrase() -> str:
    from vault.errors import InvalidInput

    passphrase = _identity_passphrase_from_env()
    if passphrase is None:
        passphrase = prompt_hidden("Passphrase for the new identity")
        if passphrase != prompt_hidden("Repeat the passphrase"):
            raise InvalidInput("the two passphrases differ", field="passphrase")
    if len(passphrase) < 12:
        raise InvalidInput(
            "the identity passphrase must be at least 12 characters", field="passphrase"
        )
    return passphrase


def load_identities(path: Path) -> list[Any]:
    """Read an age identity file, asking for its passphrase if it is encrypted."""
    from vault.crypto import age
    from vault.errors import AgeError, MalformedIdentity

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MalformedIdentity(f"cannot read {path}: {exc.strerror}", field="identity") from None
    if data.lstrip().startswith(ENCRYPTED_PREFIXES):
        passphrase = _identity_passphrase_from_env() or prompt_hidden(
            f"Passphrase for {path.name}", instead="set CUSTODY_IDENTITY_PASSPHRASE_FILE"
        )
        try:
            data = age.decrypt(data, [age.ScryptIdentity(passphrase)])
        except AgeError:
            raise MalformedIdentity(
                f"the passphrase does not open {path}", field="identity"
            ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedIdentity(f"{path} is not an age identity file", field="identity") from None
    return list(age.parse_identities(text))


# --- recipients ---------------------------------------------------------------------------


@click.group("recipient")
def recipient_group() -> None:
    """A client's escrow recipients: the public keys its client key is wrapped to."""


@recipient_group.command("add")
@click.argument("client")
@click.argument("recipient")
@click.option("--label", help="Who holds it, e.g. 'owner laptop'.")
@json_option
@with_store
@remote_capable
def recipient_add(
    store: Any, client: str, recipient: str, label: str | None, as_json: bool
) -> None:
    """Add an escrow recipient (age1... or "ssh-ed25519 AAAA..."); re-wraps the client key."""
    if store is None:
        server = remote()
        row = server.call(
            "POST",
            f"/clients/{server.client_id(client)}/recipients",
            json_body={"recipient": recipient, "label": label},
        )
        data = {"id": row["id"], "recipient": row["recipient"], "kind": row["kind"]}
        print_json(data) if as_json else click.echo(f"added recipient {data['recipient']}")
        return
    data = keyed_operation(
        store, "recipient.add", {"client": client, "recipient": recipient, "label": label}
    )
    print_json(data) if as_json else click.echo(f"added recipient {data['recipient']}")


@recipient_group.command("list")
@click.argument("client")
@json_option
@with_store
@remote_capable
def recipient_list(store: Any, client: str, as_json: bool) -> None:
    """List a client's escrow recipients."""
    from vault.services import clients

    data: list[dict[str, Any]]
    if store is None:
        server = remote()
        data = server.call("GET", f"/clients/{server.client_id(client)}/recipients")
    else:
        with store.context(operator_actor()) as ctx:
            data = [
                clients.describe_recipient(r) for r in clients.get_client(ctx, client).recipients
            ]
    if as_json:
        print_json(data)
    elif not data:
        click.echo(f"{client}: no escrow recipients")
    else:
        for r in data:
            click.echo(r["recipient"] + (f"  ({r['label']})" if r["label"] else ""))


@recipient_group.command("remove")
@click.argument("client")
@click.argument("recipient")
@json_option
@with_store
@remote_capable
def recipient_remove(store: Any, client: str, recipient: str, as_json: bool) -> None:
    """Remove an escrow recipient (by key, id or label); re-wraps the client key."""
    if store is None:
        server = remote()
        client_id = server.client_id(client)
        rows = server.call("GET", f"/clients/{client_id}/recipients")
        wanted = " ".join(recipient.split()[:2])  # an ssh key without its comment
        match = [r for r in rows if wanted in (r["recipient"], r["id"], r["label"])]
        if len(match) != 1:
            from vault.errors import NotFound

            raise NotFound(f"client {client!r} has no such recipient", field="recipient")
        server.call("DELETE", f"/clients/{client_id}/recipients/{match[0]['id']}")
        data = {"removed": match[0]["recipient"]}
        print_json(data) if as_json else click.echo(f"removed recipient {data['removed']}")
        return
    data = keyed_operation(store, "recipient.remove", {"client": client, "recipient": recipient})
    if as_json:
        print_json(data)
        return
    click.echo(f"removed recipient {data['removed']}")
    if not data["left"]:
        click.echo(
            "warning: the client has no escrow recipient left - it cannot open its data "
            "without you until it registers a new one",
            err=True,
        )


COMMANDS = [client_group, recipient_group]
