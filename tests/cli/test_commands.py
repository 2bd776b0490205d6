"""The `custody` commands end to end on each engine: output, --json, and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.cli.conftest import Result, Run
from vault.crypto import age


def ok(result: Result) -> Result:
    assert result.code == 0, result.err
    return result


def one_line_error(result: Result, *needles: str) -> str:
    assert result.code == 2, (result.out, result.err)
    lines = [ln for ln in result.err.splitlines() if ln.startswith("custody: error:")]
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.err
    return lines[0]


def test_init_refuses_second_vault(initialized: Run) -> None:
    one_line_error(initialized("init"), "already holds a vault")


def test_unseal_check(initialized: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(ok(initialized("unseal", "--check", "--json")).out)
    assert data["unsealed"] is True and data["recipient"].startswith("age1")
    monkeypatch.setenv("CUSTODY_UNSEAL_PASSPHRASE", "not the passphrase")
    one_line_error(initialized("unseal", "--check"), "wrong")


def test_unseal_from_file(
    initialized: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.conftest import TEST_PASSPHRASE

    path = tmp_path / "unseal.txt"
    path.write_text(TEST_PASSPHRASE + "\n")
    monkeypatch.delenv("CUSTODY_UNSEAL_PASSPHRASE")
    monkeypatch.setenv("CUSTODY_UNSEAL_FILE", str(path))
    ok(initialized("unseal", "--check"))


def test_client_secret_flow(initialized: Run) -> None:
    run = initialized
    escrow = age.X25519Identity.generate()
    ok(run("client", "add", "Acme", "--recipient", str(escrow.recipient)))
    ok(
        run(
            "secret",
            "add",
            "Acme",
            "--title",
            "Router admin",
            "--username",
            "admin",
            "--url",
            "https://10.0.0.1",
            "--tag",
            "network",
            "--password-stdin",
            input="hunter2\n",
        )
    )
    assert ok(run("secret", "get", "acme", "router admin")).out == "hunter2\n"
    listing = json.loads(ok(run("secret", "list", "Acme", "--json")).out)
    assert [s["title"] for s in listing] == ["Router admin"]
    assert "hunter2" not in json.dumps(listing)
    ok(run("secret", "update", "Acme", "Router admin", "--password-stdin", input="n3w\n"))
    got = json.loads(ok(run("secret", "get", "Acme", "Router admin", "--json")).out)
    assert (got["value"], got["version"], got["username"]) == ("n3w", 2, "admin")
    old = ok(run("secret", "get", "Acme", "Router admin", "--version", "1")).out
    assert old == "hunter2\n"
    history = json.loads(ok(run("secret", "history", "Acme", "Router admin", "--json")).out)
    assert [h["version"] for h in history] == [1, 2]
    shown = json.loads(ok(run("client", "show", "Acme", "--json")).out)
    assert shown["counts"]["secrets"] == 1 and len(shown["recipients"]) == 1


def test_value_never_taken_from_arguments(initialized: Run) -> None:
    ok(initialized("client", "add", "Acme"))
    result = initialized("secret", "add", "Acme", "--title", "T", "--value", "x")
    assert result.code == 2 and "No such option" in result.err


@pytest.mark.parametrize(
    "args,needle",
    [
        (("client", "show", "Nobody"), "no client named 'Nobody'"),
        (("secret", "get", "Acme", "Missing"), "no secret titled 'Missing'"),
        (("client", "add", "acme"), "already exists"),
        (("recipient", "add", "Acme", "age1garbage"), "recipient"),
        (("recipient", "add", "Acme", "ssh-rsa AAAAB3NzaC1yc2E"), "ssh-ed25519"),
        (("domain", "add", "Acme", "acme.example", "--expires-on", "tomorrow"), "expires_on"),
        (("asset", "add", "Acme", "Box", "--kind", "toaster"), "kind"),
        (("vendor", "add", "Acme", "X", "--owner", "third-party"), "owner_name"),
        (("secret", "link", "Acme", "Router", "--vendor", "Nope"), "vendor"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    initialized: Run, args: tuple[str, ...], needle: str
) -> None:
    ok(initialized("client", "add", "Acme"))
    ok(initialized("secret", "add", "Acme", "--title", "Router", "--password-stdin", input="x"))
    one_line_error(initialized(*args), needle)


def test_a_prompt_without_a_terminal_names_the_way_around_it(
    initialized: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each hidden prompt, with no terminal to ask on, fails with one line naming the option or
    variable that gives the value instead (not the unseal file for every one)."""
    ok(initialized("client", "add", "Acme"))
    one_line_error(
        initialized("secret", "add", "Acme", "--title", "Router"), "use --password-stdin"
    )
    locked = tmp_path / "escrow.age"
    identity = str(age.X25519Identity.generate()).encode()
    locked.write_bytes(age.encrypt(identity, [age.ScryptRecipient("pass 123456", work_factor=10)]))
    db = tmp_path / "none.db"
    db.write_bytes(b"")
    one_line_error(
        initialized("recover", "--db", str(db), "--identity", str(locked), "--client", "Acme"),
        "set CUSTODY_IDENTITY_PASSPHRASE_FILE",
    )
    monkeypatch.delenv("CUSTODY_UNSEAL_PASSPHRASE")
    one_line_error(initialized("unseal", "--check"), "(set CUSTODY_UNSEAL_FILE)")


