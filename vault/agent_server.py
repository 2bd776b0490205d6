"""The serving half of the local vault agent (see ``vault.agent`` for the protocol)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import pwd
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from vault.agent import MAX_MESSAGE, AgentUnavailable, call, peer_uid
from vault.errors import Conflict, CustodyError, InvalidInput
from vault.keys import KeyRing
from vault.services import Context
from vault.store import Store

log = logging.getLogger("custody.agent")

Operation = Callable[[Context, dict[str, Any]], Any]


def _secret_read(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from vault.services.secrets import read_secret

    version = args.get("version")
    if version is not None and not isinstance(version, int):
        raise InvalidInput("version must be a number", field="version")
    s = read_secret(
        ctx,
        str(args.get("client", "")),
        str(args.get("title", "")),
        version=version,
        reason=args.get("reason"),
    )
    return s.as_dict()


def _ping(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    keys = ctx.keyring()
    return {"vault_id": keys.vault_id, "recipient": str(keys.recipient), "pid": os.getpid()}


def _required_text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    return value


def _text(args: dict[str, Any], name: str) -> str | None:
    return None if args.get(name) is None else _required_text(args, name)


def _texts(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{name} must be a list of text", field=name)
    return value


def _flag(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false", field=name)
    return value


def _client_add(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody client add` with the vault running: the new client key is wrapped by the keys
    the agent holds, so the CLI needs no passphrase."""
    from vault.services.clients import add_client

    client = add_client(ctx, _required_text(args, "name"), recipients=_texts(args, "recipients"))
    return {
        "id": client.id,
        "name": client.name,
        "recipients": [r.recipient for r in client.recipients],
    }


def _secret_add(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody secret add` with the vault running: sealed by the agent's keys."""
    from vault.services.secrets import add_secret

    secret = add_secret(
        ctx,
        _required_text(args, "client"),
        title=_required_text(args, "title"),
        value=_required_text(args, "value"),
        kind=_text(args, "kind") or "login",
        username=_text(args, "username"),
        url=_text(args, "url"),
        notes=_text(args, "notes"),
        tags=_texts(args, "tags"),
        exclusive=_flag(args, "exclusive"),
        sensitive=_flag(args, "sensitive"),
        rotate_after_use=_flag(args, "rotate_after_use"),
    )
    return {"id": secret.id, "title": secret.title, "version": secret.current_version}


def _inventory_add(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody vendor/domain/asset add` with the vault running (notes are sealed)."""
    from vault.services.inventory import add_record, describe, vendor_namer

    kind = _required_text(args, "kind")
    values = _values(args)
    record = add_record(ctx, kind, _required_text(args, "client"), name=args.get("name"), **values)
    data = describe(kind, record.row, vendor_namer(ctx))
    return {**_iso(data), "created_vendors": list(record.created_vendors)}


def _values(args: dict[str, Any]) -> dict[str, str]:
    """An inventory record's fields to set, by name (the record's name goes apart)."""
    values = args.get("values") or {}
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise InvalidInput("values must map field names to text", field="values")
    if "name" in values or "new_name" in values:
        raise InvalidInput("the name goes in name (new_name), not in values", field="values")
    return values


def _inventory_update(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody vendor/domain/asset update` with the vault running (notes are sealed)."""
    from vault.services.inventory import describe, update_record, vendor_namer

    kind = _required_text(args, "kind")
    values: dict[str, Any] = dict(_values(args))
    new_name = _text(args, "new_name")
    if new_name is not None:
        values["new_name"] = new_name
    record = update_record(
        ctx, kind, _required_text(args, "client"), _required_text(args, "name"), **values
    )
    return _iso(describe(kind, record.row, vendor_namer(ctx)))


