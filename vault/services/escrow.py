"""Escrow drops: the client's export, delivered on a schedule to places the client controls.

A destination is a directory (a local disk or a mounted share of the client's) or an HTTPS
endpoint of the client's (PUT or POST, the client's bearer token, TLS verified). Each run
builds the client's age bundle once (encrypted to the client's escrow recipients only - the
vault cannot open it) and delivers it to every due destination. A failure is retried with
growing delays; each destination keeps its last success and last error; a destination whose
last success is older than its schedule allows is *overdue*: flagged in listings, recorded in
the log and sent to the admins as a notice. Every drop, good or bad, is a log event.

Network and file I/O never happen inside a database transaction (on SQLite that would hold
the write lock for the length of an upload): :func:`run_due` reads what is due, delivers, then
records each outcome in a short transaction of its own.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from vault.crypto.fields import FieldLocation
from vault.db.models import Client, EscrowDestination, Notice, utcnow
from vault.errors import CustodyError, InvalidInput, NotFound
from vault.keys import KeyRing
from vault.services import Context, Principal, audit
from vault.services.clients import get_client
from vault.services.validation import optional_text

MIN_EVERY_HOURS = 1
MAX_EVERY_HOURS = 24 * 31
#: a drop is overdue when its last success is older than its schedule times this
OVERDUE_FACTOR = 1.5
FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=6)
HTTP_TIMEOUT = 120.0
#: bytes copied at a time when a bundle is written into a drop directory
COPY_CHUNK = 1024 * 1024
#: "1": allow HTTPS destinations on private, loopback and link-local addresses (tests, LANs)
ALLOW_PRIVATE_ENV = "CUSTODY_ESCROW_ALLOW_PRIVATE"
#: extra CA certificates (PEM) trusted for HTTPS destinations, e.g. a client's own CA
CA_FILE_ENV = "CUSTODY_ESCROW_CA_FILE"
RUNNER = Principal(name="system:escrow", role="system")

#: ``make_bundle(store, keys, client_id, directory) -> (bundle path, manifest text or None)``
BundleMaker = Callable[[Any, KeyRing, str, Path], tuple[Path, str | None]]


class DeliveryError(CustodyError):
    """A drop could not be delivered (the message names the destination, never a token)."""

    code = "delivery_failed"


# --- destinations ------------------------------------------------------------------------------


def _token_location(client: Client, destination_id: str) -> FieldLocation:
    return FieldLocation(client.id, "escrow", destination_id, "token", 1)


def _require_manager(ctx: Context, client: Client) -> None:
    """Admins, and the client's own contacts (within scope, checked by get_client)."""
    ctx.require("admin", "client")


def add_destination(
    ctx: Context,
    client_name: str,
    *,
    directory: str | None = None,
    url: str | None = None,
    token: str | None = None,
    method: str = "PUT",
    every_hours: int = 24,
    label: str | None = None,
) -> EscrowDestination:
    client = get_client(ctx, client_name)
    _require_manager(ctx, client)
    if (directory is None) == (url is None):
        raise InvalidInput("give exactly one of a directory and an https URL", field="target")
    if isinstance(every_hours, bool) or not MIN_EVERY_HOURS <= every_hours <= MAX_EVERY_HOURS:
        raise InvalidInput(
            f"the schedule must be {MIN_EVERY_HOURS} to {MAX_EVERY_HOURS} hours",
            field="every_hours",
        )
    label = optional_text(label, "label", max_length=200)
    row = EscrowDestination(
        client_id=client.id,
        every_hours=every_hours,
        label=label,
        created_by=ctx.actor,
        failures=0,
        next_attempt_at=utcnow(),
    )
    if directory is not None:
        # The directory is on the vault's host: only the consultancy's admins (or the local
        # operator) may point the server's file writes somewhere.
        ctx.require("admin")
        path = Path(directory)
        if not path.is_absolute():
            raise InvalidInput("the directory must be an absolute path", field="directory")
        row.kind, row.target, row.method = "directory", str(path), None
    else:
        assert url is not None
        row.kind, row.target = "https", check_url(url)
        row.method = method.upper()
        if row.method not in ("PUT", "POST"):
            raise InvalidInput("method must be PUT or POST", field="method")
    ctx.session.add(row)
    ctx.session.flush()
    if token:
        if row.kind != "https":
            raise InvalidInput("a bearer token is for https destinations", field="token")
        cipher = ctx.sealing_cipher(client)
        row.token_ct = cipher.seal_text(token, _token_location(client, row.id))
    audit.record(
        ctx,
        "escrow.destination.add",
        client_id=client.id,
        subject_kind="escrow_destination",
        subject_id=row.id,
        kind=row.kind,
        target=_display(row),
        every_hours=every_hours,
    )
    return row


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidInput("the endpoint must be an https:// URL", field="url")
    if parts.username or parts.password:
        raise InvalidInput("put credentials in the token, not in the URL", field="url")
    return parts.geturl()


