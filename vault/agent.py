"""The local vault agent: the unsealed vault, kept in one process, for the CLI on this host.

Like ssh-agent or gpg-agent, ``custody start`` unseals once and then answers requests over a
Unix socket at ``$CUSTODY_HOME/custody.sock``. Access control is the operating system's: the
socket lives in a 0700 directory, is itself 0600, and every connection's peer credentials
(SO_PEERCRED) must belong to the agent's own user. A ``custody secret get`` then costs one
Python start-up and a round trip - no Argon2id, no SQLAlchemy import - which is what lets the
CLI feel as instant as ``pass show``.

Wire format: one request per connection; the client sends one JSON object and a newline
(``{"op": "...", "args": {...}}``), the agent answers with one JSON object and a newline:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code", "message", "field"}}``.

This module imports only the standard library at the top, so the client half stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from typing import Any

SOCKET_NAME = "custody.sock"
MAX_MESSAGE = 1024 * 1024
TIMEOUT_SECONDS = 30.0


class AgentUnavailable(Exception):
    """No agent answers at the socket (not running, stale socket, or not ours)."""


def socket_path(home: str | os.PathLike[str] | None = None) -> str:
    # os.path, not pathlib: importing pathlib alone costs the fast path ~10 ms.
    base = home if home is not None else (os.environ.get("CUSTODY_HOME") or "custody-data")
    return os.path.join(os.fspath(base), SOCKET_NAME)


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_MESSAGE:
            raise ValueError("message too large")
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def call(
    path: str, op: str, args: dict[str, Any] | None = None, *, timeout: float = TIMEOUT_SECONDS
) -> Any:
    """Send one request; return its result, or raise the agent's error as a CustodyError."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(path))
    except OSError as exc:
        raise AgentUnavailable(str(exc.strerror or exc)) from None
    with sock:
        # A refusing agent may answer before reading all of the request: read the answer.
        with contextlib.suppress(BrokenPipeError):
            sock.sendall(json.dumps({"op": op, "args": args or {}}).encode("utf-8") + b"\n")
        raw = _read_line(sock)
    if not raw:
        raise AgentUnavailable("the agent closed the connection")
    reply = json.loads(raw)
    if reply.get("ok"):
        return reply.get("result")
    from vault.errors import error_class

    error = reply.get("error") or {}
    cls = error_class(str(error.get("code")))
    raise cls(str(error.get("message", "the agent refused the request")), field=error.get("field"))


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)
