"""File downloads built inside a request: written whole first, then streamed.

The log export, the client export and the portal's downloads all write their file while the
transactions they need are open (so the content is one consistent view), and must not keep a
transaction - on SQLite, a lock - open while a slow client reads the answer. So the file goes
to a spooled temporary file (in memory up to :data:`SPOOL_BYTES`, then on disk) and is sent
from there once every transaction has ended.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

from fastapi.responses import StreamingResponse

SPOOL_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


def spooled_download(
    write: Callable[[BinaryIO], dict[str, str]], media_type: str
) -> StreamingResponse:
    """Run ``write(spool)``, which fills the spool and returns the response headers to send
    (a ``content-disposition`` at least), then stream the spool with its length. If ``write``
    fails, the spool is closed and the error goes on to the error table."""
    spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
    try:
        headers = write(spool)
        length = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(
        _chunks(spool), media_type=media_type, headers={"content-length": str(length), **headers}
    )


def _chunks(spool: BinaryIO) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk
