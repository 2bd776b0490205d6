"""The local vault agent: unsealed once, answers this user's CLI over a private socket."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Vault
from vault.agent import AgentUnavailable, call, socket_path
from vault.agent_server import serve
from vault.db.models import AuditEvent
from vault.errors import Conflict, NotFound
from vault.services import clients, secrets


@contextmanager
def serving(path: str, vault: Vault) -> Iterator[str]:
    """An agent for ``vault`` on ``path``, in a thread, for the length of the block."""
    started, stop = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=serve,
        args=(path, vault.store, vault.keys),
        kwargs={"ready": started.set, "stop": stop},
        daemon=True,
    )
    thread.start()
    assert started.wait(10)
    try:
        yield path
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def agent(vault: Vault, tmp_path: Path) -> Iterator[str]:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="hunter2", username="admin")
    with serving(socket_path(tmp_path / "home"), vault) as path:
        yield path
    assert not os.path.exists(path), "the socket is removed when the agent stops"


def _cli_beside_the_agent(monkeypatch: pytest.MonkeyPatch, agent: str, vault: Vault) -> None:
    """The CLI's environment on the vault's host with the vault running: the agent's data
    directory and the database, and no unseal passphrase anywhere - so a command that
    succeeds had the agent do what needs the keys."""
    monkeypatch.setenv("CUSTODY_HOME", os.path.dirname(agent))
    monkeypatch.setenv("CUSTODY_DATABASE_URL", vault.settings.database_url)
    for name in ("CUSTODY_UNSEAL_PASSPHRASE", "CUSTODY_UNSEAL_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_read_through_agent_is_audited(agent: str, vault: Vault) -> None:
    assert call(agent, "ping")["recipient"].startswith("age1")
    got = call(agent, "secret.read", {"client": "acme", "title": "router", "reason": "T-1"})
    assert (got["value"], got["username"], got["version"]) == ("hunter2", "admin", 1)
    with vault.store.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "secret.read")).one()
    assert event.actor.startswith("operator:") and event.detail["reason"] == "T-1"


def test_errors_come_back_typed(agent: str) -> None:
    with pytest.raises(NotFound, match="no secret titled 'Nope'"):
        call(agent, "secret.read", {"client": "Acme", "title": "Nope"})


def test_malformed_requests_refused_and_agent_survives(agent: str) -> None:
    for raw in (b"not json\n", b'{"op": "secret.delete_everything"}\n', b'{"args": 5}\n'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(agent)
            sock.sendall(raw)
            reply = json.loads(sock.makefile("rb").readline())
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_input"
    assert call(agent, "ping")


def test_socket_is_private(agent: str) -> None:
    assert oct(os.stat(agent).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.dirname(agent)).st_mode & 0o777) == "0o700"


def _as_nobody(agent: str) -> str:
    """Try a read from a forked child running as user 'nobody'; return what happened."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become 'nobody' and try
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                result = repr(call(agent, "secret.read", {"client": "Acme", "title": "Router"}))
            except AgentUnavailable:
                result = "unavailable"
            except Exception as exc:  # noqa: BLE001
                result = f"refused:{type(exc).__name__}"
            os.write(write, result.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    outcome = os.read(read, 4096).decode()
    os.close(read)
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_other_local_user_cannot_reach_the_socket(agent: str) -> None:
    outcome = _as_nobody(agent)
    assert "hunter2" not in outcome and outcome == "unavailable"  # the 0700 directory


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_peer_credentials_checked_even_if_permissions_slip(agent: str, vault: Vault) -> None:
    # Someone loosened the permissions (a traversable directory, a world-writable socket):
    # the agent itself still refuses another uid, by its peer credentials.
    import shutil
    import tempfile

    home = tempfile.mkdtemp(prefix="custody-agent-")
    os.chmod(home, 0o755)  # noqa: S103 - the point of the test
    try:
        with serving(socket_path(home), vault) as path:
            os.chmod(home, 0o755)  # noqa: S103 - the agent made it 0700 again
            os.chmod(path, 0o666)  # noqa: S103
            outcome = _as_nobody(path)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert "hunter2" not in outcome and outcome == "refused:Forbidden"


def test_second_agent_on_same_socket_refused(agent: str, vault: Vault) -> None:
    with pytest.raises(Conflict, match="already running"):
        serve(agent, vault.store, vault.keys, stop=threading.Event())  # type: ignore[arg-type]


def test_stale_socket_is_replaced(vault: Vault, tmp_path: Path) -> None:
    path = socket_path(tmp_path / "home")
    os.makedirs(os.path.dirname(path), mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: an agent that died
    with serving(path, vault):
        assert call(path, "ping")


def test_cli_fast_path_uses_agent(
    agent: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    monkeypatch.setenv("CUSTODY_HOME", os.path.dirname(agent))
    # A wrong database URL proves the answer came from the agent, not a direct read.
    monkeypatch.setenv("CUSTODY_DATABASE_URL", "sqlite:////nonexistent/never.db")
    assert main(["secret", "get", "Acme", "Router"]) == 0
    assert capsys.readouterr().out == "hunter2\n"
    assert main(["secret", "get", "Acme", "Router", "--field", "username"]) == 0
    assert capsys.readouterr().out == "admin\n"
    assert main(["secret", "get", "Acme", "Missing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("custody: error:") and "Missing" in err


def test_export_through_the_agent(
    agent: str,
    vault: Vault,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`custody export` with the vault running: the agent writes the bundle into the private
    file the CLI made; the bundle opens with the client's identity and its manifest verifies."""
    from cli.main import main
    from vault.crypto import age
    from vault.formats.bundle import split_manifest

    identity = age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_recipient(ctx, "Acme", str(identity.recipient))
    monkeypatch.setenv("CUSTODY_HOME", os.path.dirname(agent))
    # A wrong database URL proves the agent did the work, not this process.
    monkeypatch.setenv("CUSTODY_DATABASE_URL", "sqlite:////nonexistent/never.db")
    out = tmp_path / "acme.age"
    assert main(["export", "Acme", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["secrets"] == 1
    assert out.stat().st_mode & 0o777 == 0o600
    content = json.loads(age.decrypt(out.read_bytes(), [identity]))
    assert [s["title"] for s in content["secrets"]] == ["Router"]
    manifest = (tmp_path / "acme.age.manifest").read_text()
    assert split_manifest(manifest)[0].startswith("custody-export-manifest/v1")
    assert not list(tmp_path.glob(".acme.age.*.part"))
    # The agent opens only an existing regular file given by absolute name.
    for bad in ("relative.age", str(tmp_path / "missing.age")):
        with pytest.raises(Exception, match="path|cannot open"):
            call(agent, "client.export", {"client": "Acme", "path": bad})
    link = tmp_path / "link.age"
    link.symlink_to(tmp_path / "target.age")
    (tmp_path / "target.age").write_bytes(b"")
    with pytest.raises(Exception, match="cannot open"):
        call(agent, "client.export", {"client": "Acme", "path": str(link)})
    assert (tmp_path / "target.age").read_bytes() == b""


def test_client_and_secret_add_go_through_the_agent_without_the_passphrase(
    agent: str,
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the vault running, `custody client add`, `recipient add/remove`, `secret add` and
    `vendor/domain/asset add` ask the agent, which holds the keys, instead of asking for the
    passphrase a second time."""
    import io

    from cli.main import main

    _cli_beside_the_agent(monkeypatch, agent, vault)
    # No passphrase anywhere and no terminal to ask on: without the agent the command fails.
    monkeypatch.setenv("CUSTODY_NO_AGENT", "1")
    assert main(["client", "add", "Beta"]) == 2
    assert "passphrase needed" in capsys.readouterr().err
    monkeypatch.delenv("CUSTODY_NO_AGENT")

    assert main(["client", "add", "Beta", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Beta"
    monkeypatch.setattr("sys.stdin", io.StringIO("n4s-root-pass\n"))
    assert (
        main(
            ["secret", "add", "Beta", "--title", "NAS", "--username", "root", "--password-stdin"]
            + ["--exclusive", "--tag", "storage"]
        )
        == 0
    )
    assert capsys.readouterr().out == "added secret 'NAS'\n"
    assert main(["secret", "get", "Beta", "NAS"]) == 0
    assert capsys.readouterr().out == "n4s-root-pass\n"
    with vault.store.session() as s:
        events = s.execute(
            select(AuditEvent.action, AuditEvent.actor).where(
                AuditEvent.action.in_(["client.add", "secret.add"])
            )
        ).all()
    assert {action for action, _ in events} >= {"client.add", "secret.add"}
    assert all(actor.startswith("operator:") for _, actor in events)
    with vault.ctx() as ctx:
        nas = secrets.get_secret_record(ctx, clients.get_client(ctx, "Beta"), "NAS")
        assert nas.exclusive and not nas.sensitive and not nas.rotate_after_use
    assert main(["secret", "get", "Beta", "NAS", "--field", "username"]) == 0
    assert capsys.readouterr().out == "root\n"

    assert (
        main(
            ["domain", "add", "Beta", "beta.example", "--registrar", "Gandi"]
            + ["--expires-on", "2027-03-01", "--notes", "auth code in the safe", "--json"]
        )
        == 0
    )
    domain = json.loads(capsys.readouterr().out)
    assert domain["name"] == "beta.example" and domain["registrar"] == "Gandi"
    assert domain["expires_on"] == "2027-03-01" and domain["created_vendors"] == ["Gandi"]
    assert main(["asset", "add", "Beta", "NAS box", "--kind", "server"]) == 0
    assert capsys.readouterr().out == "added asset 'NAS box'\n"

    from vault.crypto import age

    holder = str(age.X25519Identity.generate().recipient)
    assert main(["recipient", "add", "Beta", holder, "--label", "owner laptop"]) == 0
    assert capsys.readouterr().out == f"added recipient {holder}\n"
    assert main(["recipient", "remove", "Beta", "owner laptop", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": holder, "left": 0}

    # Refusals come back as one line and exit 2, as without the agent.
    assert main(["client", "add", "Beta"]) == 2
    assert "already exists" in capsys.readouterr().err
    # The agent checks what it is sent: a value that is not text is refused by field.
    with pytest.raises(Exception, match="value must be text"):
        call(agent, "secret.add", {"client": "Beta", "title": "X", "value": 5})
    with pytest.raises(Exception, match="recipients must be a list"):
        call(agent, "client.add", {"name": "Gamma", "recipients": "age1..."})
    with pytest.raises(Exception, match="values must map"):
        call(
            agent, "inventory.add", {"kind": "asset", "client": "Beta", "name": "X", "values": [1]}
        )


def test_checkout_checkin_and_totp_go_through_the_agent_without_the_passphrase(
    agent: str,
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the vault running, `custody secret checkout/checkin/totp` ask the agent instead
    of the passphrase; the lease and its audit events are the same as without it."""
    import io

    from cli.main import main
    from vault.db.models import Lease

    with vault.ctx() as ctx:
        secrets.add_secret(
            ctx, "Acme", title="Admin", value="old-pass", rotate_after_use=True, exclusive=True
        )
        secrets.add_secret(ctx, "Acme", title="M365 2FA", value="JBSWY3DPEHPK3PXP", kind="totp")
    _cli_beside_the_agent(monkeypatch, agent, vault)
    monkeypatch.setenv("CUSTODY_NO_AGENT", "1")  # without the agent: no passphrase, exit 2
    assert main(["secret", "checkout", "Acme", "Router", "--reason", "x"]) == 2
    assert "passphrase needed" in capsys.readouterr().err
    monkeypatch.delenv("CUSTODY_NO_AGENT")

    assert main(["secret", "checkout", "Acme", "Router", "--reason", "ticket 12"]) == 0
    out, err = capsys.readouterr()
    assert out == "hunter2\n" and err.startswith("lease ")
    lease_id = err.split()[1]
    assert main(["secret", "checkin", lease_id]) == 0
    assert capsys.readouterr().out == f"checked in {lease_id}\n"

    assert main(["secret", "checkout", "Acme", "Admin", "--ticket", "T-7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["value"] == "old-pass" and data["lease"]["expires_at"].endswith("+00:00")
    # a second exclusive check-out is refused as without the agent: one line, exit 2
    assert main(["secret", "checkout", "Acme", "Admin", "--reason", "again"]) == 2
    assert "checked out by" in capsys.readouterr().err
    assert main(["secret", "checkin", data["lease"]["id"]]) == 2  # must be rotated
    assert "rotated" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("password1\n"))
    assert main(["secret", "checkin", data["lease"]["id"], "--password-stdin"]) == 2
    assert "weak" in capsys.readouterr().err
    assert main(["secret", "checkin", data["lease"]["id"], "--generate", "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["new_version"] == 2 and len(back["generated_value"]) >= 20

    assert main(["secret", "totp", "Acme", "M365 2FA"]) == 0
    code = capsys.readouterr().out.strip()
    assert len(code) == 6 and code.isdigit()

    with vault.store.session() as s:
        leases = s.scalars(select(Lease).order_by(Lease.created_at)).all()
        actions = s.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("secret.%"))
        ).all()
    assert [lease.reason or lease.ticket for lease in leases] == ["ticket 12", "T-7"]
    assert all(lease.released_at is not None for lease in leases)
    assert actions.count("secret.checkout") == 2 and actions.count("secret.checkin") == 2
    assert "secret.totp" in actions
    with pytest.raises(Exception, match="ttl must be a whole number"):
        call(agent, "secret.checkout", {"client": "Acme", "title": "Router", "ttl": "1h"})

    # an update with a new value (sealed by the agent's keys); fields not given stay
    monkeypatch.setattr("sys.stdin", io.StringIO("n3w-r0uter-pass\n"))
    assert (
        main(
            ["secret", "update", "Acme", "Router", "--password-stdin", "--title", "Core router"]
            + ["--tag", "network", "--exclusive", "--json"]
        )
        == 0
    )
    updated = json.loads(capsys.readouterr().out)
    assert updated["title"] == "Core router" and updated["version"] == 2
    assert updated["exclusive"] and updated["tags"] == ["network"]
    assert main(["secret", "get", "Acme", "Core router", "--field", "username"]) == 0
    assert capsys.readouterr().out == "admin\n"  # not given: unchanged
    assert main(["secret", "get", "Acme", "Core router"]) == 0
    assert capsys.readouterr().out == "n3w-r0uter-pass\n"
    with pytest.raises(Exception, match="exclusive must be true, false or null"):
        call(agent, "secret.update", {"client": "Acme", "title": "Core router", "exclusive": 1})

    # vendors, domains and assets: update (notes are sealed) and show (the read is recorded)
    assert main(["domain", "add", "Acme", "acme.example", "--notes", "auth code A"]) == 0
    capsys.readouterr()
    assert (
        main(
            ["domain", "update", "Acme", "acme.example", "--notes", "auth code B"]
            + ["--dns-host", "Cloudflare", "--name", "acme-dental.example"]
        )
        == 0
    )
    assert capsys.readouterr().out == "updated domain 'acme-dental.example'\n"
    assert main(["domain", "show", "Acme", "acme-dental.example", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["notes"] == "auth code B" and shown["dns_host"] == "Cloudflare"
    assert main(["domain", "list", "Acme", "--json"]) == 0
    assert "auth code" not in capsys.readouterr().out  # a listing shows no sealed field
    with pytest.raises(Exception, match="the name goes in name"):
        call(
            agent,
            "inventory.update",
            {"kind": "domain", "client": "Acme", "name": "x", "values": {"new_name": "y"}},
        )

    # the readiness report compares passwords: through the agent, in a read-only transaction
    assert main(["report", "readiness", "Acme", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["client"]["name"] == "Acme" and 0 <= report["score"] <= 100
    assert not report["skipped"]  # the passwords were compared: the agent holds the keys
    with vault.store.session() as s:
        recorded = s.scalars(
            select(AuditEvent.actor).where(AuditEvent.action == "report.readiness")
        ).all()
    assert len(recorded) == 1 and recorded[0].startswith("operator:")


def test_import_goes_through_the_agent_without_the_passphrase(
    agent: str,
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """With the vault running, `custody import` (dry run and the import itself) is done by the
    agent, which reads the file the caller names; a pass store is not (gpg is the caller's)."""
    from cli.main import main

    _cli_beside_the_agent(monkeypatch, agent, vault)
    export = tmp_path / "bitwarden.json"
    export.write_text(
        json.dumps(
            {
                "encrypted": False,
                "folders": [],
                "items": [
                    {
                        "type": 1,
                        "name": "Gandi",
                        "login": {
                            "username": "ops",
                            "password": "gandi-pass-1",
                            "uris": [{"uri": "https://gandi.net"}],
                        },
                    },
                    {"type": 1, "name": "Router", "login": {"password": "hunter2"}},
                ],
            }
        )
    )
    monkeypatch.chdir(tmp_path)  # a relative file name reaches the agent as an absolute one
    # No passphrase anywhere and no terminal to ask on: without the agent the command fails.
    monkeypatch.setenv("CUSTODY_NO_AGENT", "1")
    assert main(["import", "bitwarden", "bitwarden.json", "--client", "Acme", "--dry-run"]) == 2
    assert "passphrase needed" in capsys.readouterr().err
    monkeypatch.delenv("CUSTODY_NO_AGENT")
    assert main(["import", "bitwarden", "bitwarden.json", "--client", "Acme", "--dry-run"]) == 0
    assert "Would import" in capsys.readouterr().out
    with vault.ctx() as ctx:
        assert {s.title for s in secrets.list_secrets(ctx, "Acme")} == {"Router"}
    assert main(["import", "bitwarden", "bitwarden.json", "--client", "Acme", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    counts = report["counts"]
    assert (counts["entries"], counts["created"]) == (2, 1)  # the Router is there already
    assert "gandi-pass-1" not in json.dumps(report)
    assert main(["secret", "get", "Acme", "Gandi"]) == 0
    assert capsys.readouterr().out == "gandi-pass-1\n"
    with vault.store.session() as s:
        actors = s.scalars(
            select(AuditEvent.actor).where(AuditEvent.action == "secret.import")
        ).all()
    assert len(actors) == 1 and actors[0].startswith("operator:")
    # errors come back as one line, exit 2
    assert main(["import", "bitwarden", "missing.json", "--client", "Acme"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.json" in err, err
    # the agent checks what it is sent
    with pytest.raises(Exception, match="file must be an absolute file name"):
        call(agent, "secret.import", {"client": "Acme", "source": "csv", "file": "x.csv"})
    with pytest.raises(Exception, match="source must be one of"):
        call(agent, "secret.import", {"client": "Acme", "source": "pass", "file": "/tmp/x"})


def test_audit_commands_have_the_agent_sign_the_checkpoint_without_the_passphrase(
    agent: str,
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """With the vault running, `custody audit export/checkpoint` on its host need a fresh
    checkpoint (the log grew): the agent signs and stores it; the export verifies."""
    from cli.main import main
    from vault.services import auditlog

    _cli_beside_the_agent(monkeypatch, agent, vault)
    with vault.store.read_session() as s, s.begin():
        size = auditlog.head(s).size
        before = auditlog.latest_checkpoint(s)
        assert before is None or before.size < size  # the log grew: a checkpoint is due
    monkeypatch.setenv("CUSTODY_NO_AGENT", "1")
    out = tmp_path / "log.jsonl"
    assert main(["audit", "export", "--out", str(out)]) == 2  # no passphrase, no terminal
    assert "passphrase needed" in capsys.readouterr().err
    monkeypatch.delenv("CUSTODY_NO_AGENT")
    assert main(["audit", "export", "--out", str(out)]) == 0
    capsys.readouterr()
    with vault.store.read_session() as s, s.begin():
        latest = auditlog.latest_checkpoint(s)
        assert latest is not None and latest.size >= size
    assert main(["audit", "verify", str(out)]) == 0
    assert main(["audit", "checkpoint"]) == 0
    assert capsys.readouterr().out.count("\n") >= 3  # origin, size, root, signature


def test_escrow_run_and_other_export_formats_go_through_the_agent_without_the_passphrase(
    agent: str,
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """With the vault running, `custody escrow run` and `custody export --format
    kdbx|bitwarden-json|csv` are done by the agent: no passphrase asked, the files written
    into places the caller made (0600), and nothing left behind when the agent refuses."""
    from pykeepass import PyKeePass

    from cli.main import main
    from vault.crypto import age
    from vault.services import escrow

    identity = age.X25519Identity.generate()
    drops = tmp_path / "drops"
    drops.mkdir()
    with vault.ctx() as ctx:
        clients.add_recipient(ctx, "Acme", str(identity.recipient))
        escrow.add_destination(ctx, "Acme", directory=str(drops))
    _cli_beside_the_agent(monkeypatch, agent, vault)
    csv_out = tmp_path / "acme.csv"
    # No passphrase anywhere and no terminal to ask on: without the agent both fail.
    monkeypatch.setenv("CUSTODY_NO_AGENT", "1")
    assert main(["escrow", "run", "--client", "Acme", "--force"]) == 2
    assert main(["export", "Acme", "--format", "csv", "--out", str(csv_out)]) == 2
    assert "passphrase needed" in capsys.readouterr().err
    monkeypatch.delenv("CUSTODY_NO_AGENT")

    assert main(["escrow", "run", "--client", "Acme", "--force", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["bytes"] > 0
    [bundle] = [p for p in drops.rglob("*") if p.is_file() and not p.name.endswith(".manifest")]
    content = json.loads(age.decrypt(bundle.read_bytes(), [identity]))
    assert [s["value"] for s in content["secrets"]] == ["hunter2"]

    assert main(["export", "Acme", "--format", "csv", "--out", str(csv_out)]) == 0
    assert "hunter2" in csv_out.read_text() and csv_out.stat().st_mode & 0o777 == 0o600
    assert "hunter2" not in capsys.readouterr().out
    pass_file = tmp_path / "kdbx-pass"
    pass_file.write_text("kdbx pass 1")
    kdbx = tmp_path / "acme.kdbx"
    args = ["--format", "kdbx", "--out", str(kdbx), "--kdbx-passphrase-file", str(pass_file)]
    assert main(["export", "Acme", *args]) == 0
    entries = PyKeePass(str(kdbx), password="kdbx pass 1").entries
    assert [(e.title, e.password) for e in entries] == [("Router", "hunter2")]
    with vault.store.session() as s:
        formats = s.scalars(
            select(AuditEvent.detail["format"].as_string()).where(
                AuditEvent.action == "client.export"
            )
        ).all()
    assert {"csv", "kdbx"} <= set(formats)
    # a refusal: one line, exit 2, and no file (nor temporary file) left
    capsys.readouterr()
    assert main(["export", "Nobody", "--format", "csv", "--out", str(tmp_path / "n.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no client named 'Nobody'" in err
    assert not list(tmp_path.glob("*n.csv*"))
    with pytest.raises(Exception, match="keyfile must be base64"):
        call(
            agent,
            "client.export_portable",
            {"client": "Acme", "format": "kdbx", "path": str(kdbx), "keyfile": "%%"},
        )
