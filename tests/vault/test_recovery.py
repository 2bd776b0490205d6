"""Offline recovery: a database copy plus one client's identity - no passphrase, no server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Vault
from vault.crypto import age
from vault.services import clients, inventory, secrets

ACME_VALUES = [f"acme-secret-{i}" for i in range(5)]
GLOBEX_VALUES = [f"globex-secret-{i}" for i in range(5)]


def _populate(vault: Vault) -> tuple[age.X25519Identity, age.X25519Identity]:
    acme_id, globex_id = age.X25519Identity.generate(), age.X25519Identity.generate()
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme", recipients=[str(acme_id.recipient)])
        clients.add_client(ctx, "Globex", recipients=[str(globex_id.recipient)])
        for i, (a, g) in enumerate(zip(ACME_VALUES, GLOBEX_VALUES, strict=True)):
            secrets.add_secret(ctx, "Acme", title=f"Acme {i}", value=a, username=f"a-user-{i}")
            secrets.add_secret(ctx, "Globex", title=f"Globex {i}", value=g)
        inventory.add_record(
            ctx, "vendor", "Acme", name="Gandi", category="registrar", account_number="ACME-ACCT-1"
        )
        inventory.add_record(ctx, "vendor", "Globex", name="OVH", account_number="GLOBEX-ACCT")
    with vault.ctx() as ctx:
        secrets.update_secret(ctx, "Acme", "Acme 0", value="acme-secret-0-rotated")
    return acme_id, globex_id


def _copy_sqlite(url: str, dest: Path) -> Path:
    """A consistent copy through SQLite's backup API (never a raw copy of a live WAL file)."""
    source = sqlite3.connect(url.split("///", 1)[1])
    target = sqlite3.connect(dest)
    source.backup(target)
    source.close()
    target.close()
    return dest


def _recover(
    db: str, identity: Path, client: str, *extra: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(env_extra or {})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "recover",
            "--db",
            db,
            "--identity",
            str(identity),
            "--client",
            client,
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=identity.parent,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def backup(vault: Vault, tmp_path: Path) -> tuple[str, Path, Path]:
    acme_id, globex_id = _populate(vault)
    if vault.settings.database_url.startswith("sqlite"):
        db = str(_copy_sqlite(vault.settings.database_url, tmp_path / "backup-copy.db"))
    else:
        db = vault.settings.database_url
    vault.store.engine.dispose()
    acme_file, globex_file = tmp_path / "acme.key", tmp_path / "globex.key"
    acme_file.write_text(f"# acme escrow\n{acme_id}\n")
    globex_file.write_text(f"{globex_id}\n")
    return db, acme_file, globex_file


def test_recover_prints_every_secret_of_that_client_only(backup: tuple[str, Path, Path]) -> None:
    db, acme_file, _ = backup
    result = _recover(db, acme_file, "acme", "--history")
    assert result.returncode == 0, result.stderr
    for value in ["acme-secret-0-rotated", *ACME_VALUES, "ACME-ACCT-1", "a-user-3"]:
        assert value in result.stdout
    for value in [*GLOBEX_VALUES, "GLOBEX-ACCT", "Globex"]:
        assert value not in result.stdout and value not in result.stderr


def test_recover_json(backup: tuple[str, Path, Path]) -> None:
    import json

    db, acme_file, _ = backup
    result = _recover(db, acme_file, "Acme", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(s["value"] for s in data["secrets"]) == sorted(
        ["acme-secret-0-rotated", *ACME_VALUES[1:]]
    )
    assert data["vendors"][0]["account_number"] == "ACME-ACCT-1"


def test_recover_with_another_clients_identity_fails(backup: tuple[str, Path, Path]) -> None:
    db, _, globex_file = backup
    result = _recover(db, globex_file, "Acme")
    assert result.returncode == 2
    assert result.stderr.startswith("custody: error:") and "identities" in result.stderr
    assert "acme-secret" not in result.stdout


def test_recover_with_passphrase_protected_identity(
    backup: tuple[str, Path, Path], tmp_path: Path
) -> None:
    db, acme_file, _ = backup
    protected = tmp_path / "acme-protected.age"
    protected.write_bytes(
        age.encrypt(
            acme_file.read_bytes(), [age.ScryptRecipient("client passphrase 1", 10)], armor=True
        )
    )
    pw = tmp_path / "pw.txt"
    pw.write_text("client passphrase 1\n")
    result = _recover(
        db, protected, "Acme", env_extra={"CUSTODY_IDENTITY_PASSPHRASE_FILE": str(pw)}
    )
    assert result.returncode == 0, result.stderr
    assert "acme-secret-3" in result.stdout
    pw.write_text("wrong passphrase\n")
    result = _recover(
        db, protected, "Acme", env_extra={"CUSTODY_IDENTITY_PASSPHRASE_FILE": str(pw)}
    )
    assert result.returncode == 2 and "passphrase" in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recover_leaves_the_copy_unchanged(backup: tuple[str, Path, Path]) -> None:
    db, acme_file, _ = backup
    before = Path(db).read_bytes()
    assert _recover(db, acme_file, "Acme").returncode == 0
    assert Path(db).read_bytes() == before