def list_destinations(ctx: Context, client_name: str) -> list[EscrowDestination]:
    ctx.require("admin", "consultant", "client", "auditor")
    client = get_client(ctx, client_name)
    return list(
        ctx.session.scalars(
            select(EscrowDestination)
            .where(EscrowDestination.client_id == client.id)
            .order_by(EscrowDestination.created_at)
        )
    )


def remove_destination(ctx: Context, client_name: str, destination_id: str) -> None:
    client = get_client(ctx, client_name)
    _require_manager(ctx, client)
    row = ctx.session.get(EscrowDestination, destination_id)
    if row is None or row.client_id != client.id:
        raise NotFound("no such escrow destination", field="destination_id")
    if row.kind == "directory":
        ctx.require("admin")
    ctx.session.delete(row)
    audit.record(
        ctx,
        "escrow.destination.remove",
        client_id=client.id,
        subject_kind="escrow_destination",
        subject_id=row.id,
        target=_display(row),
    )


def is_overdue(row: EscrowDestination, now: datetime) -> bool:
    since = row.last_success_at or row.created_at
    return now - since > timedelta(hours=row.every_hours * OVERDUE_FACTOR)


def describe(row: EscrowDestination, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return {
        "id": row.id,
        "client_id": row.client_id,
        "kind": row.kind,
        "target": _display(row),
        "method": row.method,
        "has_token": row.token_ct is not None,
        "label": row.label,
        "every_hours": row.every_hours,
        "created_at": row.created_at,
        "last_success_at": row.last_success_at,
        "last_attempt_at": row.last_attempt_at,
        "last_error": row.last_error,
        "failures": row.failures,
        "next_attempt_at": row.next_attempt_at,
        "overdue": is_overdue(row, now),
    }


def _display(row: EscrowDestination) -> str:
    if row.kind == "https":
        parts = urlsplit(row.target)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query: it may hold secrets
    return row.target


# --- running drops -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DropResult:
    destination_id: str
    client_id: str
    target: str
    ok: bool
    error: str | None = None
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "destination_id": self.destination_id,
            "client_id": self.client_id,
            "target": self.target,
            "ok": self.ok,
            "error": self.error,
            "bytes": self.bytes,
        }


