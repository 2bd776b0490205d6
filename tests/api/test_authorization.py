"""The authorization matrix: every route of the app x every kind of caller.

Routes come from the app itself (fastapi.routing.iter_route_contexts over app.routes), so a new
route without an entry in ACCESS fails this test until someone decides who may call it.
Objects belong to client A. A caller whose role may use a route but who is outside client A's
scope gets 404, never 403: another client's objects do not visibly exist.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import routing

from tests.api.conftest import PW, Cast
from vault.crypto import age
from vault.services import checkout, clients, users

ACTORS = ["anonymous", "admin", "cons_a", "cons_none", "client_a", "client_b", "auditor"]
PUBLIC = {"anonymous", *ACTORS}
SIGNED_IN = set(ACTORS) - {"anonymous"}
CONSULTING = {"admin", "cons_a"}
READERS = {"admin", "cons_a", "client_a"}
ADMIN = {"admin"}
# The callers that may use each route (on client A's objects).
ACCESS: dict[tuple[str, str], set[str]] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/sys/seal-status"): PUBLIC,
    ("POST", "/sys/unseal"): PUBLIC,
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/logout"): SIGNED_IN,
    ("GET", "/auth/me"): SIGNED_IN,
    ("POST", "/auth/totp/enroll"): SIGNED_IN,
    ("POST", "/auth/totp/confirm"): SIGNED_IN,
    ("GET", "/auth/tokens"): SIGNED_IN,
    ("POST", "/auth/tokens"): SIGNED_IN,
    ("DELETE", "/auth/tokens/{token_id}"): SIGNED_IN,
    ("GET", "/users"): ADMIN,
    ("POST", "/users"): ADMIN,
    ("PATCH", "/users/{username}"): ADMIN,
    ("POST", "/users/{username}/totp/reset"): ADMIN,
    ("GET", "/users/{username}/tokens"): ADMIN,
    ("DELETE", "/users/{username}/tokens/{token_id}"): ADMIN,
    ("GET", "/grants"): ADMIN,
    ("PUT", "/grants/{username}/{client}"): ADMIN,
    ("DELETE", "/grants/{username}/{client}"): ADMIN,
    ("GET", "/clients"): {"admin", "cons_a", "cons_none", "client_a", "client_b"},
    ("POST", "/clients"): ADMIN,
    ("GET", "/clients/{client}"): READERS,
    ("POST", "/clients/{client}/contacts"): CONSULTING,
    ("GET", "/clients/{client}/recipients"): READERS,
    ("POST", "/clients/{client}/recipients"): {"admin", "client_a"},
    ("DELETE", "/clients/{client}/recipients/{recipient}"): {"admin", "client_a"},
    ("GET", "/clients/{client}/secrets"): READERS,
    ("POST", "/clients/{client}/secrets"): CONSULTING,
    ("GET", "/clients/{client}/secrets/{secret}"): READERS,
    ("PATCH", "/clients/{client}/secrets/{secret}"): CONSULTING,
    ("GET", "/clients/{client}/secrets/{secret}/versions"): READERS,
    ("POST", "/clients/{client}/secrets/{secret}/checkout"): CONSULTING,
    ("POST", "/clients/{client}/secrets/{secret}/totp"): CONSULTING,
    ("POST", "/clients/{client}/secrets/{secret}/links"): CONSULTING,
    ("GET", "/leases"): {"admin", "cons_a", "cons_none"},
    ("GET", "/leases/rotation-due"): {"admin", "cons_a", "cons_none"},
    ("POST", "/leases/{lease_id}/checkin"): {"cons_a"},  # only the holder
    ("POST", "/leases/{lease_id}/release"): ADMIN,
    **{
        (method, f"/clients/{{client}}/{kind}s{suffix}"): who
        for kind in ("vendor", "domain", "asset")
        for method, suffix, who in (
            ("GET", "", READERS),
            ("POST", "", CONSULTING),
            ("GET", "/{name}", READERS),
            ("PATCH", "/{name}", CONSULTING),
        )
    },
    ("GET", "/reports/offboarding/{username}"): ADMIN,
    ("GET", "/reports/readiness/{client}"): {"admin", "cons_a", "client_a", "auditor"},
    ("GET", "/clients/{client}/takeover"): {"admin", "cons_a", "client_a", "auditor"},
    ("POST", "/clients/{client}/takeover"): ADMIN,  # a client contact also needs a TOTP code
    ("DELETE", "/clients/{client}/takeover"): {"client_a"},  # only the client calls it off
    ("PUT", "/clients/{client}/takeover/notice"): ADMIN,
    ("GET", "/notices"): ADMIN,
    ("GET", "/clients/{client}/escrow"): {"admin", "cons_a", "client_a", "auditor"},
    ("POST", "/clients/{client}/escrow"): {"admin", "client_a"},
    ("DELETE", "/clients/{client}/escrow/{destination_id}"): {"admin", "client_a"},
    ("POST", "/clients/{client}/escrow/run"): {"admin", "client_a"},
    ("POST", "/clients/{client}/export"): {"admin", "client_a"},
    ("POST", "/notices/{notice_id}/ack"): ADMIN,
    ("POST", "/clients/{client}/imports"): ADMIN,  # the body is checked after the role
    ("GET", "/keys"): ADMIN,
    ("POST", "/keys/rotate/client/{client}"): ADMIN,
    ("POST", "/keys/rotate/identity"): ADMIN,
    ("POST", "/keys/rotate/log"): ADMIN,
    # The transparency log: key, checkpoints and consistency proofs reveal no event; events,
    # their inclusion proofs and exports are read within the caller's client scope (client B's
    # contact gets its own, empty, view of the entries; A's event is "not found" to it).
    ("GET", "/log/key"): SIGNED_IN,
    ("GET", "/log/checkpoint"): SIGNED_IN,
    ("GET", "/log/proof/consistency"): SIGNED_IN,
    ("GET", "/log/checkpoints"): {"admin", "auditor"},
    ("GET", "/log/proof/inclusion"): {"admin", "auditor", "client_a"},
    ("GET", "/log/entries"): {"admin", "auditor", "client_a", "client_b"},
    ("GET", "/log/export"): {"admin", "auditor", "client_a", "client_b"},
    # Credential requests: consultants ask, the client's contacts see what was asked.
    ("POST", "/clients/{client}/requests"): CONSULTING,
    ("GET", "/clients/{client}/requests"): READERS,
    ("DELETE", "/clients/{client}/requests/{request_id}"): CONSULTING,
}
# Callers whose role is allowed the route but who are outside client A: they must get 404.
OUT_OF_SCOPE = {"cons_none": "consultant", "client_b": "client"}
ROLE = {
    "admin": "admin",
    "cons_a": "consultant",
    "cons_none": "consultant",
    "client_a": "client",
    "client_b": "client",
    "auditor": "auditor",
}

_counter = itertools.count()


def _fresh(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def _prepare(cast: Cast, method: str, path: str, actor: str) -> tuple[dict[str, str], Any]:
    """Path parameters and a valid body for one call; fresh objects where the call uses one up."""
    vault, ids = cast.vault, cast.ids
    params = {
        "client": ids["client_a"],
        "secret": ids["secret_a"],
        "username": "victim",
        "name": "Gandi",
    }
    body: Any = None
    with vault.ctx() as ctx:
        if "{token_id}" in path:
            owner = (
                "victim"
                if path.startswith("/users")
                else (actor if actor != "anonymous" else "admin")
            )
            users._new_token(
                ctx, users.get_user(ctx, owner), scope="full", ttl=users.SESSION_TTL, label="fresh"
            )
            ctx.session.flush()
            params["token_id"] = users.list_tokens(ctx, users.get_user(ctx, owner))[-1].id
        if "{lease_id}" in path:
            from vault.services import Principal

            cons = users.get_user(ctx, "cons_a")
            lease_ctx = type(ctx)(
                session=ctx.session,
                actor="user:cons_a",
                keys=ctx.keys,
                principal=Principal(
                    "user:cons_a", "consultant", cons.id, frozenset([ids["client_a"]])
                ),
            )
            params["lease_id"] = checkout.checkout(
                lease_ctx, "Acme", "Router", reason="matrix"
            ).lease.id
        if "{recipient}" in path:
            params["recipient"] = clients.add_recipient(
                ctx, "Acme", str(age.X25519Identity.generate().recipient)
            ).id
        if method == "DELETE" and path.startswith("/grants"):
            users.grant(ctx, "victim", "Acme")
        if method == "DELETE" and path.endswith("/takeover"):
            from vault.services import takeover

            if takeover.status(ctx, "Acme").state == "managed":
                takeover.start(ctx, "Acme")
        if "{destination_id}" in path:
            from vault.services import escrow

            params["destination_id"] = escrow.add_destination(
                ctx, "Acme", url="https://drop.example/matrix"
            ).id
        if "{request_id}" in path:
            from vault.services import requests

            params["request_id"] = requests.create(ctx, "Acme", title=_fresh("Asked")).request.id
        if "{notice_id}" in path:
            from vault.db.models import Notice

            notice = Notice(client_id=ids["client_a"], kind="test", message="matrix")
            ctx.session.add(notice)
            ctx.session.flush()
            params["notice_id"] = notice.id
    if path.endswith("/totp"):
        params["secret"] = ids["totp_a"]
    bodies: dict[tuple[str, str], Callable[[], Any]] = {
        ("POST", "/sys/unseal"): lambda: {"passphrase": "irrelevant: already unsealed"},
        ("POST", "/auth/login"): lambda: {"username": "nobody", "password": "x"},
        ("POST", "/auth/totp/confirm"): lambda: {"code": "000000"},
        ("POST", "/auth/tokens"): lambda: {"label": "matrix"},
        ("POST", "/users"): lambda: {"username": _fresh("u"), "role": "auditor", "password": PW},
        ("PATCH", "/users/{username}"): lambda: {"disabled": False},
        ("PUT", "/grants/{username}/{client}"): lambda: {},
        ("POST", "/clients"): lambda: {"name": _fresh("Client")},
        ("POST", "/clients/{client}/contacts"): lambda: {"name": "Front desk"},
        ("POST", "/clients/{client}/recipients"): lambda: {
            "recipient": str(age.X25519Identity.generate().recipient)
        },
        ("POST", "/clients/{client}/secrets"): lambda: {"title": _fresh("S"), "value": "v4lue!"},
        ("PATCH", "/clients/{client}/secrets/{secret}"): lambda: {"tags": ["matrix"]},
        ("POST", "/clients/{client}/secrets/{secret}/checkout"): lambda: {"reason": "matrix"},
        ("POST", "/clients/{client}/secrets/{secret}/links"): lambda: {
            "kind": "vendor",
            "name": "Gandi",
        },
        ("POST", "/leases/{lease_id}/checkin"): lambda: {},
        ("POST", "/clients/{client}/takeover"): lambda: {},
        ("POST", "/clients/{client}/escrow"): lambda: {"url": "https://drop.example/x"},
        ("PUT", "/clients/{client}/takeover/notice"): lambda: {"notice_days": 3},
        ("POST", "/clients/{client}/requests"): lambda: {"title": _fresh("Asked")},
    }
    for kind in ("vendor", "domain", "asset"):
        bodies[("POST", f"/clients/{{client}}/{kind}s")] = lambda: {"name": _fresh("I")}
        bodies[("PATCH", f"/clients/{{client}}/{kind}s/{{name}}")] = lambda: {"notes": "n"}
    if (method, path) in bodies:
        body = bodies[(method, path)]()
    if "/domains/" in path or "/assets/" in path:
        params["name"] = _ensure_inventory(cast, path)
    if path == "/log/proof/inclusion":
        params["query"] = f"?index={_event_of(cast, ids['client_a'])}"
    elif path == "/log/proof/consistency":
        params["query"] = "?old=1&new=2"
    return params, body


def _event_of(cast: Cast, client_id: str) -> int:
    """The leaf index of an event about ``client_id`` (what an inclusion proof is asked for)."""
    from sqlalchemy import select

    from vault.db.models import AuditEvent

    with cast.vault.store.read_session() as session, session.begin():
        found = session.scalars(
            select(AuditEvent.seq).where(AuditEvent.client_id == client_id).limit(1)
        ).one()
    return int(found)


def _ensure_inventory(cast: Cast, path: str) -> str:
    from vault.services import inventory

    kind = "domain" if "/domains/" in path else "asset"
    with cast.vault.ctx() as ctx:
        if not inventory.list_records(ctx, kind, "Acme", f"{kind}-a"):
            inventory.add_record(ctx, kind, "Acme", name=f"{kind}-a")
    return f"{kind}-a"


def _routes(app: Any, *, portal: bool = False) -> list[tuple[str, str]]:
    """The JSON API's routes (or, with ``portal``, the /ui pages: their cookie-based matrix is
    tests/ui/test_access.py, which must classify every one of them)."""
    found = []
    for context in routing.iter_route_contexts(app.routes):
        if context.path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"):
            continue
        if context.path.startswith("/ui/") != portal:
            continue
        for method in sorted((context.methods or set()) - {"HEAD"}):
            found.append((method, context.path))
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_authorization_matrix(cast: Cast) -> None:
    with cast.vault.ctx() as ctx:
        users.create_user(ctx, "victim", role="consultant", password=PW)
    from tests.ui.test_access import UI_ACCESS

    routes = _routes(cast.api.app)
    missing = sorted(set(routes) - set(ACCESS))
    assert not missing, f"routes without an access decision: {missing}"
    pages = _routes(cast.api.app, portal=True)
    unclassified = sorted(set(pages) - set(UI_ACCESS))
    assert not unclassified, f"portal routes missing from tests/ui/test_access.py: {unclassified}"
    assert len(routes) >= 50
    failures = []
    for method, path in routes:
        allowed = ACCESS[(method, path)]
        for actor in ACTORS:
            params, body = _prepare(cast, method, path, actor)
            url = path.format(**params) + params.get("query", "")
            headers = cast.headers(actor) if actor != "anonymous" else {}
            response = cast.api.request(method, url, headers=headers, json=body)
            status = response.status_code
            if status >= 500:
                failures.append(f"{method} {path} as {actor}: {status} {response.text[:200]}")
            elif actor in allowed:
                if status in (401, 403, 404) and not _public_401(method, path, status):
                    failures.append(f"{method} {path} as {actor}: refused {status}")
            elif actor == "anonymous":
                if status != 401:
                    failures.append(f"{method} {path} as anonymous: {status}, expected 401")
            elif status not in (403, 404):
                failures.append(f"{method} {path} as {actor}: allowed {status}, expected refusal")
            elif (
                actor in OUT_OF_SCOPE
                and "{client}" in path
                and status != 404
                and any(ROLE[a] == ROLE[actor] for a in allowed)
            ):
                failures.append(f"{method} {path} as {actor}: {status}, expected 404")
    assert not failures, "\n".join(failures)


def _public_401(method: str, path: str, status: int) -> bool:
    # Signing in with wrong credentials is a 401 by design, for everyone.
    return (method, path) == ("POST", "/auth/login") and status == 401
