"""`custody backup`, `restore` onto a fresh host, `key rotate`, `key list`, `db check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.cli.test_commands import ok, one_line_error


def test_cli_backup_and_restore_onto_a_fresh_host(
    initialized: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = initialized
    ok(run("client", "add", "Acme"))
    ok(run("secret", "add", "Acme", "--title", "Router", "--password-stdin", input="r0uter-Zq8#\n"))
    out = tmp_path / "nightly.db"
    data = ok(run("backup", "--out", str(out), "--json")).out
    assert '"events"' in data
    one_line_error(run("backup", "--out", str(out)), "exists")

    fresh = tmp_path / "fresh-machine"
    monkeypatch.setenv("CUSTODY_HOME", str(fresh))
    monkeypatch.delenv("CUSTODY_DATABASE_URL", raising=False)
    ok(run("restore", str(out)))
    assert ok(run("secret", "get", "Acme", "Router")).out.strip() == "r0uter-Zq8#"
    ok(run("db", "check"))
    one_line_error(run("restore", str(out)), "already holds")
    ok(run("key", "rotate", "client", "Acme"))
    ok(run("key", "rotate", "identity"))
    ok(run("key", "rotate", "log"))
    assert ok(run("secret", "get", "Acme", "Router")).out.strip() == "r0uter-Zq8#"
    keys = ok(run("key", "list")).out
    assert keys.count("retired") == 2
    ok(run("db", "check"))


def test_backup_into_a_new_directory_or_an_impossible_one(initialized: Run, tmp_path: Path) -> None:
    run = initialized
    nested = tmp_path / "backups" / "2026" / "nightly.db"
    ok(run("backup", "--out", str(nested)))
    assert nested.stat().st_mode & 0o777 == 0o600 and list(nested.parent.iterdir()) == [nested]
    one_line_error(run("backup", "--out", "/proc/no-such-dir/x.db"), "cannot write in")
