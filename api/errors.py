"""The one table from Custody's error classes to HTTP status codes, and the handlers that use it.

Every error body has the same shape and never carries a submitted value:
``{"error": {"code": "...", "message": "...", "field": "..."}}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from vault import errors
from vault.log import errors as log_errors
from vault.log.events import EventEncodingError
from vault.log.verify import LogVerificationError

# Most specific first: the first class an error is an instance of decides its status.
STATUS: list[tuple[type[errors.CustodyError], int]] = [
    (errors.Unauthenticated, 401),
    (errors.UnsealError, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Gone, 410),
    (errors.TooManyAttempts, 429),
    (errors.SchemaError, 503),
    (errors.StorageError, 503),
    (errors.Sealed, 503),
    (errors.NotInitialized, 503),
    (errors.DecryptionError, 500),
    (errors.InvalidInput, 422),
    (errors.AgeError, 422),
    (errors.VerificationFailed, 422),
    # The transparency log: a proof asked for impossible sizes, or a note, event or export
    # handed to the server does not check out - the request's fault.
    (log_errors.ProofError, 422),
    (log_errors.NoteError, 422),  # SignatureError (bad_signature) is one of these
    (EventEncodingError, 422),
    (LogVerificationError, 422),
    # Any other log error means the server's own log is broken (its head is inconsistent, or
    # it is smaller than its latest checkpoint): not something the caller can fix.
    (log_errors.LogError, 500),
    (errors.CustodyError, 400),
]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {...}}`` (a 422 adds one ``details`` entry per field)."""

    error: ErrorDetail


class FieldProblem(BaseModel):
    field: str
    message: str
    type: str


class ValidationErrorBody(ErrorBody):
    details: list[FieldProblem] = []


#: The refusals any route may answer with, documented in the OpenAPI schema of every route
#: (the table above decides which; 413, 429 and 503 come from the middleware too).
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Refused: the request cannot be carried out"},
    401: {"model": ErrorBody, "description": "Not signed in, or the token is not valid"},
    403: {"model": ErrorBody, "description": "Signed in, but not allowed to do this"},
    404: {"model": ErrorBody, "description": "No such object (or not one you may see)"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ValidationErrorBody, "description": "Invalid input"},
    429: {"model": ErrorBody, "description": "Too many attempts or requests: retry later"},
    503: {"model": ErrorBody, "description": "The vault is sealed or not ready"},
}


def status_for(exc: errors.CustodyError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def install(app: FastAPI) -> None:
    # Under /ui the same status renders as a page (api/ui/errors.py) instead of a JSON body.
    from api.ui import errors as ui_errors
    from api.ui.web import UnsafeForm

    @app.exception_handler(UnsafeForm)
    async def unsafe_form(request: Request, _exc: UnsafeForm) -> Response:
        message = "the form expired or did not come from this site: reload the page and retry"
        if ui_errors.is_portal(request):
            return ui_errors.page(request, 403, message)
        return JSONResponse(error_body("csrf", message), status_code=403)

    @app.exception_handler(errors.CustodyError)
    async def custody_error(request: Request, exc: errors.CustodyError) -> Response:
        status = status_for(exc)
        if ui_errors.is_portal(request):
            return ui_errors.page(request, status, exc.message, field=exc.field)
        headers = None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(exc, errors.StorageError):
            # Nothing was kept and the next try will most likely go through (a deadlock the
            # database broke, a commit that failed): say when, as HTTP clients understand it.
            headers = {"Retry-After": "1"}
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field), status_code=status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # pydantic's errors echo the submitted input: keep only where and what, never the value.
        details = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "message": e.get("msg", "invalid"),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": None, "message": "invalid request"}
        if ui_errors.is_portal(request):
            return ui_errors.page(request, 422, f"{first['field']}: {first['message']}")
        return JSONResponse(
            {
                **error_body(
                    "invalid_input", f"{first['field']}: {first['message']}", first["field"] or None
                ),
                "details": details,
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if ui_errors.is_portal(request):
            return ui_errors.page(request, exc.status_code, str(exc.detail))
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 503: "sealed"}.get(
            exc.status_code, "error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # No trace, no message text (it could hold anything): the type goes to the server log.
        import logging

        logging.getLogger("custody.api").error("unexpected %s", type(exc).__name__, exc_info=exc)
        if ui_errors.is_portal(request):
            return ui_errors.page(request, 500, "internal error: the details are in the server log")
        return JSONResponse(error_body("internal", "internal error"), status_code=500)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with the error body straight from ASGI middleware (outside the routes)."""
    import json

    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