def _inventory_show(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody vendor/domain/asset show` with the vault running: the record with its sealed
    fields (the read is recorded)."""
    from vault.services.inventory import describe, show_record, vendor_namer

    kind = _required_text(args, "kind")
    record = show_record(ctx, kind, _required_text(args, "client"), _required_text(args, "name"))
    return _iso({**describe(kind, record.row, vendor_namer(ctx)), **record.private})


def _recipient_add(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody recipient add` with the vault running: the client key is re-wrapped by the
    agent."""
    from vault.services.clients import add_recipient

    row = add_recipient(
        ctx,
        _required_text(args, "client"),
        _required_text(args, "recipient"),
        label=_text(args, "label"),
    )
    return {"id": row.id, "recipient": row.recipient, "kind": row.kind}


def _recipient_remove(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody recipient remove` with the vault running."""
    from vault.services.clients import get_client, remove_recipient

    client = _required_text(args, "client")
    row = remove_recipient(ctx, client, _required_text(args, "recipient"))
    return {"removed": row.recipient, "left": len(get_client(ctx, client).recipients)}


def _optional_int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidInput(f"{name} must be a whole number", field=name)
    return value


def _optional_flag(args: dict[str, Any], name: str) -> bool | None:
    value = args.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true, false or null", field=name)
    return value


def _iso(data: dict[str, Any]) -> dict[str, Any]:
    """Dates and times as ISO 8601 text: the reply is JSON."""
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in data.items()}


