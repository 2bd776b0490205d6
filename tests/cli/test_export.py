"""`custody export` and the takeover kit's `verify` and `offline`, in-process and over a server."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Result, Run
from vault.crypto import age

VALUE = "cli-export-canary-Pa55"


@pytest.fixture
def acme(initialized: Run, tmp_path: Path) -> tuple[Run, Path]:
    """A vault with client Acme (one secret, one vendor); returns the client's identity file."""
    run = initialized
    identity = age.X25519Identity.generate()
    identity_file = tmp_path / "acme-identity.txt"
    identity_file.write_text(f"# Acme's escrow key\n{identity}\n")
    assert run("client", "add", "Acme").code == 0
    assert run("recipient", "add", "Acme", str(identity.recipient)).code == 0
    added = run("secret", "add", "Acme", "--title", "Router", "--password-stdin", input=VALUE)
    assert added.code == 0, added.err
    assert run("vendor", "add", "Acme", "Gandi", "--account-number", "ACC-77").code == 0
    return run, identity_file


def _key(run: Run) -> str:
    result = run("audit", "key")
    assert result.code == 0, result.err
    return result.out.strip()


def test_export_then_verify(acme: tuple[Run, Path], tmp_path: Path) -> None:
    run, identity = acme
    bundle = tmp_path / "out" / "acme.age"
    bundle.parent.mkdir()
    done = run("export", "Acme", "--out", str(bundle), "--json")
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert summary["counts"]["secrets"] == 1 and summary["counts"]["vendors"] == 1
    assert VALUE not in done.out + done.err
    manifest = tmp_path / "out" / "acme.age.manifest"
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["acme.age", "acme.age.manifest"]
    assert VALUE.encode() not in bundle.read_bytes()

    key = _key(run)
    ok = run("takeover", "verify", str(bundle), "--identity", str(identity), "--key", key)
    assert ok.code == 0, ok.err
    assert ok.out.startswith("OK: acme.age is the online export of Acme")
    assert "(pinned key)" in ok.out and ok.err == ""
    unpinned = run("takeover", "verify", str(bundle), "--identity", str(identity), "--json")
    assert unpinned.code == 0 and json.loads(unpinned.out)["key_pinned"] is False
    assert "warning: the log key was taken from the bundle itself" in unpinned.err

    # a changed manifest: exit 1, one line naming the check
    manifest.write_text(manifest.read_text().replace("count vendors 1", "count vendors 2"))
    bad = run("takeover", "verify", str(bundle), "--identity", str(identity), "--key", key)
    assert bad.code == 1
    assert bad.err.strip().splitlines() == [
        "custody: FAILED: acme.age: signature: the manifest is not signed by "
        + key.split("+")[0]
        + "+"
        + key.split("+")[1]
    ]
    # bad input: exit 2, one line
    manifest.unlink()
    missing = run("takeover", "verify", str(bundle), "--identity", str(identity))
    assert missing.code == 2 and missing.err.count("\n") == 1
    assert "no manifest found" in missing.err
    junk = tmp_path / "junk.txt"
    junk.write_text("not a key\n")
    wrong = run("takeover", "verify", str(bundle), "--identity", str(junk))
    assert wrong.code == 2 and wrong.err.startswith("custody: error: identity file line 1")


def test_export_refusals_are_one_line(acme: tuple[Run, Path], tmp_path: Path) -> None:
    run, _ = acme
    nowhere = run("export", "Acme", "--out", str(tmp_path / "no" / "such" / "dir.age"))
    assert nowhere.code == 2 and nowhere.err.count("\n") == 1
    unknown = run("export", "Nobody", "--out", str(tmp_path / "x.age"))
    assert unknown.code == 2 and "no client named" in unknown.err
    assert not (tmp_path / "x.age").exists() and list(tmp_path.glob(".x.age.*")) == []
    assert run("client", "add", "Lonely").code == 0
    lonely = run("export", "Lonely", "--out", str(tmp_path / "l.age"))
    assert lonely.code == 2 and "no escrow recipient" in lonely.err
    try:
        import vault.formats.writers  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        csv = run("export", "Acme", "--out", str(tmp_path / "a.csv"), "--format", "csv")
        assert csv.code == 2 and "not available" in csv.err
    choice = run("export", "Acme", "--out", str(tmp_path / "a.x"), "--format", "xml")
    assert choice.code == 2


