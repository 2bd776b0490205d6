"""A client's export: the age bundle of all its records, with the signed manifest in a header.

For an admin or the client's own contacts; consultants and auditors are refused, and another
client's is "not found". The bundle is encrypted to the client's escrow recipients only, so the
server hands out a file it cannot open itself. It is written to a spooled temporary file (in
memory up to :data:`api.downloads.SPOOL_BYTES`, then on disk) while no write lock is held, the
``client.export`` event is committed, and only then is the file streamed back.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import BinaryIO

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import Caller, CallerDep
from api.downloads import spooled_download
from vault.services import export

router = APIRouter(prefix="/clients/{client}", tags=["export"])

#: the response header that carries the manifest (base64 of the signed note)
MANIFEST_HEADER = "Custody-Export-Manifest"


@router.post(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def export_bundle(client: str, caller: CallerDep, history: bool = False) -> StreamingResponse:
    """The client's age bundle (docs/export-format.md); ``history=true`` adds every earlier
    version of each secret. The signed manifest is in the ``Custody-Export-Manifest`` header
    (base64); `custody takeover verify` checks both offline."""

    def write(spool: BinaryIO) -> dict[str, str]:
        plan, result = write_bundle(caller, client, spool, history=history)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", plan.client_name).strip("-").lower()[:60] or "client"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        manifest = base64.b64encode(result.manifest_text.encode("utf-8")).decode("ascii")
        return {
            "content-disposition": f'attachment; filename="custody-{slug}-{stamp}.age"',
            MANIFEST_HEADER: manifest,
        }

    return spooled_download(write, "application/octet-stream")


def write_bundle(
    caller: Caller, client: str, out: BinaryIO, *, history: bool = False
) -> tuple[export.ExportPlan, export.ExportResult]:
    """The export's three steps as the caller (API or portal): authorise in a transaction,
    write the bundle from a read-only snapshot with no write lock held, then commit the
    ``client.export`` event - all before the first byte is sent."""
    keys = caller.state.keys
    assert keys is not None  # the seal guard answers 503 while sealed
    with caller.transaction() as ctx:
        plan = export.prepare(ctx, client)
    with caller.state.store.read_session() as session, session.begin():
        result = export.write(session, keys, plan, out, history=history)
    with caller.transaction() as ctx:
        export.record(ctx, plan, result)
    return plan, result
