"""Imports: a file from another tool (Bitwarden JSON, KeePass KDBX/XML, CSV) into a client.

Multipart form: ``file`` (the export), ``source`` (bitwarden | keepass | csv), ``dry_run``
(true/false), and as needed ``passphrase`` (KDBX), ``keyfile`` (KDBX key file), ``preset`` or
``map`` (CSV). A pass store is not accepted here: it is decrypted with the operator's own gpg,
so it is imported with the CLI on the vault host. Admins only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from api.deps import CallerDep
from vault.errors import InvalidInput
from vault.formats.readers import read_source
from vault.services import imports
from vault.services.clients import get_client

router = APIRouter(prefix="/clients/{client}/imports", tags=["imports"])
API_SOURCES = ("bitwarden", "keepass", "csv")


def _save(upload: UploadFile, folder: Path, name: str) -> Path:
    path = folder / name
    with path.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            out.write(chunk)
    return path


@router.post("")
def import_file(
    client: str,
    caller: CallerDep,
    file: Annotated[UploadFile | None, File(description="The export to import")] = None,
    source: Annotated[str | None, Form(description="bitwarden, keepass or csv")] = None,
    dry_run: Annotated[bool, Form()] = False,
    passphrase: Annotated[str | None, Form(max_length=1000)] = None,
    preset: Annotated[str | None, Form(max_length=64)] = None,
    keyfile: Annotated[UploadFile | None, File()] = None,
    map: Annotated[UploadFile | None, File()] = None,  # noqa: A002 - the form field's name
) -> dict[str, Any]:
    """Plan (``dry_run``) or run an import; answers the plan with counts, per-entry actions and
    reasons - never a value."""
    with caller.transaction() as ctx:  # who may import is decided before the upload is read
        ctx.require("admin")
        client_id = get_client(ctx, client).id
    if source not in API_SOURCES:
        raise InvalidInput(f"source must be one of: {', '.join(API_SOURCES)}", field="source")
    if file is None:
        raise InvalidInput("no file: send the export as the multipart field `file`", field="file")
    with tempfile.TemporaryDirectory(prefix="custody-import-") as tmp:
        folder = Path(tmp)
        path = _save(file, folder, "upload")
        key = _save(keyfile, folder, "keyfile") if keyfile is not None else None
        mapping = _save(map, folder, "map") if map is not None else None
        items, records = read_source(
            source, path, passphrase=passphrase, keyfile=key, mapping=mapping, preset=preset
        )
    if dry_run:
        with caller.transaction() as ctx:
            return imports.plan_import(ctx, client_id, items, records).as_dict()
    result = imports.run_import(caller.transaction, client_id, items, records, source=source)
    return result.as_dict()