def run_due(
    store: Any,
    keys: KeyRing,
    *,
    client_id: str | None = None,
    force: bool = False,
    now: datetime | None = None,
    make_bundle: BundleMaker | None = None,
) -> list[DropResult]:
    """Deliver every due drop (all of ``client_id``'s with ``force``); then flag overdue ones.

    Returns one result per attempted destination. Never raises for a failed delivery: the
    failure is recorded on the destination and in the log, and retried later.
    """
    now = now or utcnow()
    make_bundle = make_bundle or _export_bundle
    with store.read_session() as session, session.begin():
        query = select(EscrowDestination.id, EscrowDestination.client_id)
        if client_id is not None:
            query = query.where(EscrowDestination.client_id == client_id)
        if not force:
            query = query.where(
                (EscrowDestination.next_attempt_at.is_(None))
                | (EscrowDestination.next_attempt_at <= now)
            )
        due: dict[str, list[str]] = {}
        for dest_id, owner in session.execute(query.order_by(EscrowDestination.created_at)):
            due.setdefault(owner, []).append(dest_id)
    results: list[DropResult] = []
    for owner, dest_ids in due.items():
        with tempfile.TemporaryDirectory(prefix="custody-drop-") as tmp:
            try:
                bundle, manifest = make_bundle(store, keys, owner, Path(tmp))
            except CustodyError as exc:
                for dest_id in dest_ids:
                    results.append(_record(store, keys, dest_id, None, now, error=str(exc)))
                continue
            for dest_id in dest_ids:
                results.append(_deliver_and_record(store, keys, dest_id, bundle, manifest, now))
    flag_overdue(store, keys, now=now)
    return results


def run_now(
    store: Any, keys: KeyRing, *, client: str | None = None, force: bool = False
) -> list[DropResult]:
    """`custody escrow run` on the vault's host (for cron, or by hand): complete the takeovers
    whose notice has run out, then deliver the due drops - of ``client`` only when named, and
    with ``force`` all of its destinations whether due or not - and flag the overdue ones."""
    from vault.services import takeover

    client_id = None
    with store.context(Principal.operator("operator:escrow"), keys) as ctx:
        takeover.complete_due(ctx)
        if client is not None:
            client_id = get_client(ctx, client).id
    return run_due(store, keys, client_id=client_id, force=force)


def _deliver_and_record(
    store: Any,
    keys: KeyRing,
    dest_id: str,
    bundle: Path,
    manifest: str | None,
    now: datetime,
) -> DropResult:
    with store.read_session() as session, session.begin():
        row = session.get(EscrowDestination, dest_id)
        if row is None:  # removed meanwhile
            return DropResult(dest_id, "", "", ok=False, error="destination removed")
        client = session.get(Client, row.client_id)
        assert client is not None
        token = None
        if row.token_ct is not None:
            token = keys.cipher(client).open_text(row.token_ct, _token_location(client, row.id))
        kind, target, method, slug = row.kind, row.target, row.method, _slug(client.name)
    try:
        if kind == "directory":
            size = deliver_to_directory(Path(target), bundle, manifest, slug, now)
        else:
            size = deliver_to_https(target, method or "PUT", token, bundle, manifest)
    except DeliveryError as exc:
        return _record(store, keys, dest_id, None, now, error=str(exc))
    return _record(store, keys, dest_id, size, now, error=None)


def _record(
    store: Any,
    keys: KeyRing,
    dest_id: str,
    size: int | None,
    now: datetime,
    *,
    error: str | None,
) -> DropResult:
    with store.context(RUNNER, keys) as ctx:
        row = ctx.session.get(EscrowDestination, dest_id)
        if row is None:
            return DropResult(dest_id, "", "", ok=False, error="destination removed")
        row.last_attempt_at = now
        if error is None:
            row.last_success_at = now
            row.last_error = None
            row.failures = 0
            row.next_attempt_at = now + timedelta(hours=row.every_hours)
            row.overdue_since = None
        else:
            row.failures += 1
            row.last_error = error[:500]
            delay = min(FIRST_RETRY * 2 ** (row.failures - 1), MAX_RETRY)
            row.next_attempt_at = now + delay
        audit.record(
            ctx,
            "escrow.drop",
            outcome="ok" if error is None else "failed",
            client_id=row.client_id,
            subject_kind="escrow_destination",
            subject_id=row.id,
            target=_display(row),
            bytes=size or 0,
            error=error[:200] if error else None,
        )
        return DropResult(
            dest_id, row.client_id, _display(row), ok=error is None, error=error, bytes=size or 0
        )