def _secret_update(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody secret update` with the vault running (a new value, username or notes is
    sealed by the agent's keys). A field left out of ``args`` is left as it is; ``username``,
    ``url`` and ``notes`` given as null are cleared."""
    from vault.services.secrets import _UNSET, describe, update_secret

    cleared = {
        name: _text(args, name) if name in args else _UNSET for name in ("username", "url", "notes")
    }
    tags = _texts(args, "tags") if args.get("tags") is not None else None
    secret = update_secret(
        ctx,
        _required_text(args, "client"),
        _required_text(args, "title"),
        value=_text(args, "value"),
        new_title=_text(args, "new_title"),
        kind=_text(args, "kind"),
        tags=tags,
        exclusive=_optional_flag(args, "exclusive"),
        sensitive=_optional_flag(args, "sensitive"),
        rotate_after_use=_optional_flag(args, "rotate_after_use"),
        **cleared,
    )
    return _iso(describe(secret))


def _secret_checkout(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody secret checkout` with the vault running: a lease, and the value."""
    from datetime import timedelta

    from vault.services.checkout import checkout

    ttl = _optional_int(args, "ttl")
    out = checkout(
        ctx,
        _required_text(args, "client"),
        _required_text(args, "title"),
        reason=_text(args, "reason"),
        ticket=_text(args, "ticket"),
        ttl=timedelta(seconds=ttl) if ttl is not None else None,
        totp_code=_text(args, "totp"),
    )
    revealed = out.secret
    return {
        "lease": {"id": out.lease.id, "expires_at": out.lease.expires_at.isoformat()},
        "title": revealed.secret.title,
        "version": revealed.version,
        "value": revealed.value,
        "username": revealed.username,
        "notes": revealed.notes,
    }


def _secret_checkin(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody secret checkin` with the vault running (a rotation seals the new value)."""
    from vault.services.checkout import checkin

    lease, version, generated = checkin(
        ctx,
        _required_text(args, "lease"),
        new_value=_text(args, "new_value"),
        generate=_flag(args, "generate"),
    )
    return {"lease": {"id": lease.id}, "new_version": version, "generated_value": generated}


def _secret_totp(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody secret totp` with the vault running: the code, never the seed."""
    from vault.services.checkout import totp_code

    code, remaining = totp_code(ctx, _required_text(args, "client"), _required_text(args, "title"))
    return {"code": code, "valid_for_seconds": remaining}


def _log_sign(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody audit ...` on the vault's host with the vault running: a checkpoint of the log
    as it is now, signed with the log key the agent holds and stored (the latest one if the
    log has not grown since), so the CLI reads the log without unsealing."""
    from vault.services.auditlog import sign

    checkpoint = sign(ctx.session, ctx.keyring())
    return {"size": checkpoint.size, "note": checkpoint.note}


OPERATIONS: dict[str, Operation] = {
    "ping": _ping,
    "log.sign": _log_sign,
    "recipient.add": _recipient_add,
    "recipient.remove": _recipient_remove,
    "secret.read": _secret_read,
    "client.add": _client_add,
    "secret.add": _secret_add,
    "inventory.add": _inventory_add,
    "inventory.update": _inventory_update,
    "secret.update": _secret_update,
    "secret.checkout": _secret_checkout,
    "secret.checkin": _secret_checkin,
    "secret.totp": _secret_totp,
}


def _report_readiness(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """`custody report readiness` with the vault running (it compares the passwords, so it
    needs the keys); a read-only transaction, as every read-only request."""
    from vault.services.readiness import readiness

    return _iso(readiness(ctx, _required_text(args, "client")).as_dict())


#: operations that only read: run in a read-only transaction (Store.read_context), outside
#: the group commit; their audit events are written right after
READ_OPERATIONS: dict[str, Operation] = {
    "report.readiness": _report_readiness,
    "inventory.show": _inventory_show,
}


def run_operation(store: Store, keys: KeyRing, actor: str, name: str, args: dict[str, Any]) -> Any:
    """Run one of OPERATIONS (in a transaction), READ_OPERATIONS (in a read-only one) or
    STORE_OPERATIONS (which manage their own) as ``actor``: for the agent and for the CLI
    that unsealed the vault itself alike."""
    if name in STORE_OPERATIONS:
        return STORE_OPERATIONS[name](store, keys, actor, args)
    if name in READ_OPERATIONS:
        with store.read_context(actor, keys) as ctx:
            return READ_OPERATIONS[name](ctx, args)
    with store.context(actor, keys) as ctx:
        return OPERATIONS[name](ctx, args)


StoreOperation = Callable[[Store, KeyRing, str, dict[str, Any]], Any]


@contextlib.contextmanager
def _caller_file(args: dict[str, Any]) -> Iterator[BinaryIO]:
    """The file the caller made for the agent to fill (``path``: absolute), opened for writing
    without following a symlink, only if it is a regular file of this user; flushed to disk
    when the block ends. The caller - the same OS user, checked on the socket - creates it
    private and renames it once the operation succeeds."""
    path = args.get("path")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidInput("path must be an absolute file name", field="path")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    except OSError as exc:
        raise InvalidInput(f"cannot open {path}: {exc.strerror}", field="path") from None
    with os.fdopen(fd, "wb") as out:
        if not os.path.isfile(path) or os.fstat(out.fileno()).st_uid != os.getuid():
            raise InvalidInput("path must be a regular file of this user", field="path")
        yield out
        out.flush()
        os.fsync(out.fileno())


def _client_export(store: Store, keys: KeyRing, actor: str, args: dict[str, Any]) -> Any:
    """Write a client's age bundle into a file the caller made (``custody export`` with the
    vault running: no start-up, no unseal per export)."""
    from vault.services import export

    with _caller_file(args) as out:
        result = export.export_client(
            store, keys, actor, str(args.get("client", "")), out, history=bool(args.get("history"))
        )
    return {"summary": result.as_dict(), "manifest": result.manifest_text}


def _client_export_portable(store: Store, keys: KeyRing, actor: str, args: dict[str, Any]) -> Any:
    """``custody export --format kdbx|bitwarden-json|csv`` with the vault running: the file for
    another password manager, written into the file the caller made. The KDBX passphrase and
    key file come from the caller (the key file's bytes in base64)."""
    from vault.services import export

    keyfile = _text(args, "keyfile")
    try:
        key_data = None if keyfile is None else base64.b64decode(keyfile, validate=True)
    except ValueError:
        raise InvalidInput("keyfile must be base64", field="keyfile") from None
    with _caller_file(args) as out:
        result = export.export_portable(
            store,
            keys,
            actor,
            _required_text(args, "client"),
            _required_text(args, "format"),
            out,
            history=_flag(args, "history"),
            passphrase=_text(args, "passphrase"),
            keyfile=key_data,
        )
    return result.as_dict()


def _escrow_run(store: Store, keys: KeyRing, actor: str, args: dict[str, Any]) -> Any:
    """``custody escrow run`` with the vault running: due takeovers completed, due drops
    delivered (all of one client's with ``force``), by the agent's keys."""
    from vault.services import escrow

    results = escrow.run_now(store, keys, client=_text(args, "client"), force=_flag(args, "force"))
    return [r.as_dict() for r in results]


#: sources the agent imports: those read without the caller's terminal or gpg (a pass store
#: is decrypted by the caller's gpg: `custody import pass` unseals the vault itself)
AGENT_IMPORT_SOURCES = ("bitwarden", "keepass", "csv")


def _secret_import(store: Store, keys: KeyRing, actor: str, args: dict[str, Any]) -> Any:
    """``custody import`` with the vault running: the agent reads the file the caller names
    (the same OS user, checked on the socket: nothing it could not read itself) and plans or
    runs the import in batches with the keys it holds, so the CLI needs no passphrase."""
    from vault.services.imports import DEFAULT_BATCH, import_file

    source = _required_text(args, "source")
    if source not in AGENT_IMPORT_SOURCES:
        raise InvalidInput(
            f"source must be one of: {', '.join(AGENT_IMPORT_SOURCES)}", field="source"
        )
    batch_size = _optional_int(args, "batch_size")
    return import_file(
        store,
        keys,
        actor,
        _required_text(args, "client"),
        source,
        _absolute_path(args, "file"),
        dry_run=_flag(args, "dry_run"),
        passphrase=_text(args, "passphrase"),
        keyfile=_optional_path(args, "keyfile"),
        mapping=_optional_path(args, "mapping"),
        preset=_text(args, "preset"),
        batch_size=DEFAULT_BATCH if batch_size is None else batch_size,
    )


def _absolute_path(args: dict[str, Any], name: str) -> Path:
    value = args.get(name)
    if not isinstance(value, str) or not os.path.isabs(value):
        raise InvalidInput(f"{name} must be an absolute file name", field=name)
    return Path(value)


def _optional_path(args: dict[str, Any], name: str) -> Path | None:
    return None if args.get(name) is None else _absolute_path(args, name)


#: operations that manage their own transactions (they get the store, not a context)
STORE_OPERATIONS: dict[str, StoreOperation] = {
    "client.export": _client_export,
    "client.export_portable": _client_export_portable,
    "escrow.run": _escrow_run,
    "secret.import": _secret_import,
}


class AgentServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, store: Store, keys: KeyRing) -> None:
        self.store, self.keys, self.path = store, keys, path
        self.uid = os.getuid()
        _claim_socket_path(path)
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old_umask)

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _claim_socket_path(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if path.exists() or path.is_socket():
        try:
            call(str(path), "ping")
        except AgentUnavailable:
            path.unlink()  # a stale socket left by an agent that died
        except CustodyError:
            raise Conflict(f"an agent is already running at {path}") from None
        else:
            raise Conflict(f"an agent is already running at {path}")


def _actor(uid: int) -> str:
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return f"operator:{name}"


class _Handler(socketserver.StreamRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        reply: dict[str, Any]
        try:
            uid = peer_uid(sock)
            # Read the request before answering, even one we refuse: closing a socket whose
            # peer is still sending makes its send fail (EPIPE) before it sees our answer.
            line = self.rfile.readline(MAX_MESSAGE + 1)
            if uid != self.server.uid:
                # Another local user: refuse, and say no more than that.
                reply = _error("forbidden", "this agent serves another user")
            else:
                reply = self._dispatch(uid, line)
        except Exception:  # noqa: BLE001 - never let a request kill the agent or leak a trace
            log.exception("agent request failed")
            reply = _error("error", "internal error in the agent")
        self.wfile.write(json.dumps(reply).encode("utf-8") + b"\n")

    def _dispatch(self, uid: int, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_MESSAGE:
            return _error("invalid_input", "request too large")
        try:
            request = json.loads(line)
            name = request["op"]
            if name not in OPERATIONS and name not in STORE_OPERATIONS | READ_OPERATIONS:
                raise KeyError(name)
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error("invalid_input", "malformed or unknown request")
        try:
            result = run_operation(self.server.store, self.server.keys, _actor(uid), name, args)
            return {"ok": True, "result": result}
        except CustodyError as exc:
            return _error(exc.code, exc.message, exc.field)


def _error(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message, "field": field}}


def serve(
    path: str | Path,
    store: Store,
    keys: KeyRing,
    *,
    ready: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve until interrupted (or until ``stop`` is set)."""
    server = AgentServer(Path(path), store, keys)
    try:
        if ready is not None:
            ready()
        if stop is None:
            server.serve_forever(poll_interval=0.5)
        else:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
            thread.start()
            stop.wait()
            server.shutdown()
            thread.join()
    finally:
        server.server_close()