def _sqlite_copy(tmp_path: Path) -> Path:
    source = sqlite3.connect(os.environ["CUSTODY_DATABASE_URL"].split("///", 1)[1])
    dest = tmp_path / "backup.db"
    target = sqlite3.connect(dest)
    source.backup(target)
    source.close()
    target.close()
    return dest


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_offline_bundle_from_a_backup(
    acme: tuple[Run, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, identity = acme
    assert run("audit", "checkpoint").code == 0  # the copy then holds a signed checkpoint
    key = _key(run)
    backup = _sqlite_copy(tmp_path)
    # no passphrase, no vault: only the copy and the client's identity
    for name in ("CUSTODY_UNSEAL_PASSPHRASE", "CUSTODY_DATABASE_URL", "CUSTODY_HOME"):
        monkeypatch.delenv(name)
    bundle = tmp_path / "offline.age"
    made = run(
        "takeover",
        "offline",
        "--db",
        str(backup),
        "--identity",
        str(identity),
        "--client",
        "acme",
        "--out",
        str(bundle),
    )
    assert made.code == 0, made.err
    assert "manifest (unsigned)" in made.out
    content = json.loads(
        age.decrypt(bundle.read_bytes(), age.parse_identities(identity.read_text()))
    )
    assert content["mode"] == "offline" and content["secrets"][0]["value"] == VALUE
    refused = run("takeover", "verify", str(bundle), "--identity", str(identity), "--key", key)
    assert refused.code == 1 and "--allow-unsigned" in refused.err
    accepted = run(
        "takeover",
        "verify",
        str(bundle),
        "--identity",
        str(identity),
        "--key",
        key,
        "--allow-unsigned",
    )
    assert accepted.code == 0, accepted.err
    assert "UNSIGNED (offline bundle" in accepted.out
    assert "log checkpoint:" in accepted.out and "nothing proves its origin" in accepted.err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_export_over_the_server_as_the_client(cli_env: dict[str, str], tmp_path: Path) -> None:
    from tests.cli.test_remote import PW, _enrol, _ok, _run
    from tests.server import uvicorn_server

    local = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    local.update(cli_env, CUSTODY_CONFIG_DIR=str(tmp_path / "config"))
    identity = age.X25519Identity.generate()
    identity_file = tmp_path / "id.txt"
    identity_file.write_text(f"{identity}\n")
    _ok(local, "init")
    _ok(local, "client", "add", "Acme")
    _ok(local, "recipient", "add", "Acme", str(identity.recipient))
    _ok(local, "secret", "add", "Acme", "--title", "Router", "--password-stdin", input=VALUE)
    _ok(
        local,
        "user",
        "add",
        "ann",
        "--role",
        "client",
        "--client",
        "Acme",
        "--password-stdin",
        input=PW,
    )
    _ok(local, "user", "add", "carl", "--role", "consultant", "--password-stdin", input=PW)
    _ok(local, "grant", "add", "carl", "Acme")
    ann, carl = _enrol(local, "ann"), _enrol(local, "carl")
    key = _ok(local, "audit", "key").strip()
    with uvicorn_server(cli_env) as url:
        remote = dict(local, CUSTODY_SERVER=url)
        _ok(remote, "login", "-u", "carl", "--password-stdin", "--totp", carl.now(), input=PW)
        refused = _run(remote, "export", "Acme", "--out", str(tmp_path / "c.age"))
        assert refused.returncode == 2 and "may not" in refused.stderr
        assert not (tmp_path / "c.age").exists()
        _ok(remote, "logout")
        _ok(remote, "login", "-u", "ann", "--password-stdin", "--totp", ann.now(), input=PW)
        bundle = tmp_path / "acme.age"
        out = _ok(remote, "export", "Acme", "--out", str(bundle), "--history")
        assert "manifest ->" in out and VALUE not in out
    verified = subprocess.run(
        [sys.executable, "-m", "cli.main", "takeover", "verify", str(bundle)]
        + ["--identity", str(identity_file), "--key", key],
        env=local,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stderr
    assert "online export of Acme" in verified.stdout


def test_takeover_open_writes_the_runbook(acme: tuple[Run, Path], tmp_path: Path) -> None:
    run, identity = acme
    bundle = tmp_path / "acme.age"
    assert run("export", "Acme", "--out", str(bundle)).code == 0
    key = _key(run)
    opened = run(
        "takeover",
        "open",
        str(bundle),
        "--identity",
        str(identity),
        "--out",
        str(tmp_path / "kit"),
        "--key",
        key,
    )
    assert opened.code == 0, opened.err
    html = (tmp_path / "kit" / "runbook.html").read_text()
    markdown = (tmp_path / "kit" / "runbook.md").read_text()
    for text in (html, markdown):
        assert "Taking over your IT: Acme" in text and "ACC-77" in text and "Router" in text
        assert VALUE not in text
    assert "(the key you pinned)" in markdown
    assert stat.S_IMODE((tmp_path / "kit" / "runbook.md").stat().st_mode) == 0o600
    # a tampered manifest stops it (exit 1); without any manifest it warns and goes on
    manifest = tmp_path / "acme.age.manifest"
    manifest.write_text(manifest.read_text().replace("count secrets 1", "count secrets 9"))
    bad = run("takeover", "open", str(bundle), "--identity", str(identity), "--out", str(tmp_path))
    assert bad.code == 1 and "FAILED" in bad.err
    manifest.unlink()
    loose = run(
        "takeover", "open", str(bundle), "--identity", str(identity), "--out", str(tmp_path / "k2")
    )
    assert loose.code == 0 and "was not verified" in loose.err
    assert "was not checked" in (tmp_path / "k2" / "runbook.md").read_text()


def test_adopt_the_bundle_into_a_new_vault(
    acme: tuple[Run, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client leaves for another consultancy: its bundle sets it up again there."""
    run, identity = acme
    bundle = tmp_path / "acme.age"
    assert run("export", "Acme", "--out", str(bundle), "--history").code == 0
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path / "new-consultancy"))
    monkeypatch.delenv("CUSTODY_DATABASE_URL", raising=False)
    assert run("init").code == 0
    adopted = run("takeover", "adopt", str(bundle), "--identity", str(identity), "--json")
    assert adopted.code == 0, adopted.err
    counts = json.loads(adopted.out)["counts"]
    assert counts["secrets"] == 1 and counts["vendors"] == 1
    got = run("secret", "get", "Acme", "Router")
    assert got.code == 0 and got.out.strip() == VALUE
    again = run("takeover", "adopt", str(bundle), "--identity", str(identity))
    assert again.code == 2 and "already exists" in again.err


def _bundle_and_key(run: Run, tmp_path: Path, *extra: str) -> tuple[Path, str]:
    bundle = tmp_path / "acme.age"
    done = run("export", "Acme", "--out", str(bundle), *extra)
    assert done.code == 0, done.err
    return bundle, _key(run)


def _convert(run: Run, bundle: Path, identity: Path, fmt: str, out: Path, *extra: str) -> Result:
    """`custody takeover convert BUNDLE --identity ID --format FMT --out OUT [EXTRA...]`."""
    return run(
        "takeover",
        "convert",
        str(bundle),
        "--identity",
        str(identity),
        "--format",
        fmt,
        "--out",
        str(out),
        *extra,
    )


def test_takeover_convert_writes_a_keepass_file_from_the_bundle(
    acme: tuple[Run, Path], tmp_path: Path
) -> None:
    """The client moves into KeePass with its bundle and its own key: no vault, no server.
    The file holds every secret with its value, in the group the vault's own KDBX export
    uses, and only the client's KDBX passphrase opens it."""
    from pykeepass import PyKeePass

    run, identity = acme
    added = run(
        "secret",
        "add",
        "Acme",
        "--title",
        "Gandi",
        "--kind",
        "api-key",
        "--password-stdin",
        input="gandi-" + VALUE,
    )
    assert added.code == 0, added.err
    assert run("secret", "link", "Acme", "Gandi", "--vendor", "Gandi").code == 0
    bundle, key = _bundle_and_key(run, tmp_path)
    pass_file = tmp_path / "kdbx-pass"
    pass_file.write_text("kx convert pass\n")
    out = tmp_path / "moved" / "acme.kdbx"
    out.parent.mkdir()
    done = _convert(
        run,
        bundle,
        identity,
        "kdbx",
        out,
        "--kdbx-passphrase-file",
        str(pass_file),
        "--key",
        key,
        "--json",
    )
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert summary["entries"] == 2 and summary["format"] == "kdbx"
    assert summary["verification"]["key_pinned"] is True
    assert VALUE not in done.out + done.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["acme.kdbx"]  # no temporary file left
    kp = PyKeePass(str(out), password="kx convert pass")
    entries = {e.title: e for e in kp.entries}
    assert entries["Router"].password == VALUE
    assert entries["Gandi"].password == "gandi-" + VALUE
    assert entries["Gandi"].group.path == ["Vendors", "Gandi"]
    with pytest.raises(Exception):  # noqa: B017 - pykeepass's own error for a wrong key
        PyKeePass(str(out), password="not the passphrase")


def test_takeover_convert_to_plain_text_formats_warns(
    acme: tuple[Run, Path], tmp_path: Path
) -> None:
    run, identity = acme
    bundle, key = _bundle_and_key(run, tmp_path)
    csv_out = tmp_path / "acme.csv"
    done = _convert(run, bundle, identity, "csv", csv_out, "--key", key)
    assert done.code == 0, done.err
    assert done.out.startswith("1 entry of Acme -> ") and "key pinned" in done.out
    assert "plain text" in done.err and VALUE not in done.out + done.err
    assert VALUE in csv_out.read_text() and stat.S_IMODE(csv_out.stat().st_mode) == 0o600
    bw_out = tmp_path / "acme.json"
    done = _convert(run, bundle, identity, "bitwarden-json", bw_out)
    assert done.code == 0, done.err
    assert "pin the vault's key" in done.err  # no --key: the bundle's own key, and a warning
    items = json.loads(bw_out.read_text())["items"]
    assert [(i["name"], i["login"]["password"]) for i in items] == [("Router", VALUE)]


@pytest.mark.interop
def test_takeover_convert_kdbx_opens_in_keepassxc(acme: tuple[Run, Path], tmp_path: Path) -> None:
    """The converted file, opened by Debian's keepassxc-cli."""
    from tests.interop import require_tool

    kxc = require_tool("keepassxc-cli")
    run, identity = acme
    bundle, key = _bundle_and_key(run, tmp_path, "--history")
    pass_file = tmp_path / "kdbx-pass"
    pass_file.write_text("kx convert pass")
    out = tmp_path / "acme.kdbx"
    done = _convert(
        run, bundle, identity, "kdbx", out, "--kdbx-passphrase-file", str(pass_file), "--key", key
    )
    assert done.code == 0, done.err
    shown = subprocess.run(
        [kxc, "show", "-s", "-a", "Password", str(out), "Logins/Router"],
        input=b"kx convert pass\n",
        capture_output=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.decode().strip().splitlines()[-1] == VALUE


def test_takeover_convert_refusals_write_nothing(acme: tuple[Run, Path], tmp_path: Path) -> None:
    run, identity = acme
    bundle, key = _bundle_and_key(run, tmp_path)
    out = tmp_path / "acme.csv"
    out.write_text("kept\n")
    base = ["takeover", "convert", str(bundle), "--identity", str(identity), "--out", str(out)]

    def refused(*args: str) -> str:
        result = run(*base, *args)
        assert result.code in (1, 2) and result.err.count("\n") == 1, result
        assert VALUE not in result.out + result.err
        assert out.read_text() == "kept\n" and list(tmp_path.glob(".acme.csv.*")) == []
        return f"{result.code} {result.err}"

    keyfile = tmp_path / "k"
    keyfile.write_bytes(b"key")
    assert refused("--format", "csv", "--kdbx-keyfile", str(keyfile)).startswith("2 ")
    # KDBX with no passphrase given and no terminal to ask on: the option to use is named
    assert "--kdbx-passphrase-file" in refused("--format", "kdbx")
    other = tmp_path / "other.txt"
    other.write_text(f"{age.X25519Identity.generate()}\n")
    wrong = _convert(run, bundle, other, "csv", out)
    assert wrong.code == 1 and "not encrypted to any of the given identities" in wrong.err
    manifest = tmp_path / "acme.age.manifest"
    text = manifest.read_text()
    manifest.write_text(text.replace("count secrets 1", "count secrets 9"))
    assert refused("--format", "csv").startswith("1 custody: FAILED")
    manifest.unlink()  # converting asks for a verified bundle
    assert "manifest" in refused("--format", "csv")
    assert out.read_text() == "kept\n"


def test_an_encrypted_identity_is_asked_for_once(
    acme: tuple[Run, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`takeover open`, `convert` and `adopt` check the bundle, then use it: one passphrase
    prompt for the identity, not one per step."""
    import cli.commands.clients

    run, plain = acme
    bundle, key = _bundle_and_key(run, tmp_path)
    identity_text = plain.read_bytes()
    locked = tmp_path / "acme-escrow.age"
    locked.write_bytes(
        age.encrypt(identity_text, [age.ScryptRecipient("id pass 123456", work_factor=10)])
    )
    asked: list[str] = []

    def prompt(label: str, **_kw: object) -> str:
        asked.append(label)
        return "id pass 123456"

    monkeypatch.setattr(cli.commands.clients, "prompt_hidden", prompt)
    opened = run(
        "takeover",
        "open",
        str(bundle),
        "--identity",
        str(locked),
        "--out",
        str(tmp_path / "kit"),
        "--key",
        key,
    )
    assert opened.code == 0, opened.err
    assert asked == ["Passphrase for acme-escrow.age"]
    pass_file = tmp_path / "kdbx-pass"
    pass_file.write_text("kx pass")
    converted = _convert(
        run,
        bundle,
        locked,
        "kdbx",
        tmp_path / "a.kdbx",
        "--kdbx-passphrase-file",
        str(pass_file),
        "--key",
        key,
    )
    assert converted.code == 0, converted.err
    assert len(asked) == 2


def test_escrow_run_and_other_formats_on_the_local_store(
    acme: tuple[Run, Path], tmp_path: Path
) -> None:
    """With no vault running, `escrow run` and `export --format kdbx|csv` unseal here and run
    the same operations the agent would (`vault.agent_server.run_operation`)."""
    from pykeepass import PyKeePass

    run, identity = acme
    drops = tmp_path / "drops"
    drops.mkdir()
    assert run("escrow", "add", "Acme", "--dir", str(drops)).code == 0
    done = run("escrow", "run", "--client", "Acme", "--force", "--json")
    assert done.code == 0, done.err
    [result] = json.loads(done.out)
    assert result["ok"] is True and result["bytes"] > 0
    [bundle] = [p for p in drops.rglob("*.age")]
    content = json.loads(
        age.decrypt(bundle.read_bytes(), age.parse_identities(identity.read_text()))
    )
    assert [s["value"] for s in content["secrets"]] == [VALUE]

    keyfile = tmp_path / "acme.key"
    keyfile.write_bytes(b"a key file of the client's own")
    kdbx = tmp_path / "acme.kdbx"
    done = run(
        "export", "Acme", "--format", "kdbx", "--out", str(kdbx), "--kdbx-keyfile", str(keyfile)
    )
    assert done.code == 0, done.err
    assert stat.S_IMODE(kdbx.stat().st_mode) == 0o600
    entries = PyKeePass(str(kdbx), keyfile=str(keyfile)).entries
    assert [(e.title, e.password) for e in entries] == [("Router", VALUE)]
    csv_out = tmp_path / "acme.csv"
    done = run("export", "Acme", "--format", "csv", "--out", str(csv_out), "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["format"] == "csv" and VALUE not in done.out
    assert VALUE in csv_out.read_text() and stat.S_IMODE(csv_out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.glob(".acme.*")) == []
