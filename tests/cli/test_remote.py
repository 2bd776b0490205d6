"""The CLI against a real uvicorn server: login with TOTP, check-out, check-in, logout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyotp
from sqlalchemy import select

from tests.conftest import TEST_PASSPHRASE
from tests.server import uvicorn_server
from vault.config import Settings
from vault.db.models import User, utcnow
from vault.keys import UnsealSecret
from vault.services.users import _totp_location, begin_totp_enrollment, confirm_totp, get_user
from vault.store import Store

CUSTODY = str(Path(sys.executable).parent / "custody")
PW = "carol's long password"


def _run(
    env: dict[str, str], *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CUSTODY, *args], env=env, input=input, capture_output=True, text=True, timeout=120
    )


def _ok(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = _run(env, *args, input=input)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_against_server(cli_env: dict[str, str], tmp_path: Path) -> None:
    local = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    local.update(cli_env, CUSTODY_CONFIG_DIR=str(tmp_path / "config"))
    _ok(local, "init")
    _ok(local, "client", "add", "Acme")
    _ok(
        local, "secret", "add", "Acme", "--title", "Router", "--password-stdin", input="r0uter-pass"
    )
    _ok(local, "user", "add", "carol", "--role", "consultant", "--password-stdin", input=PW)
    _ok(local, "grant", "add", "carol", "Acme")

    store = Store.open(Settings.from_env(local))
    keys = store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    with store.context("operator:test", keys) as ctx:
        begin_totp_enrollment(ctx, get_user(ctx, "carol"))
    with store.session() as s:
        user = s.scalars(select(User).where(User.username == "carol")).one()
        totp = pyotp.TOTP(keys.vault_cipher.open_text(user.totp_ct, _totp_location(user)))
    with store.context("operator:test", keys) as ctx:
        confirm_totp(ctx, get_user(ctx, "carol"), totp.at(utcnow().timestamp() - 30))
    store.engine.dispose()

    with uvicorn_server(cli_env) as url:
        remote = dict(local, CUSTODY_SERVER=url)
        refused = _run(remote, "secret", "list", "Acme")
        assert refused.returncode == 2 and "custody login" in refused.stderr
        _ok(remote, "login", "-u", "carol", "--password-stdin", "--totp", totp.now(), input=PW)
        sessions = tmp_path / "config" / "sessions.json"
        assert oct(sessions.stat().st_mode & 0o777) == "0o600"
        assert PW not in sessions.read_text()

        listed = json.loads(_ok(remote, "secret", "list", "Acme", "--json"))
        assert [s["title"] for s in listed] == ["Router"] and "r0uter" not in str(listed)
        got = _run(remote, "secret", "get", "Acme", "Router", "--reason", "VPN down")
        assert got.returncode == 0, got.stderr
        assert got.stdout == "r0uter-pass\n" and "custody secret checkin" in got.stderr
        leases = json.loads(_ok(remote, "lease", "list", "--json"))
        assert len(leases) == 1 and leases[0]["reason"] == "VPN down"
        _ok(remote, "secret", "checkin", leases[0]["id"])
        assert json.loads(_ok(remote, "lease", "list", "--json")) == []
        local_only = _run(remote, "client", "keyfile", "Acme", "--out", str(tmp_path / "k"))
        assert local_only.returncode == 2 and "local store only" in local_only.stderr
        not_admin = _run(remote, "key", "rotate", "log")
        assert not_admin.returncode == 2 and "may not" in not_admin.stderr
        # records work remotely too
        _ok(
            remote,
            "vendor",
            "add",
            "Acme",
            "Gandi",
            "--category",
            "registrar",
            "--account-number",
            "ACC-9",
        )
        shown = json.loads(_ok(remote, "vendor", "show", "Acme", "Gandi", "--json"))
        assert shown["account_number"] == "ACC-9" and shown["category"] == "registrar"
        assert [v["name"] for v in json.loads(_ok(remote, "vendor", "list", "Acme", "--json"))] == [
            "Gandi"
        ]
        from vault.crypto import age

        recipients = _run(
            remote, "recipient", "add", "Acme", str(age.X25519Identity.generate().recipient)
        )
        # a consultant may not change a client's escrow recipients
        assert recipients.returncode == 2 and "may not" in recipients.stderr
        _ok(remote, "client", "contact", "Acme", "Dana Owner", "--role", "owner")
        assert [
            c["name"]
            for c in json.loads(_ok(remote, "client", "show", "Acme", "--json"))["contacts"]
        ] == ["Dana Owner"]
        new_pw = "carol's brand new password"
        _ok(remote, "user", "password", "carol", "--password-stdin", input=new_pw)
        # changing the password ended the session
        assert _run(remote, "secret", "list", "Acme").returncode == 2
        _ok(
            remote,
            "login",
            "-u",
            "carol",
            "--password-stdin",
            "--totp",
            totp.at(utcnow().timestamp() + 30),
            input=new_pw,
        )
        _ok(remote, "logout")
        after = _run(remote, "secret", "list", "Acme")
        assert after.returncode == 2 and "custody login" in after.stderr


def _enrol(local: dict[str, str], username: str) -> pyotp.TOTP:
    """Enrol ``username`` in TOTP directly in the store; returns its generator."""
    store = Store.open(Settings.from_env(local))
    keys = store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    try:
        with store.context("operator:test", keys) as ctx:
            begin_totp_enrollment(ctx, get_user(ctx, username))
        with store.session() as s:
            user = s.scalars(select(User).where(User.username == username)).one()
            totp = pyotp.TOTP(keys.vault_cipher.open_text(user.totp_ct, _totp_location(user)))
        with store.context("operator:test", keys) as ctx:
            confirm_totp(ctx, get_user(ctx, username), totp.at(utcnow().timestamp() - 30))
    finally:
        store.engine.dispose()
    return totp


def _checkpointed(local: dict[str, str]) -> bool:
    """Whether the latest signed checkpoint covers the whole log (asked of the database, so
    no request to the server signs one)."""
    from vault.services import auditlog

    store = Store.open(Settings.from_env(local))
    try:
        with store.read_session() as session, session.begin():
            latest = auditlog.latest_checkpoint(session)
            return latest is not None and latest.size == auditlog.head(session).size
    finally:
        store.engine.dispose()


def test_audit_against_server(cli_env: dict[str, str], tmp_path: Path) -> None:
    import time

    from tests.cli.test_audit import _truncate

    local = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    local.update(cli_env, CUSTODY_CONFIG_DIR=str(tmp_path / "auditor-config"))
    _ok(local, "init")
    _ok(local, "client", "add", "Acme")
    _ok(local, "client", "add", "Globex")
    _ok(local, "user", "add", "ann", "--role", "auditor", "--password-stdin", input=PW)
    _ok(
        local,
        "user",
        "add",
        "acme-owner",
        "--role",
        "client",
        "--client",
        "Acme",
        "--password-stdin",
        input=PW,
    )
    ann, owner = _enrol(local, "ann"), _enrol(local, "acme-owner")
    key = _ok(local, "audit", "key").strip()

    server_env = dict(cli_env, CUSTODY_CHECKPOINT_EVENTS="2", CUSTODY_CHECKPOINT_SECONDS="3600")
    with uvicorn_server(server_env) as url:
        remote = dict(local, CUSTODY_SERVER=url)
        # the server signed a checkpoint right after its unseal at start (before anyone asked)
        deadline = time.monotonic() + 20
        while not _checkpointed(local) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _checkpointed(local)
        _ok(remote, "login", "-u", "ann", "--password-stdin", "--totp", ann.now(), input=PW)
        assert _ok(remote, "audit", "key").strip() == key

        state = tmp_path / "ann-watch.json"
        first = _ok(remote, "audit", "watch", "--state", str(state), "--key", key)
        assert "pinned the log key" in first
        _ok(local, "client", "add", "Initech")
        _ok(local, "client", "add", "Umbrella")  # two events: the checkpointer's N
        deadline = time.monotonic() + 20
        while not _checkpointed(local) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _checkpointed(local), "the checkpointer did not sign after N events"
        assert "consistent: the log grew" in _ok(remote, "audit", "watch", "--state", str(state))

        whole = tmp_path / "whole.jsonl"
        _ok(remote, "audit", "export", "--out", str(whole))
        verified = json.loads(_ok(local, "audit", "verify", str(whole), "--key", key, "--json"))
        assert verified["view"] == "whole" and verified["checkpoints"] >= 2
        inclusion = _run(remote, "audit", "proof", "inclusion", "1", "--verify", "--key", key)
        assert inclusion.returncode == 0 and "verified" in inclusion.stderr, inclusion.stderr

        # a client contact: its own events, verifiable, nothing of Globex
        contact = dict(remote, CUSTODY_CONFIG_DIR=str(tmp_path / "owner-config"))
        _ok(
            contact,
            "login",
            "-u",
            "acme-owner",
            "--password-stdin",
            "--totp",
            owner.now(),
            input=PW,
        )
        acme_id = json.loads(_ok(contact, "client", "show", "Acme", "--json"))["id"]
        mine = json.loads(_ok(contact, "audit", "log", "--json"))["entries"]
        assert mine and {e["event"]["client_id"] for e in mine} == {acme_id}
        theirs = _run(contact, "audit", "log", "--client", "Globex")
        assert theirs.returncode == 2 and "no client" in theirs.stderr
        own = tmp_path / "acme.jsonl"
        _ok(contact, "audit", "export", "--out", str(own))
        report = json.loads(_ok(local, "audit", "verify", str(own), "--key", key, "--json"))
        assert report["view"] == "filtered" and report["events"] == len(mine)

        # the operator cuts the log back: the auditor's next watch says so, with evidence
        saved = json.loads(state.read_text())["checkpoint"]
        _truncate(3)
        caught = _run(remote, "audit", "watch", "--state", str(state))
        assert caught.returncode == 1, caught.stderr
        assert "truncated or rolled back" in caught.stderr and saved in caught.stdout


def test_key_commands_against_server(cli_env: dict[str, str], tmp_path: Path) -> None:
    """An admin lists and rotates the vault's keys through the server; the local store sees
    the same keys afterwards."""
    local = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    local.update(cli_env, CUSTODY_CONFIG_DIR=str(tmp_path / "admin-config"))
    _ok(local, "init")
    _ok(local, "client", "add", "Acme")
    _ok(local, "user", "add", "root", "--role", "admin", "--password-stdin", input=PW)
    root = _enrol(local, "root")
    with uvicorn_server(cli_env) as url:
        remote = dict(local, CUSTODY_SERVER=url)
        _ok(remote, "login", "-u", "root", "--password-stdin", "--totp", root.now(), input=PW)
        before = json.loads(_ok(remote, "key", "list", "--json"))
        assert sorted(k["purpose"] for k in before) == ["identity", "log"]
        rotated = json.loads(_ok(remote, "key", "rotate", "client", "Acme", "--json"))
        assert rotated["what"] == "client-key" and rotated["client"] == "Acme"
        assert "public" in _ok(remote, "key", "rotate", "log")
        after = json.loads(_ok(remote, "key", "list", "--json"))
        missing = _run(remote, "key", "rotate", "client", "Nobody")
        assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    retired = [k["purpose"] for k in after if k["retired_at"] is not None]
    assert len(after) == 3 and retired == ["log"]
    assert [k["id"] for k in json.loads(_ok(local, "key", "list", "--json"))] == [
        k["id"] for k in after
    ]
