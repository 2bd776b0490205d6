"""Portal fixtures: the API suite's cast of people, and a browser-like client per person."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api.ui import web
from tests.api.conftest import Cast, api, cast, state  # noqa: F401 - fixtures reused

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def portal(cast: Cast) -> Callable[[str], TestClient]:  # noqa: F811
    """``portal("client_a")``: a client holding a fresh session cookie of that person."""

    def make(username: str, *, https: bool = False) -> TestClient:
        token = cast.token(username)
        base = "https://testserver" if https else "http://testserver"
        client = TestClient(
            cast.api.app, base_url=base, raise_server_exceptions=False, follow_redirects=False
        )
        client.cookies.set(web.SESSION_COOKIE, token, domain="testserver.local", path="/ui")
        client.headers["x-test-csrf"] = web._derive(token)
        return client

    return make
