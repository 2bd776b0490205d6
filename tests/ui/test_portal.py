"""The portal over TestClient: sign-in and its cookie, CSRF on every form, headers, friendly
errors, one-time request links, and client isolation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.ui import web
from tests.api.conftest import PW, Cast
from tests.ui.conftest import csrf_of
from vault.crypto import age
from vault.db.models import ApiToken, CredentialRequest, Recipient, utcnow
from vault.services import requests, users

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PortalMaker = Callable[..., TestClient]


def _anonymous(cast: Cast, *, https: bool = False) -> TestClient:
    base = "https://testserver" if https else "http://testserver"
    return TestClient(
        cast.api.app, base_url=base, raise_server_exceptions=False, follow_redirects=False
    )


def _sign_in(cast: Cast, http: TestClient, username: str) -> TestClient:
    page = http.get("/ui/login")
    response = http.post(
        "/ui/login",
        data={
            "csrf": csrf_of(page.text),
            "username": username,
            "password": PW,
            "totp": cast.code(username, 1),
        },
    )
    assert response.status_code == 303, response.text
    return response


def test_headers_on_portal_pages(cast: Cast) -> None:
    response = _anonymous(cast).get("/ui/login")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == web.UI_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in response.text and " style=" not in response.text
    assert '<html lang="en">' in response.text
    css = _anonymous(cast).get("/ui/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_sign_in_sets_a_strict_cookie_backed_by_a_hashed_token(cast: Cast) -> None:
    http = _anonymous(cast)
    response = _sign_in(cast, http, "client_a")
    cookie = [c for c in response.headers.get_list("set-cookie") if "custody_session=" in c][0]
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=strict" in flags and "path=/ui" in flags
    assert "secure" not in flags  # plain HTTP here
    raw = cookie.split(";")[0].split("=", 1)[1]
    with cast.vault.store.session() as s:
        stored = s.scalars(select(ApiToken.token_hash)).all()
    assert users.hash_token(raw) in stored and raw not in stored
    assert http.get("/ui/").status_code == 303


def test_cookie_is_secure_over_https(cast: Cast) -> None:
    response = _sign_in(cast, _anonymous(cast, https=True), "auditor")
    cookie = [c for c in response.headers.get_list("set-cookie") if "custody_session=" in c][0]
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_wrong_code_is_one_opaque_failure(cast: Cast) -> None:
    http = _anonymous(cast)
    page = http.get("/ui/login")
    response = http.post(
        "/ui/login",
        data={"csrf": csrf_of(page.text), "username": "client_a", "password": PW, "totp": "000000"},
    )
    assert response.status_code == 401
    assert users.LOGIN_FAILED in response.text.replace("&#39;", "'")
    assert "custody_session" not in response.headers.get("set-cookie", "")


def test_login_without_csrf_is_refused(cast: Cast) -> None:
    http = _anonymous(cast)
    http.get("/ui/login")
    response = http.post(
        "/ui/login", data={"username": "client_a", "password": PW, "totp": cast.code("client_a")}
    )
    assert response.status_code == 403
    assert "custody_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_post_without_the_right_csrf_token_is_refused(
    cast: Cast, portal: PortalMaker, token: str | None
) -> None:
    http = portal("client_a")
    recipient = str(age.X25519Identity.generate().recipient)
    data = {"recipient": recipient}
    if token is not None:
        data["csrf"] = token
    response = http.post(f"/ui/clients/{cast.ids['client_a']}/recipients", data=data)
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    with cast.vault.store.session() as s:
        assert s.scalars(select(Recipient).where(Recipient.recipient == recipient)).first() is None
    # ... and with the session's token it goes through.
    data["csrf"] = http.headers["x-test-csrf"]
    assert http.post(f"/ui/clients/{cast.ids['client_a']}/recipients", data=data).status_code == 200


def test_csrf_token_of_another_session_is_refused(cast: Cast, portal: PortalMaker) -> None:
    mine, theirs = portal("cons_a"), portal("cons_a")
    response = mine.post(
        "/ui/leases/whatever/checkin", data={"csrf": theirs.headers["x-test-csrf"]}
    )
    assert response.status_code == 403


def test_sign_out_revokes_the_session(cast: Cast, portal: PortalMaker) -> None:
    http = portal("auditor")
    assert http.get("/ui/log").status_code == 200
    response = http.post("/ui/logout", data={"csrf": http.headers["x-test-csrf"]})
    assert response.status_code == 303
    assert http.get("/ui/log").status_code == 303  # the cookie alone no longer signs in


def test_another_clients_pages_do_not_exist(cast: Cast, portal: PortalMaker) -> None:
    http = portal("client_b")
    a = cast.ids["client_a"]
    for page in ("", "/inventory", "/log", "/escrow", "/requests"):
        response = http.get(f"/ui/clients/{a}{page}")
        assert response.status_code == 404, page
        assert "Acme" not in response.text and "Router" not in response.text
    response = http.post(
        f"/ui/clients/{a}/recipients",
        data={"csrf": http.headers["x-test-csrf"], "recipient": "age1x"},
    )
    assert response.status_code == 404


def test_pages_never_show_values_except_the_checkout_result(
    cast: Cast, portal: PortalMaker
) -> None:
    a = cast.ids["client_a"]
    client, consultant = portal("client_a"), portal("cons_a")
    for http, page in (
        (client, f"/ui/clients/{a}/inventory"),
        (client, f"/ui/clients/{a}"),
        (consultant, "/ui/search?q=router"),
    ):
        assert "r0uter" not in http.get(page).text
    response = consultant.post(
        f"/ui/clients/{a}/secrets/{cast.ids['secret_a']}/checkout",
        data={"csrf": consultant.headers["x-test-csrf"], "reason": "fix the router"},
    )
    assert response.status_code == 200
    assert "r0uter" in response.text
    assert response.headers["cache-control"] == "no-store"  # once, from the middleware


def test_errors_are_pages_without_traces(cast: Cast, portal: PortalMaker) -> None:
    response = portal("cons_a").get("/ui/clients/nope")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Traceback" not in response.text
    assert portal("client_a").get("/ui/no-such-page").status_code == 404


def _request(cast: Cast, **kw: object) -> str:
    with cast.vault.ctx() as ctx:
        return requests.create(ctx, "Acme", title="Registrar login", **kw).token  # type: ignore[arg-type]


def test_request_link_works_once_then_410(cast: Cast, portal: PortalMaker) -> None:
    token = _request(cast)
    http = portal("client_a")
    page = http.get(f"/ui/r/{token}")
    assert page.status_code == 200 and "Registrar login" in page.text
    done = http.post(f"/ui/r/{token}", data={"csrf": csrf_of(page.text), "value": "s3cret-Value!"})
    assert done.status_code == 200, done.text
    assert "s3cret-Value!" not in done.text
    assert http.get(f"/ui/r/{token}").status_code == 410
    again = http.post(f"/ui/r/{token}", data={"csrf": csrf_of(page.text), "value": "other"})
    assert again.status_code == 410
    assert _anonymous(cast).get(f"/ui/r/{token}").status_code == 410
    with cast.vault.ctx() as ctx:
        from vault.services import secrets

        found = secrets.read_secret(ctx, "Acme", "Registrar login")
        assert found.value == "s3cret-Value!"


def test_expired_or_revoked_request_link_is_410(cast: Cast, portal: PortalMaker) -> None:
    expired, revoked = _request(cast), None
    with cast.vault.ctx() as ctx:
        ctx.session.execute(
            update(CredentialRequest).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        made = requests.create(ctx, "Acme", title="DNS login")
        revoked = made.token
        requests.revoke(ctx, "Acme", made.request.id)
    http = portal("client_a")
    assert http.get(f"/ui/r/{expired}").status_code == 410
    assert http.get(f"/ui/r/{revoked}").status_code == 410


def test_request_link_is_for_the_clients_own_contacts(cast: Cast, portal: PortalMaker) -> None:
    token = _request(cast)
    assert portal("client_b").get(f"/ui/r/{token}").status_code == 404
    assert portal("cons_a").get(f"/ui/r/{token}").status_code == 403
    response = _anonymous(cast).get(f"/ui/r/{token}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/login?next=/ui/r/{token}"
    assert portal("client_a").get(f"/ui/r/{token}").status_code == 200  # still unused


def test_request_link_expiry_is_bounded(cast: Cast) -> None:
    from vault.errors import InvalidInput

    with cast.vault.ctx() as ctx, pytest.raises(InvalidInput):
        requests.create(ctx, "Acme", title="Too long", ttl=timedelta(days=15))
    with cast.vault.ctx() as ctx:
        made = requests.create(ctx, "Acme", title="Default")
        assert made.request.expires_at - made.request.created_at == timedelta(hours=72)
        assert len(made.token) >= 43  # 32 random bytes, base64url


def test_client_log_entries_are_verified_against_the_signed_checkpoint(
    cast: Cast, portal: PortalMaker
) -> None:
    response = portal("client_a").get(f"/ui/clients/{cast.ids['client_a']}/log")
    assert response.status_code == 200
    assert "Signature verified" in response.text
    rows = response.text.count("<tr><td>")
    assert rows > 0 and response.text.count('aria-label="inclusion verified"') == rows
    assert "✗" not in response.text


def test_consistency_between_two_checkpoints_is_verified(cast: Cast, portal: PortalMaker) -> None:
    from vault.services import auditlog

    with cast.vault.store.session() as s, s.begin():
        first = auditlog.sign(s, cast.vault.keys).size
    with cast.vault.ctx() as ctx:
        users.create_user(ctx, "later", role="auditor", password=PW)
    with cast.vault.store.session() as s, s.begin():
        second = auditlog.sign(s, cast.vault.keys).size
    assert second > first
    http = portal("auditor")
    response = http.get(f"/ui/checkpoints?old={first}&new={second}")
    assert response.status_code == 200
    assert f"the log of {first} events is a prefix of the log of {second} events" in response.text
    missing = http.get("/ui/checkpoints?old=1&new=999999")
    assert missing.status_code == 200 and "cannot check: no checkpoint of tree size" in missing.text


def test_auditor_log_filters_and_downloads(cast: Cast, portal: PortalMaker) -> None:
    http = portal("auditor")
    page = http.get("/ui/log?action=secret.add")
    assert page.status_code == 200 and page.text.count("<tr><td>") == 3
    csv = http.get("/ui/log/download?format=csv&action=secret.add")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == 4
    assert "r0uter" not in csv.text
    bad = http.get("/ui/log?since=yesterday")
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"]


def test_no_page_shows_a_sealed_value(cast: Cast, portal: PortalMaker) -> None:
    """A canary in every sealed field never appears on a portal page, for anyone; nor in the
    log downloads (the check-out result is the one page that shows a value, tested above)."""
    from vault.services import inventory, secrets

    canary = "CANARY-portal-5be1"
    with cast.vault.ctx() as ctx:
        secrets.add_secret(
            ctx,
            "Acme",
            title="Canary",
            value=canary + "-v",
            username=canary + "-u",
            notes=canary + "-n",
        )
        inventory.add_record(
            ctx,
            "vendor",
            "Acme",
            name="Canary vendor",
            account_number=canary + "-acct",
            recovery_email=canary + "@example.com",
            notes=canary + "-notes",
        )
        token = requests.create(ctx, "Acme", title="Canary request").token
    a = cast.ids["client_a"]
    pages = [
        f"/ui/clients/{a}",
        f"/ui/clients/{a}/inventory",
        f"/ui/clients/{a}/log",
        f"/ui/clients/{a}/escrow",
        f"/ui/clients/{a}/requests",
        "/ui/clients",
        "/ui/search",
        "/ui/search?q=canary",
        "/ui/leases",
        "/ui/log",
        "/ui/checkpoints",
        "/ui/log/download?format=jsonl",
        "/ui/log/download?format=csv",
        f"/ui/r/{token}",
    ]
    for who in ("admin", "cons_a", "client_a", "auditor"):
        http = portal(who)
        for page in pages:
            response = http.get(page)
            assert response.status_code < 500, (who, page)
            assert canary not in response.text, (who, page)
    http = portal("client_a")
    form = http.get(f"/ui/r/{token}")
    done = http.post(f"/ui/r/{token}", data={"csrf": csrf_of(form.text), "value": canary + "-r"})
    assert done.status_code == 200 and canary not in done.text
    assert canary not in portal("auditor").get("/ui/log/download?format=jsonl").text


def test_sealed_vault_shows_a_page(cast: Cast) -> None:
    from api.app import create_app
    from api.state import ServerState

    app = create_app(
        ServerState(store=cast.vault.store, keys=None), sweep_leases=False, checkpoints=False
    )
    http = TestClient(app, raise_server_exceptions=False)
    response = http.get("/ui/login")
    assert response.status_code == 503
    assert "text/html" in response.headers["content-type"] and "sealed" in response.text
    assert response.headers["content-security-policy"] == web.UI_CSP
    assert http.get("/ui/static/portal.css").status_code == 200


def test_every_input_has_a_label_and_pages_have_a_skip_link(
    cast: Cast, portal: PortalMaker
) -> None:
    import re

    a = cast.ids["client_a"]
    pages = {
        "client_a": [f"/ui/clients/{a}", f"/ui/clients/{a}/escrow", f"/ui/clients/{a}/log"],
        "cons_a": ["/ui/search?q=router", "/ui/leases", f"/ui/clients/{a}/requests"],
        "auditor": ["/ui/log", "/ui/checkpoints"],
    }
    anonymous = _anonymous(cast)
    checked = [("anonymous", "/ui/login", anonymous.get("/ui/login").text)]
    for who, urls in pages.items():
        http = portal(who)
        checked += [(who, url, http.get(url).text) for url in urls]
    for who, url, html in checked:
        assert '<a class="skip" href="#main">' in html and '<main id="main"' in html, url
        labels = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
        for tag in re.findall(r"<(?:input|select)\b[^>]*>", html):
            if 'type="hidden"' in tag:
                continue
            found = re.search(r'id="([^"]+)"', tag)
            assert found and found.group(1) in labels, f"{who} {url}: unlabelled {tag}"


def test_export_form_is_for_the_client_and_admins(cast: Cast, portal: PortalMaker) -> None:
    a = cast.ids["client_a"]
    for who, expected in (("cons_a", {403}), ("auditor", {403}), ("client_b", {404})):
        http = portal(who)
        response = http.post(f"/ui/clients/{a}/export", data={"csrf": http.headers["x-test-csrf"]})
        assert response.status_code in expected, who
    http = portal("client_a")
    response = http.post(f"/ui/clients/{a}/export", data={"csrf": http.headers["x-test-csrf"]})
    assert response.status_code == 200
    assert response.content.startswith(b"age-encryption.org/v1\n")


def test_oversized_form_gets_a_page(cast: Cast, portal: PortalMaker) -> None:
    http = portal("client_a")
    response = http.post(
        f"/ui/clients/{cast.ids['client_a']}/recipients",
        data={"csrf": http.headers["x-test-csrf"], "recipient": "x" * (2 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert "text/html" in response.headers["content-type"] and "Too large" in response.text


def test_client_starts_and_cancels_a_takeover_in_the_portal(
    cast: Cast, portal: PortalMaker
) -> None:
    """A client contact takes its records over from the portal: a fresh TOTP code is required;
    the consultancy's people see the state but get no button; the client can call it off."""
    a = cast.ids["client_a"]
    consultant = portal("cons_a")
    page = consultant.get(f"/ui/clients/{a}/takeover")
    assert page.status_code == 200 and "managed by the consultancy" in page.text
    assert "Start the takeover" not in page.text
    refused = consultant.post(
        f"/ui/clients/{a}/takeover", data={"csrf": consultant.headers["x-test-csrf"]}
    )
    assert refused.status_code == 403

    http = portal("client_a")
    page = http.get(f"/ui/clients/{a}/takeover")
    assert "Start the takeover" in page.text
    csrf = http.headers["x-test-csrf"]
    wrong = http.post(f"/ui/clients/{a}/takeover", data={"csrf": csrf, "totp_code": "000000"})
    assert wrong.status_code == 403 and "TOTP" in wrong.text
    started = http.post(
        f"/ui/clients/{a}/takeover", data={"csrf": csrf, "totp_code": cast.code("client_a", 1)}
    )
    assert started.status_code == 200, started.text
    assert "Takeover started" in started.text and "notice period" in started.text
    cancelled = http.post(f"/ui/clients/{a}/takeover/cancel", data={"csrf": csrf})
    assert cancelled.status_code == 200 and "called off" in cancelled.text
