"""Where `custody audit` reads the transparency log: a server (``GET /log/...``) or the local store.

Both give the same shapes (those of :mod:`vault.services.logviews`), so each command is written
once. Locally, a fresh checkpoint is signed when the log has grown since the latest one; that
needs the unsealed log key, so the vault is unsealed then (prompt, CUSTODY_UNSEAL_FILE or
CUSTODY_UNSEAL_PASSPHRASE) - and only then.

Nothing here decides whether the log is honest: the commands check what a source says against
the key they pinned (:mod:`cli.logwatch`, :mod:`vault.log.verify`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    from vault.keys import KeyRing
    from vault.services import Context
    from vault.store import Store

Progress = Callable[[int, int | None], None]


class LogSource(Protocol):
    """What the audit commands need from a log; ``filters`` as in ``GET /log/entries``."""

    where: str

    def key(self) -> dict[str, Any]: ...

    def checkpoint(self, size: int | None = None) -> str: ...

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]: ...

    def consistency(self, old: int, new: int) -> dict[str, Any]: ...

    def entries(
        self, filters: dict[str, Any], *, after: int | None, limit: int, proofs: bool = False
    ) -> dict[str, Any]: ...

    def export(
        self, out: BinaryIO, fmt: str, filters: dict[str, Any], progress: Progress
    ) -> None: ...


def hashes(proof: dict[str, Any]) -> list[bytes]:
    """The proof hashes of an answer, decoded (a malformed answer is a CustodyError)."""
    from vault.errors import CustodyError

    raw = proof.get("hashes")
    if not isinstance(raw, list):
        raise CustodyError("the proof answer has no list of hashes")
    try:
        return [base64.b64decode(h, validate=True) for h in raw]
    except (binascii.Error, ValueError, TypeError):
        raise CustodyError("the proof answer holds a hash that is not base64") from None


class RemoteLog:
    """The log of a Custody server, read with the saved sign-in."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.where = server.server

    def key(self) -> dict[str, Any]:
        found: dict[str, Any] = self.server.call("GET", "/log/key")
        return found

    def checkpoint(self, size: int | None = None) -> str:
        text: str = self.server.text("/log/checkpoint", params={"size": size})
        return text

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        found: dict[str, Any] = self.server.call(
            "GET", "/log/proof/inclusion", params={"index": index, "size": size}
        )
        return found

    def consistency(self, old: int, new: int) -> dict[str, Any]:
        found: dict[str, Any] = self.server.call(
            "GET", "/log/proof/consistency", params={"old": old, "new": new}
        )
        return found

    def entries(
        self, filters: dict[str, Any], *, after: int | None, limit: int, proofs: bool = False
    ) -> dict[str, Any]:
        params = {**_query(filters), "after": after, "limit": limit}
        if proofs:
            params["proofs"] = "true"
        found: dict[str, Any] = self.server.call("GET", "/log/entries", params=params)
        return found

    def export(self, out: BinaryIO, fmt: str, filters: dict[str, Any], progress: Progress) -> None:
        self.server.download(
            "/log/export", out, params={**_query(filters), "format": fmt}, progress=progress
        )


def _query(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()}


class LocalLog:
    """The log of the local store, read as the operator (who sees all of it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.where = "the local store"
        self._keys: KeyRing | None = None

    @contextmanager
    def _context(self, *, signing: bool = False) -> Iterator[Context]:
        from cli.common import operator_actor

        keys = self._signing_keys() if signing else None
        # Read-only, outside the write lock: a long export leaves a running server's writers
        # alone; a checkpoint it signs is stored right after (Context.write_after).
        with self.store.read_context(operator_actor(), keys) as ctx:
            yield ctx

    def _signing_keys(self) -> KeyRing | None:
        """The unsealed keys if a fresh checkpoint must be signed (the log grew), else None.

        With the vault running, its agent signs and stores that checkpoint instead (no
        passphrase asked here), and the reads are cut at it: None."""
        if self._keys is not None:
            return self._keys
        from vault.services import auditlog

        with self.store.read_session() as session, session.begin():
            size = auditlog.head(session).size
            latest = auditlog.latest_checkpoint(session)
            grown = latest is None or latest.size < size
        if grown:
            from cli.common import running_agent, unseal

            agent = running_agent()
            if agent is not None:
                from vault.agent import call

                call(agent, "log.sign")
                return None
            self._keys = unseal(self.store)
        return self._keys

    def key(self) -> dict[str, Any]:
        from vault.services import logviews

        with self._context() as ctx:
            return logviews.key_info(ctx)

    def checkpoint(self, size: int | None = None) -> str:
        from vault.services import logviews

        with self._context(signing=size is None) as ctx:
            return logviews.checkpoint(ctx, size).note

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        from vault.services import logviews

        with self._context(signing=size is None) as ctx:
            return logviews.inclusion(ctx, index, size)

    def consistency(self, old: int, new: int) -> dict[str, Any]:
        from vault.services import logviews

        with self._context() as ctx:
            return logviews.consistency(ctx, old, new)

    def entries(
        self, filters: dict[str, Any], *, after: int | None, limit: int, proofs: bool = False
    ) -> dict[str, Any]:
        from vault.services import logviews

        with self._context(signing=proofs) as ctx:
            chosen = logviews.event_filter(ctx, **filters)
            return logviews.entries(ctx, chosen, after=after, limit=limit, proofs=proofs)

    def export(self, out: BinaryIO, fmt: str, filters: dict[str, Any], progress: Progress) -> None:
        from vault.services import auditlog, logviews

        with self._context(signing=fmt == "jsonl") as ctx:
            chosen = logviews.event_filter(ctx, **filters)
            if fmt == "csv":
                auditlog.export_csv(ctx, out, chosen)
                return
            total = auditlog.head(ctx.session).size
            done = 0

            def step(count: int) -> None:
                nonlocal done
                done += count
                progress(done, total)

            auditlog.export_jsonl(ctx, out, chosen, progress=step)


def open_source(store: Store | None) -> LogSource:
    """The server chosen with --server (``store`` is then None), else the local store."""
    if store is None:
        from cli.common import remote

        return RemoteLog(remote())
    return LocalLog(store)