def test_inventory_commands(initialized: Run) -> None:
    run = initialized
    ok(run("client", "add", "Acme"))
    out = json.loads(
        ok(
            run(
                "domain",
                "add",
                "Acme",
                "acme.example",
                "--registrar",
                "Gandi",
                "--expires-on",
                "2027-02-01",
                "--owner",
                "client",
                "--json",
            )
        ).out
    )
    assert out["registrar"] == "Gandi" and out["created_vendors"] == ["Gandi"]
    ok(
        run(
            "vendor",
            "update",
            "Acme",
            "Gandi",
            "--account-number",
            "ACC-1",
            "--twofa-location",
            "client-device",
        )
    )
    vendor = json.loads(ok(run("vendor", "show", "Acme", "Gandi", "--json")).out)
    assert vendor["account_number"] == "ACC-1" and vendor["category"] == "registrar"
    listed = ok(run("vendor", "list", "Acme", "--json")).out
    assert "ACC-1" not in listed  # sealed fields stay out of listings
    ok(run("asset", "add", "Acme", "Core switch", "--kind", "switch", "--location", "Rack 1"))
    ok(run("secret", "add", "Acme", "--title", "Switch admin", "--password-stdin", input="pw"))
    ok(run("secret", "link", "Acme", "Switch admin", "--asset", "Core switch"))
    assert json.loads(ok(run("asset", "list", "Acme", "--json")).out)[0]["kind"] == "switch"


