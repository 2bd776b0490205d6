"""`custody --server URL import`: the file goes to the API; an admin imports, a consultant
may not, a pass store stays local."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.test_remote import PW, _enrol, _ok, _run
from tests.server import uvicorn_server

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "import"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_against_server(cli_env: dict[str, str], tmp_path: Path) -> None:
    local = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    local.update(cli_env, CUSTODY_CONFIG_DIR=str(tmp_path / "config"))
    _ok(local, "init")
    _ok(local, "client", "add", "Acme")
    _ok(local, "user", "add", "root2", "--role", "admin", "--password-stdin", input=PW)
    _ok(local, "user", "add", "carol", "--role", "consultant", "--password-stdin", input=PW)
    _ok(local, "grant", "add", "carol", "Acme")
    admin, carol = _enrol(local, "root2"), _enrol(local, "carol")
    source = str(VECTORS / "bitwarden-individual.json")
    with uvicorn_server(cli_env) as url:
        remote = dict(local, CUSTODY_SERVER=url)
        _ok(remote, "login", "-u", "carol", "--password-stdin", "--totp", carol.now(), input=PW)
        refused = _run(remote, "import", "bitwarden", source, "--client", "Acme")
        assert refused.returncode == 2 and "may not" in refused.stderr
        _ok(remote, "logout")
        _ok(remote, "login", "-u", "root2", "--password-stdin", "--totp", admin.now(), input=PW)
        dry = json.loads(
            _ok(remote, "import", "bitwarden", source, "--client", "Acme", "--dry-run", "--json")
        )
        assert dry["counts"]["create"] == 6
        done = json.loads(_ok(remote, "import", "bitwarden", source, "--client", "Acme", "--json"))
        assert done["counts"]["created"] == 6 and "gandi-pass" not in json.dumps(done)
        again = _ok(remote, "import", "bitwarden", source, "--client", "Acme")
        assert "already present" in again
        local_only = _run(remote, "import", "pass", str(tmp_path), "--client", "Acme")
        assert local_only.returncode == 2 and "import it locally" in local_only.stderr
    titles = [s["title"] for s in json.loads(_ok(local, "secret", "list", "Acme", "--json"))]
    assert "Gandi TOTP" in titles and len(titles) == 6