def flag_overdue(store: Any, keys: KeyRing | None, *, now: datetime | None = None) -> int:
    """Mark destinations that became overdue (once each): log event and admin notice."""
    now = now or utcnow()
    flagged = 0
    with store.context(RUNNER, keys) as ctx:
        for row in ctx.session.scalars(
            select(EscrowDestination).where(EscrowDestination.overdue_since.is_(None))
        ):
            if not is_overdue(row, now):
                continue
            row.overdue_since = now
            flagged += 1
            client = ctx.session.get(Client, row.client_id)
            name = client.name if client else row.client_id
            audit.record(
                ctx,
                "escrow.overdue",
                outcome="alert",
                client_id=row.client_id,
                subject_kind="escrow_destination",
                subject_id=row.id,
                target=_display(row),
                last_success=row.last_success_at.isoformat() if row.last_success_at else None,
            )
            ctx.session.add(
                Notice(
                    client_id=row.client_id,
                    kind="escrow-overdue",
                    message=(
                        f"The escrow drop of {name} to {_display(row)} is overdue "
                        f"(last success: {row.last_success_at or 'never'}; "
                        f"last error: {row.last_error or 'none'})"
                    ),
                )
            )
    return flagged


# --- delivery ----------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60] or "client"


def deliver_to_directory(
    directory: Path, bundle: Path, manifest: str | None, slug: str, now: datetime
) -> int:
    """Copy the bundle (and its manifest) in under a dated name, atomically, mode 0600."""
    if not directory.is_dir():
        raise DeliveryError(f"{directory} is not a directory (is the share mounted?)")
    stem = f"custody-{slug}-{now:%Y%m%dT%H%M%SZ}"
    try:
        size = _atomic_copy(bundle, directory / f"{stem}.age")
        if manifest is not None:
            _atomic_copy(manifest.encode("utf-8"), directory / f"{stem}.manifest")
    except OSError as exc:
        raise DeliveryError(f"cannot write to {directory}: {exc.strerror}") from None
    return size


def _atomic_copy(data: bytes | Path, target: Path) -> int:
    """Write ``data`` (bytes, or a file copied in pieces) to ``target`` via a temporary file."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".custody-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, Path):
                with data.open("rb") as src:
                    shutil.copyfileobj(src, out, COPY_CHUNK)
            else:
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target.stat().st_size


def _check_host(host: str, port: int) -> None:
    if os.environ.get(ALLOW_PRIVATE_ENV) == "1":
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise DeliveryError(f"cannot resolve {host}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise DeliveryError(
                f"{host} resolves to a non-public address ({address}); set "
                f"{ALLOW_PRIVATE_ENV}=1 to allow private destinations"
            )


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    extra = os.environ.get(CA_FILE_ENV)
    if extra:
        context.load_verify_locations(cafile=extra)
    return context


def deliver_to_https(
    url: str, method: str, token: str | None, bundle: Path, manifest: str | None
) -> int:
    import httpx

    parts = urlsplit(url)
    _check_host(parts.hostname or "", parts.port or 443)
    headers = {"Content-Type": "application/octet-stream", "User-Agent": "custody-escrow"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if manifest is not None:
        headers["X-Custody-Manifest"] = base64.b64encode(manifest.encode("utf-8")).decode("ascii")
    size = bundle.stat().st_size
    try:
        with (
            bundle.open("rb") as body,
            httpx.Client(
                verify=_tls_context(), timeout=HTTP_TIMEOUT, follow_redirects=False
            ) as http,
        ):
            response = http.request(method, url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{parts.hostname}: {type(exc).__name__}: {_reason(exc)}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"{parts.hostname} answered HTTP {response.status_code}")
    return size


def _reason(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text.splitlines()[0][:200]


# --- the bundle --------------------------------------------------------------------------------


def _export_bundle(
    store: Any, keys: KeyRing, client_id: str, directory: Path
) -> tuple[Path, str | None]:
    """The client's age bundle (vault.services.export) and its signed manifest, written into
    ``directory`` (a private temporary directory of the run)."""
    from vault.services import export

    path = directory / "bundle.age"
    with path.open("wb") as out:
        result = export.export_client(store, keys, RUNNER, client_id, out)
    return path, result.manifest_text
