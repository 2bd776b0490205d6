"""Imports: a file from another tool (Bitwarden JSON, KeePass KDBX/XML, CSV) into a client.

Two request bodies (admins only; the role is checked before the body is read):

- ``multipart/form-data``: ``file`` (the export), ``source`` (bitwarden | keepass | csv),
  ``dry_run`` (true/false), and as needed ``passphrase`` (KDBX), ``keyfile`` (KDBX key file),
  ``preset`` or ``map`` (CSV);
- ``application/json``: ``{"source": ..., "content": "<the file as text>"`` or
  ``"content_base64": "..."``, ``"dry_run": false, "passphrase": ..., "keyfile_base64": ...,
  "preset": ..., "map": {"Column": "field"}}``.

A pass store is not accepted here: it is decrypted with the operator's own gpg, so it is
imported with the CLI on the vault host.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, SecretStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import CallerDep
from vault.errors import InvalidInput
from vault.formats.readers import read_source
from vault.services import imports
from vault.services.clients import get_client

router = APIRouter(prefix="/clients/{client}/imports", tags=["imports"])
API_SOURCES = ("bitwarden", "keepass", "csv")


class ImportJson(BaseModel):
    source: str = Field(max_length=32)
    content: str | None = None
    content_base64: str | None = None
    dry_run: bool = False
    passphrase: SecretStr | None = Field(default=None, max_length=1000)
    keyfile_base64: str | None = None
    preset: str | None = Field(default=None, max_length=64)
    map: dict[str, str] | None = None


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["file", "source"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "source": {"type": "string", "enum": list(API_SOURCES)},
        "dry_run": {"type": "boolean"},
        "passphrase": {"type": "string"},
        "keyfile": {"type": "string", "format": "binary"},
        "preset": {"type": "string"},
        "map": {"type": "string", "format": "binary"},
    },
}


def _b64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{name} is not base64", field=name) from None


async def _read_body(request: Request, folder: Path) -> dict[str, Any]:
    """The request's fields, with the files saved into ``folder``."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    out: dict[str, Any] = {"path": None, "keyfile": None, "mapping": None}
    if kind == "application/json":
        try:
            body = ImportJson.model_validate_json(await request.body())
        except ValidationError as exc:
            # pydantic's errors echo the input: keep only where and what, never the value
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            message = errors[0]["msg"] if errors else "invalid"
            raise InvalidInput(f"{where or 'body'}: {message}", field=where or None) from None
        if body.content is not None:
            data = body.content.encode("utf-8")
        elif body.content_base64 is not None:
            data = _b64(body.content_base64, "content_base64")
        else:
            raise InvalidInput("give the file as content or content_base64", field="content")
        out["path"] = folder / "upload"
        out["path"].write_bytes(data)
        if body.keyfile_base64 is not None:
            out["keyfile"] = folder / "keyfile"
            out["keyfile"].write_bytes(_b64(body.keyfile_base64, "keyfile_base64"))
        if body.map is not None:
            out["mapping"] = folder / "map.json"
            out["mapping"].write_text(json.dumps(body.map))
        out.update(
            source=body.source,
            dry_run=body.dry_run,
            passphrase=body.passphrase.get_secret_value() if body.passphrase else None,
            preset=body.preset,
        )
        return out
    if kind != "multipart/form-data":
        raise InvalidInput("send multipart/form-data or application/json", field="content-type")
    form = await request.form()
    for field, name in (("file", "path"), ("keyfile", "keyfile"), ("map", "mapping")):
        upload = form.get(field)
        if isinstance(upload, UploadFile):
            path = folder / name
            with path.open("wb") as fh:
                while chunk := await upload.read(1 << 20):
                    fh.write(chunk)
            out[name] = path

    def text(name: str) -> str | None:
        value = form.get(name)
        return value if isinstance(value, str) and value else None

    out.update(
        source=text("source"),
        dry_run=(text("dry_run") or "false").lower() in ("true", "1", "yes", "on"),
        passphrase=text("passphrase"),
        preset=text("preset"),
    )
    return out


@router.post(
    "",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
                "application/json": {"schema": ImportJson.model_json_schema()},
            },
        }
    },
)
async def import_file(client: str, caller: CallerDep, request: Request) -> dict[str, Any]:
    """Plan (``dry_run``) or run an import; answers the plan with counts, per-entry actions and
    reasons - never a value."""

    def authorize() -> str:
        with caller.transaction() as ctx:  # who may import is decided before the body is read
            ctx.require("admin")
            return str(get_client(ctx, client).id)

    client_id = await run_in_threadpool(authorize)
    with tempfile.TemporaryDirectory(prefix="custody-import-") as tmp:
        body = await _read_body(request, Path(tmp))
        if body["source"] not in API_SOURCES:
            raise InvalidInput(f"source must be one of: {', '.join(API_SOURCES)}", field="source")
        if body["path"] is None:
            raise InvalidInput("no file: send the export as `file`", field="file")
        items, records = await run_in_threadpool(
            read_source,
            body["source"],
            body["path"],
            passphrase=body["passphrase"],
            keyfile=body["keyfile"],
            mapping=body["mapping"],
            preset=body["preset"],
        )

    def work() -> dict[str, Any]:
        if body["dry_run"]:
            with caller.transaction() as ctx:
                return imports.plan_import(ctx, client_id, items, records).as_dict()
        result = imports.run_import(
            caller.transaction, client_id, items, records, source=body["source"]
        )
        return result.as_dict()

    return await run_in_threadpool(work)
