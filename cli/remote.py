"""The CLI against a server: saved sign-in sessions and one small HTTP client.

Sessions live in the user's config directory (``sessions.json``, mode 0600, directory 0700),
one per server URL. Only the bearer token is kept - never a password or a TOTP seed.
Server errors come back as the same typed Custody errors the library raises locally, so the CLI
prints one line and exits 2 either way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from vault.errors import CustodyError, Unauthenticated, error_class

SESSIONS_FILE = "sessions.json"
TIMEOUT_SECONDS = 30.0


def config_dir() -> Path:
    override = os.environ.get("CUSTODY_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("custody"))


def _load() -> dict[str, Any]:
    path = config_dir() / SESSIONS_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return {}


def _save(data: dict[str, Any]) -> None:
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    path = directory / SESSIONS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)  # atomic: a crash never leaves half a file


def normalize(url: str) -> str:
    return url.rstrip("/")


def save_session(server: str, username: str, token: str, expires_at: str) -> None:
    data = _load()
    data[normalize(server)] = {"username": username, "token": token, "expires_at": expires_at}
    _save(data)


def forget_session(server: str) -> None:
    data = _load()
    if data.pop(normalize(server), None) is not None:
        _save(data)


def saved_token(server: str) -> str | None:
    entry = _load().get(normalize(server))
    return entry.get("token") if isinstance(entry, dict) else None


class Remote:
    """A Custody server, spoken to with the saved token for it (if any)."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = normalize(server)
        self.token = token if token is not None else saved_token(self.server)

    def __repr__(self) -> str:
        return f"Remote({self.server!r}, <token hidden>)"

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        """One request; the JSON answer (None for 204), or the server's error raised here."""
        import httpx

        try:
            response = httpx.request(
                method,
                self.server + path,
                json=json_body,
                params=_params(params),
                headers=self._headers(auth),
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            raise CustodyError(f"cannot reach {self.server}: {type(exc).__name__}") from None
        if response.status_code == 204:
            return None
        _raise_for(response)
        try:
            return response.json()
        except ValueError:
            return None

    def text(self, path: str, *, params: dict[str, Any] | None = None) -> str:
        """A GET whose answer is text (a signed note, say)."""
        import httpx

        try:
            response = httpx.get(
                self.server + path,
                params=_params(params),
                headers=self._headers(True),
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            raise CustodyError(f"cannot reach {self.server}: {type(exc).__name__}") from None
        _raise_for(response)
        return response.text

    def download(
        self,
        path: str,
        out: BinaryIO,
        *,
        params: dict[str, Any] | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """Stream a GET's body into ``out``; returns the bytes written. ``progress`` is told
        (bytes so far, total bytes if the server said)."""
        written, _ = self.stream("GET", path, out, params=params, progress=progress)
        return written

    def stream(
        self,
        method: str,
        path: str,
        out: BinaryIO,
        *,
        params: dict[str, Any] | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> tuple[int, dict[str, str]]:
        """Stream the body of a request's answer into ``out``: (bytes written, the answer's
        headers, names in lower case)."""
        import httpx

        written = 0
        try:
            with httpx.stream(
                method,
                self.server + path,
                params=_params(params),
                headers=self._headers(True),
                timeout=TIMEOUT_SECONDS,
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                headers = {k.lower(): v for k, v in response.headers.items()}
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(written, total)
        except httpx.HTTPError as exc:
            raise CustodyError(f"cannot reach {self.server}: {type(exc).__name__}") from None
        return written, headers

    def upload(
        self, path: str, *, files: dict[str, tuple[str, bytes]], form: dict[str, str]
    ) -> Any:
        """A multipart POST (files and form fields); the JSON answer."""
        import httpx

        try:
            response = httpx.post(
                self.server + path,
                files=files,
                data=form,
                headers=self._headers(True),
                timeout=TIMEOUT_SECONDS * 10,
            )
        except httpx.HTTPError as exc:
            raise CustodyError(f"cannot reach {self.server}: {type(exc).__name__}") from None
        _raise_for(response)
        return response.json()

    def _headers(self, auth: bool) -> dict[str, str]:
        if not auth:
            return {}
        if not self.token:
            raise Unauthenticated(f"not signed in to {self.server}: run `custody login`")
        return {"Authorization": f"Bearer {self.token}"}

    def client_id(self, name: str) -> str:
        """The id of the client called ``name`` (the API addresses clients by id)."""
        return str(self.call("GET", "/clients", params={"name": name})[0]["id"])


def _params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def _raise_for(response: Any) -> None:
    """Raise the server's error as the same typed Custody error (the root if unknown)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise CustodyError(f"the server answered {response.status_code}")
    raise error_class(str(error.get("code")))(str(error.get("message")), field=error.get("field"))
