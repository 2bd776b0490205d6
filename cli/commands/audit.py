"""The transparency log: key, checkpoint, entries, export, proofs, offline verify, watch.

Every command but `verify` reads the log of the server chosen with --server (after `custody
login`) or of the local store; `verify` reads only the file it is given. Exit codes: 0 when
all is well, **1 when the log is found wrong** (an export that does not verify, a checkpoint
that is not consistent with the one you kept) - a finding, not a mistake of yours - and 2 for
bad usage or an error (one line, as everywhere in Custody).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from cli.common import (
    Finding,
    json_option,
    print_fields,
    print_json,
    print_table,
    progress_bar,
    remote_capable,
    with_store,
)

OUTCOMES = ["ok", "denied", "failed"]


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log: pin its key, watch it, verify exports.

    The log is a Merkle tree of every audit event; the vault signs checkpoints of it (size and
    root hash) with its log key. Pin that key once (`custody audit key`), then `custody audit
    watch` proves on each run that the log only grew, and `custody audit verify` checks an
    exported log offline.
    """


# --- options and small helpers -----------------------------------------------------------------


def _when(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """ISO 8601 date or time; without a zone it is this machine's local time."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "expected an ISO 8601 date or time, e.g. 2026-11-23 or 2026-11-23T14:00:00Z"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--client", help="One client's events (name or id)."),
        click.option("--actor", help="Events by this actor (e.g. user:alice)."),
        click.option("--action", help="Events of this action (e.g. secret.checkout)."),
        click.option("--outcome", type=click.Choice(OUTCOMES)),
        click.option(
            "--since", callback=_when, help="From this time (ISO 8601, local if no zone)."
        ),
        click.option("--until", callback=_when, help="Before this time (ISO 8601)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _filters(
    client: str | None,
    actor: str | None,
    action: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    return {
        "client": client,
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "since": since,
        "until": until,
    }


def key_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--key",
        "key_text",
        metavar="VKEY|FILE",
        help="The log's verifier key you pinned (the string, or a file holding it).",
    )(func)


def read_key(text: str) -> Any:
    """A verifier from a key string, or from a file holding one; InvalidInput if neither."""
    from vault.errors import InvalidInput
    from vault.log.errors import NoteError
    from vault.log.note import Verifier

    candidate = text.strip()
    try:
        return Verifier.parse(candidate)
    except NoteError as exc:
        problem = exc.message
    path = Path(candidate)
    if path.is_file():
        try:
            return Verifier.parse(path.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the key file {path}: {exc}", field="key") from None
        except NoteError as exc:
            problem = f"{path}: {exc.message}"
    raise InvalidInput(f"not a log verifier key: {problem}", field="key")


def _pinned_or_fetched(source: Any, key_text: str | None) -> Any:
    """The pinned key, or (trust on first use) the one the source serves, with a warning."""
    if key_text:
        return read_key(key_text)
    from vault.log.note import Verifier

    served = source.key()["key"]
    click.echo(
        f"custody: warning: no --key given; trusting the key {source.where} serves now "
        f"({served}). Pin it to detect a log re-signed with another key.",
        err=True,
    )
    return Verifier.parse(served)


def _finding(message: str) -> NoReturn:
    """The log is wrong: one ``custody: FAILED:`` line and exit code 1."""
    raise Finding(message)


def _write_new(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` (mode 0600) through ``write(fh)``: refuses to overwrite, and leaves no
    half file behind on failure."""
    from vault.errors import InvalidInput

    if path.exists():
        raise InvalidInput(f"{path} already exists; refusing to overwrite", field="out")
    part = path.with_name(path.name + ".part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidInput(f"cannot write {part}: {exc.strerror}", field="out") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


# --- key, checkpoint, entries, export --------------------------------------------------------


@audit_group.command("key")
@json_option
@with_store
@remote_capable
def audit_key(store: Any, as_json: bool) -> None:
    """Print the log's verifier key (name+hash+base64): pin it, and check it out of band."""
    from cli.logsource import open_source

    info = open_source(store).key()
    print_json(info) if as_json else click.echo(info["key"])


@audit_group.command("checkpoint")
@click.option("--size", type=click.IntRange(min=0), help="The checkpoint of this tree size.")
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Write it here."
)
@with_store
@remote_capable
def audit_checkpoint(store: Any, size: int | None, out_path: Path | None) -> None:
    """Print the latest signed checkpoint note (locally, signing one needs the unseal secret
    when the log grew since the latest)."""
    from cli.logsource import open_source

    note = open_source(store).checkpoint(size)
    if out_path is None:
        click.echo(note, nl=False)
        return
    _write_new(out_path, lambda fh: fh.write(note.encode("utf-8")))
    click.echo(f"wrote {out_path}", err=True)


@audit_group.command("log")
@filter_options
@click.option("--after", type=click.IntRange(min=0), help="Events after this index (paging).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--proofs", is_flag=True, help="Include inclusion proofs (with --json).")
@json_option
@with_store
@remote_capable
def audit_log(
    store: Any,
    client: str | None,
    actor: str | None,
    action: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    after: int | None,
    limit: int,
    proofs: bool,
    as_json: bool,
) -> None:
    """List the events you may see, oldest first."""
    from cli.logsource import open_source

    chosen = _filters(client, actor, action, outcome, since, until)
    page = open_source(store).entries(chosen, after=after, limit=limit, proofs=proofs)
    if as_json:
        print_json(page)
        return
    rows = page["entries"]
    if not rows:
        click.echo("no events match")
    else:
        print_table(
            ["index", "at (UTC)", "actor", "action", "outcome", "client"],
            [
                (
                    e["index"],
                    e["event"]["at"][:19].replace("T", " "),
                    e["event"]["actor"],
                    e["event"]["action"],
                    e["event"]["outcome"],
                    (e["event"]["client_id"] or "")[:8],
                )
                for e in rows
            ],
        )
    if page["next_after"] is not None:
        click.echo(f"more: --after {page['next_after']}", err=True)


@audit_group.command("export")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (refuses to overwrite).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@filter_options
@with_store
@remote_capable
def audit_export(
    store: Any,
    out_path: Path,
    fmt: str,
    client: str | None,
    actor: str | None,
    action: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Export the events you may see: JSON Lines (verify it with `custody audit verify`) or CSV
    for a SIEM (no proofs)."""
    from cli.logsource import open_source

    source = open_source(store)
    chosen = _filters(client, actor, action, outcome, since, until)
    with progress_bar("Exporting") as progress:
        _write_new(out_path, lambda fh: source.export(fh, fmt, chosen, progress))
    click.echo(f"wrote {out_path}", err=True)


# --- proofs ------------------------------------------------------------------------------------


@audit_group.group("proof")
def proof_group() -> None:
    """Inclusion and consistency proofs (RFC 9162)."""


@proof_group.command("inclusion")
@click.argument("index", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=1), help="Tree size (default: latest checkpoint).")
@click.option("--verify", is_flag=True, help="Check it against the signed checkpoint.")
@key_option
@json_option
@with_store
@remote_capable
def proof_inclusion(
    store: Any, index: int, size: int | None, verify: bool, key_text: str | None, as_json: bool
) -> None:
    """Proof that event INDEX is in the log (an event you may see)."""
    from cli.logsource import hashes, open_source

    source = open_source(store)
    proof = source.inclusion(index, size)
    if verify:
        _verify_inclusion(source, proof, hashes(proof), key_text)
    if as_json:
        print_json(proof)
        return
    print_fields([("index", proof["index"]), ("size", proof["size"])])
    for h in proof["hashes"]:
        click.echo(h)


def _verify_inclusion(
    source: Any, proof: dict[str, Any], path: list[bytes], key_text: str | None
) -> None:
    import base64

    from vault.errors import CustodyError
    from vault.log import merkle
    from vault.log.errors import LogError
    from vault.log.events import encode, event_object
    from vault.log.note import verify_checkpoint

    key = _pinned_or_fetched(source, key_text)
    index, size = proof["index"], proof["size"]
    note = source.checkpoint(size)
    try:
        cp = verify_checkpoint(note, key)
    except LogError as exc:
        _finding(f"the checkpoint of size {size} does not verify with the key: {exc.message}")
    page = source.entries({}, after=index - 1 if index else None, limit=1)
    found = page["entries"][0] if page["entries"] else None
    if found is None or found["index"] != index:
        raise CustodyError(f"event {index} was not served with its fields")
    try:
        leaf = base64.b64decode(found["leaf"], validate=True)
    except (ValueError, TypeError):
        _finding(f"event {index}: its leaf is not base64")
    try:
        if encode(event_object(index, found["event"])) != leaf:
            _finding(f"event {index}: its fields do not encode to its leaf bytes")
        merkle.verify_inclusion(merkle.leaf_hash(leaf), index, size, path, cp.root)
    except LogError as exc:
        _finding(f"event {index} is not proven in the signed log of size {size}: {exc.message}")
    click.echo(
        f"verified: event {index} is in the log of size {size} signed by {key.name}",
        err=True,
    )


@proof_group.command("consistency")
@click.argument("old", type=click.IntRange(min=0))
@click.argument("new", type=click.IntRange(min=0))
@click.option("--verify", is_flag=True, help="Check it against the two signed checkpoints.")
@key_option
@json_option
@with_store
@remote_capable
def proof_consistency(
    store: Any, old: int, new: int, verify: bool, key_text: str | None, as_json: bool
) -> None:
    """Proof that the log of OLD events is a prefix of the log of NEW events."""
    from cli.logsource import hashes, open_source

    source = open_source(store)
    proof = source.consistency(old, new)
    if verify:
        _verify_consistency(source, old, new, hashes(proof), key_text)
    if as_json:
        print_json(proof)
        return
    print_fields([("old", proof["old"]), ("new", proof["new"])])
    for h in proof["hashes"]:
        click.echo(h)


def _verify_consistency(
    source: Any, old: int, new: int, path: list[bytes], key_text: str | None
) -> None:
    from vault.log import merkle
    from vault.log.errors import LogError
    from vault.log.note import verify_checkpoint

    key = _pinned_or_fetched(source, key_text)
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    for size in sorted({old, new} - {0}):
        note = source.checkpoint(size)
        try:
            roots[size] = verify_checkpoint(note, key).root
        except LogError as exc:
            _finding(f"the checkpoint of size {size} does not verify with the key: {exc.message}")
    try:
        merkle.verify_consistency(old, new, roots[old], roots[new], path)
    except LogError as exc:
        _finding(f"the signed logs of sizes {old} and {new} are not consistent: {exc.message}")
    click.echo(f"verified: the log of {old} events is a prefix of the log of {new}", err=True)


# --- verify (offline) ------------------------------------------------------------------------


@audit_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    "checkpoint_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint note you saved earlier: the export must be consistent with it.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes hashing a large whole-log export (default: one per CPU).",
)
@key_option
@json_option
def audit_verify(
    file: Path,
    checkpoint_path: Path | None,
    jobs: int | None,
    key_text: str | None,
    as_json: bool,
) -> None:
    """Verify an exported log (JSON Lines) offline: no store, no server, no network.

    Re-derives every leaf from its event's fields, recomputes the tree, checks every checkpoint
    signature (with --key, the key you pinned) and the consistency with --checkpoint. Exit 1
    and the first bad event when it does not verify.
    """
    import base64

    from vault.errors import InvalidInput
    from vault.log.verify import LogVerificationError, verify_export_file

    key = read_key(key_text) if key_text else None
    saved: bytes | None = None
    if checkpoint_path is not None:
        saved = _read_file(checkpoint_path, "checkpoint")
    try:
        report = verify_export_file(file, key=key, saved_checkpoint=saved, jobs=jobs)
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}", field="file") from None
    except LogVerificationError as exc:
        if exc.line == 1 and exc.index is None:
            # The header: this is not a Custody log export at all - a wrong file, not a finding.
            raise InvalidInput(f"{file} is not a Custody log export ({exc.message})") from None
        _finding(f"{file} does not verify: {exc.message}")
    data = {
        "origin": report.origin,
        "size": report.size,
        "root": base64.b64encode(report.root).decode("ascii"),
        "view": report.view,
        "events": report.events,
        "checkpoints": report.checkpoints,
        "key_pinned": report.key_pinned,
        "saved_checkpoint_size": report.saved_size,
        "notes": report.notes,
    }
    for note in report.notes:
        click.echo(f"custody: warning: {note}", err=True)
    if as_json:
        print_json(data)
        return
    click.echo("verified")
    print_fields(
        [
            ("origin", report.origin),
            ("size", report.size),
            ("root", data["root"]),
            ("view", report.view),
            ("events", report.events),
            ("checkpoints", report.checkpoints),
            ("consistent with", report.saved_size),
        ]
    )


def _read_file(path: Path, what: str) -> bytes:
    from vault.errors import InvalidInput

    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field=what) from None


# --- watch -------------------------------------------------------------------------------------


@audit_group.command("watch")
@click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your state file: the pinned key and the last verified checkpoint (made on first run).",
)
@key_option
@with_store
@remote_capable
def audit_watch(store: Any, state_path: Path, key_text: str | None) -> None:
    """Fetch the latest checkpoint and prove the log only grew since your last visit.

    The first run pins the key (--key, or the one served now: trust on first use) and keeps
    the checkpoint. Later runs exit 1 - printing both checkpoints as evidence, and keeping the
    state as it was - if the log was truncated, rewritten or forked.
    """
    import base64

    from cli import logwatch
    from cli.logsource import hashes, open_source
    from vault.errors import InvalidInput
    from vault.log.errors import LogError
    from vault.log.note import verify_checkpoint

    source = open_source(store)
    state = logwatch.load(state_path)
    if state is None:
        key = _pinned_or_fetched(source, key_text)
        note = source.checkpoint()
        try:
            first = verify_checkpoint(note, key)
        except LogError as exc:
            click.echo(note, nl=False)
            _finding(f"the served checkpoint does not verify with the key: {exc.message}")
        logwatch.save(
            state_path,
            logwatch.State(
                origin=first.origin,
                key=key.key_string(),
                checkpoint=note,
                source=source.where,
            ),
        )
        click.echo(
            f"pinned the log key of {first.origin} and its checkpoint: {first.size} events, "
            f"root {base64.b64encode(first.root).decode('ascii')} (saved in {state_path})"
        )
        return
    if key_text and read_key(key_text) != state.verifier():
        raise InvalidInput(
            f"{state_path} pins another key than --key: use a new state file to re-pin",
            field="key",
        )
    served = source.checkpoint()
    info = source.key()
    handovers = [(h["key"], h["note"]) for h in info.get("handovers", []) if isinstance(h, dict)]
    outcome = logwatch.compare(
        state, served, lambda old, new: hashes(source.consistency(old, new)), handovers
    )
    if isinstance(outcome, logwatch.Finding):
        click.echo(f"--- saved checkpoint (last verified, from {state_path}) ---")
        click.echo(outcome.saved_note, nl=False)
        click.echo(f"--- checkpoint served now by {source.where} ---")
        click.echo(outcome.served_note, nl=False)
        _finding(outcome.message)
    if outcome.kind == "unchanged":
        click.echo(f"unchanged: {outcome.new.size} events, same signed root")
        return
    if outcome.key is not None:
        click.echo(
            f"the log key was rotated; followed its handover checkpoint, now pinned: {outcome.key}"
        )
    logwatch.save(
        state_path,
        logwatch.State(
            origin=state.origin,
            key=outcome.key or state.key,
            checkpoint=served,
            source=source.where,
        ),
    )
    click.echo(
        f"consistent: the log grew from {outcome.old.size} to {outcome.new.size} events "
        "(consistency proof verified; checkpoint saved)"
    )


COMMANDS = [audit_group]
