"""The portal in a real browser: headless Chromium (Debian's, never Playwright's download)
driven by Playwright, against a real uvicorn server on each test's database.

Skipped when Playwright or Chromium is missing - unless CUSTODY_REQUIRE_INTEROP=1 (CI), where
that is a failure. With CUSTODY_SCREENSHOTS=1 the main pages are saved to docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from tests.conftest import TEST_PASSPHRASE, Vault
from tests.interop import REQUIRE_ENV, interop_required, require_tool
from tests.server import uvicorn_server
from vault.db.models import utcnow
from vault.services import clients, inventory, secrets, users

pytestmark = [
    pytest.mark.browser,
    pytest.mark.interop,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]
CHROMIUM = "/usr/bin/chromium"
PW = "a long enough password"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 20_000


def _missing(message: str) -> None:
    if interop_required():
        pytest.fail(f"{message}, but {REQUIRE_ENV}=1 requires it")
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        _missing(f"{CHROMIUM} is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server(vault: Vault) -> Iterator[str]:
    env = {
        "CUSTODY_DATABASE_URL": vault.settings.database_url,
        "CUSTODY_UNSEAL_PASSPHRASE": TEST_PASSPHRASE,
        "CUSTODY_HOME": str(vault.settings.home),
    }
    with uvicorn_server(env) as url:
        yield url


def shot(page: Any, name: str) -> None:
    if os.environ.get("CUSTODY_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def person(vault: Vault, name: str, role: str, client: str | None = None) -> str:
    """A user with a confirmed authenticator; returns its TOTP seed."""
    with vault.ctx() as ctx:
        user = users.create_user(ctx, name, role=role, password=PW, client_name=client)
        uri = users.begin_totp_enrollment(ctx, user)
        seed = parse_qs(urlsplit(uri).query)["secret"][0]
        users.confirm_totp(ctx, user, pyotp.TOTP(seed).at(time.time() - 30))
    return seed


def sign_in(page: Any, url: str, name: str, code: str | None) -> None:
    page.goto(f"{url}/ui/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PW)
    if code is not None:
        page.get_by_label("Authenticator code").fill(code)
    page.get_by_role("button", name="Sign in").click()


def new_page(browser: Any, *, width: int = 1100, height: int = 760) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def seed_acme(vault: Vault) -> str:
    with vault.ctx() as ctx:
        acme = clients.add_client(ctx, "Acme")
        inventory.add_record(ctx, "vendor", "Acme", name="Gandi", owner_kind="client")
        soon = (utcnow() + timedelta(days=20)).date().isoformat()
        inventory.add_record(ctx, "domain", "Acme", name="acme.example", expires_on=soon)
        secrets.add_secret(
            ctx, "Acme", title="Router", value="r0uter-Admin-2024!", username="admin"
        )
        return acme.id


def test_client_enrols_sees_a_finding_adds_a_recipient_and_exports(
    vault: Vault, server: str, chromium: Any, tmp_path: Path
) -> None:
    from vault.crypto import age as age_format

    age_tool = require_tool("age")
    seed_acme(vault)
    with vault.ctx() as ctx:
        users.create_user(ctx, "carol", role="client", password=PW, client_name="Acme")
    page = new_page(chromium)
    sign_in(page, server, "carol", None)  # first sign-in: enrol the authenticator
    page.wait_for_url("**/ui/totp")
    assert page.locator(".qr svg").count() == 1
    shot(page, "totp-enrolment")
    key = page.locator("#totp-key").inner_text().strip()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(key).now())
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/ui/login\?enrolled=1$"))
    sign_in(page, server, "carol", pyotp.TOTP(key).at(time.time() + 30))
    page.wait_for_url("**/ui/clients/*")
    finding = page.locator(".finding.sev-critical").first
    assert "No escrow key is registered" in finding.inner_text()
    shot(page, "client-dashboard")

    page.get_by_role("link", name="Inventory").first.click()
    assert page.locator("tr.soon").count() == 1  # the domain expiring within 60 days
    shot(page, "client-inventory")
    page.get_by_role("link", name="Access log").first.click()
    assert page.locator(".log tbody tr").count() > 0
    assert page.locator(".log .ok").count() == page.locator(".log tbody tr").count()
    assert "Signature verified" in page.locator(".notice").first.inner_text()
    shot(page, "client-log")

    identity = age_format.X25519Identity.generate()
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(str(identity) + "\n")
    page.get_by_role("link", name="Escrow").first.click()
    page.get_by_label("Add a recipient").fill(str(identity.recipient))
    page.get_by_label("Label").fill("Carol's laptop")
    page.get_by_role("button", name="Add recipient").click()
    assert page.get_by_text(str(identity.recipient)).count() == 1
    shot(page, "client-escrow")

    with page.expect_download() as info:
        page.get_by_role("button", name="Download export").click()
    bundle = tmp_path / "export.age"
    info.value.save_as(str(bundle))
    opened = subprocess.run(
        [age_tool, "-d", "-i", str(keyfile), str(bundle)], capture_output=True, timeout=60
    )
    assert opened.returncode == 0, opened.stderr.decode(errors="replace")
    assert b"Router" in opened.stdout


def test_auditor_filters_the_log_and_downloads_json_lines(
    vault: Vault, server: str, chromium: Any, tmp_path: Path
) -> None:
    seed_acme(vault)
    seed = person(vault, "audrey", "auditor")
    page = new_page(chromium)
    sign_in(page, server, "audrey", pyotp.TOTP(seed).now())
    page.wait_for_url("**/ui/log")
    page.keyboard.press("Tab")  # keyboard users land on the skip link first
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.get_by_label("Action").fill("secret.add")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/ui/log\?.*action=secret\.add"))
    rows = page.locator(".log tbody tr")
    assert rows.count() == 1 and "secret.add" in rows.first.inner_text()
    shot(page, "auditor-log")
    with page.expect_download() as info:
        page.get_by_role("link", name="JSON Lines").click()
    path = tmp_path / "log.jsonl"
    info.value.save_as(str(path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["view"] == "filtered"
    events = [x for x in lines if x.get("type") not in ("header", "checkpoint")]
    assert len(events) == 1
    page.get_by_role("link", name="Checkpoints").click()
    assert page.locator("table tbody tr").count() >= 1
    page.get_by_role("button", name="Check").click()
    assert "✓" in page.locator("#consistency-result").inner_text()
    shot(page, "auditor-checkpoints")


def test_consultant_checks_a_secret_out_and_back_in(
    vault: Vault, server: str, chromium: Any
) -> None:
    seed_acme(vault)
    seed = person(vault, "conrad", "consultant")
    with vault.ctx() as ctx:
        users.grant(ctx, "conrad", "Acme")
    page = new_page(chromium)
    page.clock.install()
    sign_in(page, server, "conrad", pyotp.TOTP(seed).now())
    page.wait_for_url("**/ui/search")
    page.get_by_label("Title, tag or URL contains").fill("router")
    page.get_by_role("button", name="Search").click()
    page.locator("summary", has_text="Check out").first.click()
    page.get_by_label("Reason").fill("replace the WAN port")
    shot(page, "consultant-search")
    page.get_by_role("button", name="Check out").click()
    value = page.locator("#secret-value")
    assert value.inner_text() == "r0uter-Admin-2024!"
    copy = page.get_by_role("button", name="Copy")
    copy.wait_for(state="visible", timeout=5000)  # portal.js unhides it once the page loaded
    assert copy.is_visible()
    shot(page, "consultant-checkout")
    page.clock.run_for(31_000)
    assert value.inner_text() == "(hidden)"

    page.get_by_role("link", name="My leases").click()
    assert page.locator(".rows > li").count() == 1
    page.get_by_role("button", name="Check in").click()
    new_value = page.locator("#secret-value").inner_text()
    assert new_value and new_value != "r0uter-Admin-2024!"
    with vault.ctx() as ctx:
        assert secrets.read_secret(ctx, "Acme", "Router").value == new_value
    page.get_by_role("link", name="My leases").click()
    assert page.get_by_text("No open leases").count() == 1


def test_credential_request_end_to_end(vault: Vault, server: str, chromium: Any) -> None:
    acme = seed_acme(vault)
    consultant_seed = person(vault, "conrad", "consultant")
    client_seed = person(vault, "carol", "client", "Acme")
    with vault.ctx() as ctx:
        users.grant(ctx, "conrad", "Acme")
    consultant = new_page(chromium)
    sign_in(consultant, server, "conrad", pyotp.TOTP(consultant_seed).now())
    consultant.wait_for_url("**/ui/search")
    consultant.goto(f"{server}/ui/clients/{acme}/requests")
    consultant.get_by_label("Title of the new secret").fill("Registrar login")
    consultant.get_by_label("Vendor").select_option("Gandi")
    consultant.get_by_role("button", name="Create link").click()
    link = consultant.locator("#request-link").inner_text().strip()
    assert "/ui/r/" in link
    shot(consultant, "request-created")

    client = new_page(chromium, width=390, height=800)  # a phone
    client.goto(link)
    client.wait_for_url(re.compile(r"/ui/login\?next=/ui/r/"))
    client.get_by_label("Username").fill("carol")
    client.get_by_label("Password").fill(PW)
    client.get_by_label("Authenticator code").fill(pyotp.TOTP(client_seed).now())
    client.get_by_role("button", name="Sign in").click()
    client.wait_for_url("**/ui/r/*")
    client.get_by_label("Username").fill("acme-admin")
    client.get_by_label("The credential").fill("Registrar-Pa55word!")
    shot(client, "request-fill-phone")
    client.get_by_role("button", name="Store it in the vault").click()
    assert client.get_by_text("stored encrypted in the vault").count() == 1
    response = client.goto(link)
    assert response is not None and response.status == 410
    with vault.ctx() as ctx:
        stored = secrets.read_secret(ctx, "Acme", "Registrar login")
        assert stored.value == "Registrar-Pa55word!" and stored.username == "acme-admin"
