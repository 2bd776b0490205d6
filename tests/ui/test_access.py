"""Who may open each portal page: the cookie-based twin of tests/api/test_authorization.py.

Every /ui route must be classified here (the API matrix test checks that). GET pages are called
as each person of the cast, holding a session cookie; the POST routes are checked in
test_portal.py (CSRF first, then the same service rules). A page about client A answers 404 to
someone outside A's scope whose role could otherwise use it: other clients do not visibly exist.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Cast
from vault.services import requests

ACTORS = ["anonymous", "admin", "cons_a", "cons_none", "client_a", "client_b", "auditor"]
PUBLIC = set(ACTORS)
SIGNED_IN = PUBLIC - {"anonymous"}
CONSULTANTS = {"admin", "cons_a", "cons_none"}
READERS = {"admin", "cons_a", "client_a"}
UI_ACCESS: dict[tuple[str, str], set[str]] = {
    ("GET", "/ui/static/{name}"): PUBLIC,
    ("GET", "/ui/login"): PUBLIC,
    ("POST", "/ui/login"): PUBLIC,
    ("GET", "/ui/"): SIGNED_IN,
    ("POST", "/ui/logout"): SIGNED_IN,
    ("GET", "/ui/totp"): SIGNED_IN,
    ("POST", "/ui/totp"): SIGNED_IN,
    ("GET", "/ui/clients"): {"admin", "cons_a", "cons_none", "client_a", "client_b"},
    ("GET", "/ui/clients/{client}"): {"admin", "cons_a", "client_a", "auditor"},
    ("GET", "/ui/clients/{client}/inventory"): READERS,
    ("GET", "/ui/clients/{client}/log"): {"admin", "auditor", "client_a"},
    ("GET", "/ui/clients/{client}/escrow"): {"admin", "cons_a", "client_a", "auditor"},
    ("POST", "/ui/clients/{client}/recipients"): {"admin", "client_a"},
    ("POST", "/ui/clients/{client}/recipients/{recipient}/remove"): {"admin", "client_a"},
    ("POST", "/ui/clients/{client}/export"): {"admin", "client_a"},
    ("GET", "/ui/clients/{client}/takeover"): {"admin", "cons_a", "client_a", "auditor"},
    ("POST", "/ui/clients/{client}/takeover"): {"admin", "client_a"},
    ("POST", "/ui/clients/{client}/takeover/cancel"): {"client_a"},
    ("GET", "/ui/log"): {"admin", "auditor", "client_a", "client_b"},
    ("GET", "/ui/log/download"): {"admin", "auditor", "client_a", "client_b"},
    ("GET", "/ui/checkpoints"): {"admin", "auditor"},
    ("GET", "/ui/search"): CONSULTANTS,
    ("POST", "/ui/clients/{client}/secrets/{secret}/checkout"): {"admin", "cons_a"},
    ("GET", "/ui/leases"): CONSULTANTS,
    ("POST", "/ui/leases/{lease_id}/checkin"): {"cons_a"},
    ("GET", "/ui/clients/{client}/requests"): READERS,
    ("POST", "/ui/clients/{client}/requests"): {"admin", "cons_a"},
    ("POST", "/ui/clients/{client}/requests/{request_id}/revoke"): {"admin", "cons_a"},
    ("GET", "/ui/r/{token}"): {"client_a"},
    ("POST", "/ui/r/{token}"): {"client_a"},
}
OUT_OF_SCOPE = {"cons_none", "client_b"}
#: pages that answer a signed-in person with a redirect rather than a page
REDIRECTS = {"/ui/", "/ui/totp"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_portal_pages_matrix(cast: Cast, portal: Callable[..., TestClient]) -> None:
    with cast.vault.ctx() as ctx:
        token = requests.create(ctx, "Acme", title="Registrar login").token
    params = {"client": cast.ids["client_a"], "name": "portal.css", "token": token}
    failures = []
    for (method, path), allowed in sorted(UI_ACCESS.items()):
        if method != "GET":
            continue
        url = path.format(**params)
        for actor in ACTORS:
            if actor == "anonymous":
                http = TestClient(
                    cast.api.app, raise_server_exceptions=False, follow_redirects=False
                )
            else:
                http = portal(actor)
            response = http.get(url)
            status = response.status_code
            if status >= 500:
                failures.append(f"{path} as {actor}: {status}")
            elif actor in allowed:
                expected = 303 if path in REDIRECTS else 200
                if status != expected:
                    failures.append(f"{path} as {actor}: {status}, expected {expected}")
            elif actor == "anonymous":
                if status != 303 or not response.headers["location"].startswith("/ui/login"):
                    failures.append(f"{path} as anonymous: {status}, expected sign-in")
            elif status not in (403, 404):
                failures.append(f"{path} as {actor}: allowed {status}, expected refusal")
            elif actor in OUT_OF_SCOPE and "{client}" in path and status != 404:
                role_peers = {"cons_none": "cons_a", "client_b": "client_a"}[actor]
                if role_peers in allowed:
                    failures.append(f"{path} as {actor}: {status}, expected 404")
            if status < 500 and "text/html" in response.headers.get("content-type", ""):
                assert "Traceback" not in response.text
    assert not failures, "\n".join(failures)
