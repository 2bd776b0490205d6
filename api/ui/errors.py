"""How a failure looks in the portal: a friendly page (or a redirect to sign in), never a stack
trace, never a submitted value. The status comes from the API's one table (api/errors.py)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from api.ui import web

PREFIX = "/ui"
TITLES = {
    400: "That did not work",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    410: "This link is no longer valid",
    413: "Too large",
    422: "Please check the form",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "The vault is sealed",
}


def is_portal(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def page(request: Request, status: int, message: str, *, field: str | None = None) -> Response:
    if status == 401 and request.method == "GET":
        return web.redirect("/ui/login")
    if status == 403 and field == "totp" and request.method == "GET":
        return web.redirect("/ui/totp")
    response = web.render(
        request,
        "error.html",
        status=status,
        title=TITLES.get(status, "That did not work"),
        message=message,
        signed_in=web.session_token(request) is not None,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Cookie realm="custody"'
    return response
