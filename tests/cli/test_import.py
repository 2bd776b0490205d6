"""`custody import`: dry run, summary, JSON report, idempotency, KDBX passphrase file, and one
line with exit code 2 on a bad file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Run
from tests.cli.test_commands import ok, one_line_error
from vault.formats import writers
from vault.formats.items import PortableItem

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "import"


def test_import_bitwarden(initialized: Run) -> None:
    run = initialized
    ok(run("client", "add", "Acme"))
    source = str(VECTORS / "bitwarden-individual.json")
    dry = ok(run("import", "bitwarden", source, "--client", "Acme", "--dry-run"))
    assert "Would import" in dry.out and "secrets to create" in dry.out
    assert "gandi-pass" not in dry.out
    assert json.loads(ok(run("secret", "list", "Acme", "--json")).out) == []
    done = json.loads(ok(run("import", "bitwarden", source, "--client", "Acme", "--json")).out)
    assert done["counts"]["created"] == 6 and done["errors"] == []
    again = ok(run("import", "bitwarden", source, "--client", "Acme"))
    assert "already present" in again.out and "Not imported" in again.out
    titles = [s["title"] for s in json.loads(ok(run("secret", "list", "Acme", "--json")).out)]
    assert len(titles) == 6 and "Gandi TOTP" in titles
    got = ok(run("secret", "get", "Acme", "Gandi"))
    assert got.out == "gandi-pass-3\n"


def test_import_bad_files_exit_2(initialized: Run, tmp_path: Path) -> None:
    run = initialized
    ok(run("client", "add", "Acme"))
    one_line_error(
        run("import", "bitwarden", str(VECTORS / "bitwarden-encrypted.json"), "--client", "Acme"),
        "encrypted",
    )
    one_line_error(run("import", "csv", str(VECTORS / "generic.csv"), "--client", "Acme"), "--map")
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"items": [{"type": 1, "name": "x", "login": {"password": "p4ss!"}}, 7]}')
    line = one_line_error(run("import", "bitwarden", str(garbage), "--client", "Acme"), "item 2")
    assert "p4ss" not in line
    one_line_error(run("import", "bitwarden", str(tmp_path / "missing.json"), "--client", "Acme"))


def test_import_kdbx_with_passphrase_file(initialized: Run, tmp_path: Path) -> None:
    run = initialized
    ok(run("client", "add", "Acme"))
    kdbx = tmp_path / "x.kdbx"
    writers.write("kdbx", [PortableItem(title="Router", value="r0uter")], kdbx, passphrase="kp")
    (tmp_path / "pp").write_text("kp\n")
    (tmp_path / "wrong").write_text("nope\n")
    one_line_error(
        run("import", "keepass", str(kdbx), "--client", "Acme", "--kdbx-passphrase-file",
            str(tmp_path / "wrong")),
        "wrong passphrase",
    )  # fmt: skip
    done = run(
        "import", "keepass", str(kdbx), "--client", "Acme", "--kdbx-passphrase-file",
        str(tmp_path / "pp"), "--json",
    )  # fmt: skip
    assert json.loads(ok(done).out)["counts"]["created"] == 1
    assert ok(run("secret", "get", "Acme", "Router")).out == "r0uter\n"


def test_kdbx_without_passphrase_and_terminal_exits_2(initialized: Run, tmp_path: Path) -> None:
    run = initialized
    ok(run("client", "add", "Acme"))
    kdbx = tmp_path / "x.kdbx"
    writers.write("kdbx", [PortableItem(title="Router", value="r0uter")], kdbx, passphrase="kp")
    assert oct(kdbx.stat().st_mode & 0o777) == "0o600"
    one_line_error(
        run("import", "keepass", str(kdbx), "--client", "Acme"), "--kdbx-passphrase-file"
    )