def test_init_with_shares(
    run: Run, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CUSTODY_UNSEAL_PASSPHRASE")
    data = json.loads(ok(run("init", "--shares", "5", "--threshold", "3", "--json")).out)
    shares = data["shares"]
    assert len(shares) == 5
    unseal_file = tmp_path / "shares.txt"
    monkeypatch.setenv("CUSTODY_UNSEAL_FILE", str(unseal_file))
    unseal_file.write_text("\n".join([shares[4], shares[1], shares[2]]))
    ok(run("unseal", "--check"))
    unseal_file.write_text("\n".join(shares[:2]))
    one_line_error(run("unseal", "--check"))


def test_schema_guard(initialized: Run, cli_env: dict[str, str]) -> None:
    from sqlalchemy import text

    from vault.db.engine import make_engine

    engine = make_engine(cli_env["CUSTODY_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    one_line_error(initialized("client", "list"), "newer than this Custody")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    one_line_error(initialized("client", "list"), "custody db upgrade")
    engine.dispose()


def test_db_upgrade_creates_and_is_idempotent(run: Run) -> None:
    assert "upgraded" in ok(run("db", "upgrade")).out
    assert "already" in ok(run("db", "upgrade")).out
    status = json.loads(ok(run("db", "status", "--json")).out)
    assert status["up_to_date"] is True


def test_commands_before_init(run: Run, cli_env: dict[str, str]) -> None:
    if cli_env["CUSTODY_DATABASE_URL"].startswith("sqlite"):
        one_line_error(run("client", "list"), "custody init")
    else:
        one_line_error(run("client", "list"), "custody db upgrade")


def test_weak_passphrase_refused(
    run: Run, monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]
) -> None:
    monkeypatch.setenv("CUSTODY_UNSEAL_PASSPHRASE", "short")
    one_line_error(run("init"), "at least 12")


def test_failed_command_writes_nothing(initialized: Run, cli_env: dict[str, str]) -> None:
    from vault.db.engine import make_engine
    from vault.db.models import AuditEvent, Client

    def counts() -> tuple[int, int]:
        engine = make_engine(cli_env["CUSTODY_DATABASE_URL"])
        with engine.connect() as conn:
            found = (
                conn.scalar(select(func.count()).select_from(Client)) or 0,
                conn.scalar(select(func.count()).select_from(AuditEvent)) or 0,
            )
        engine.dispose()
        return found

    ok(initialized("client", "add", "Acme"))
    before = counts()
    one_line_error(initialized("client", "add", "Globex", "--recipient", "age1bad"))
    assert counts() == before and before[0] == 1


def test_corrupted_ciphertext_exits_2(initialized: Run, cli_env: dict[str, str]) -> None:
    from sqlalchemy import update

    from vault.db.engine import make_engine
    from vault.db.models import SecretVersion

    ok(initialized("client", "add", "Acme"))
    ok(
        initialized(
            "secret", "add", "Acme", "--title", "Router", "--password-stdin", input="hunter2"
        )
    )
    engine = make_engine(cli_env["CUSTODY_DATABASE_URL"])
    with engine.begin() as conn:
        blob = bytearray(conn.scalar(select(SecretVersion.value_ct)))
        blob[-3] ^= 0x40
        conn.execute(update(SecretVersion).values(value_ct=bytes(blob)))
    engine.dispose()
    result = initialized("secret", "get", "Acme", "Router")
    line = one_line_error(result, "does not authenticate")
    assert "hunter2" not in line and result.out == ""


def test_recover_progress_is_quiet_without_terminal(
    initialized: Run, cli_env: dict[str, str], tmp_path: Path
) -> None:
    escrow = age.X25519Identity.generate()
    identity = tmp_path / "id.txt"
    identity.write_text(f"{escrow}\n")
    ok(initialized("client", "add", "Acme", "--recipient", str(escrow.recipient)))
    ok(
        initialized(
            "secret", "add", "Acme", "--title", "Router", "--password-stdin", input="hunter2"
        )
    )
    db = cli_env["CUSTODY_DATABASE_URL"]
    result = ok(initialized("recover", "--db", db, "--identity", str(identity), "--client", "Acme"))
    assert "hunter2" in result.out and result.err == ""


def test_report_readiness(initialized: Run) -> None:
    ok(initialized("client", "add", "Acme"))
    ok(initialized("vendor", "add", "Acme", "Gandi", "--owner", "consultancy"))
    out = ok(initialized("report", "readiness", "Acme")).out
    assert "takeover readiness" in out and "registered to the consultancy" in out
    data = json.loads(ok(initialized("report", "readiness", "Acme", "--json")).out)
    codes = {f["code"] for f in data["findings"]}
    assert {"no-escrow-recipient", "owned-by-consultancy"} <= codes and data["score"] < 100
    one_line_error(initialized("report", "readiness", "Nobody"), "Nobody")


def test_takeover_hand_over_and_notices(initialized: Run) -> None:
    ok(initialized("client", "add", "Acme"))
    ok(initialized("takeover", "notice", "Acme", "0"))
    out = ok(initialized("takeover", "start", "Acme", "--yes")).out
    assert "owned-by-client" in out
    status = json.loads(ok(initialized("takeover", "status", "Acme", "--json")).out)
    assert status["state"] == "owned-by-client" and status["owned_at"]
    notices = json.loads(ok(initialized("notice", "list", "--json")).out)
    assert any("now owns its records" in n["message"] for n in notices)
    ok(initialized("notice", "ack", notices[0]["id"]))
    one_line_error(initialized("takeover", "start", "Acme", "--yes"), "already owns")
    one_line_error(initialized("takeover", "cancel", "Acme"), "only the client")
