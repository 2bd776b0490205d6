"""The stored client key is a real age file: Debian's `age -d -i <client identity>` prints it.

Runs the real `custody` and `age` binaries as separate processes, the identity made by
`custody client keygen` (passphrase-protected, typed at age's terminal prompt).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop import require_tool, run_with_tty
from vault.keys import unwrap_client_key

pytestmark = pytest.mark.interop
PHRASE = "client's own passphrase"


def _custody(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("custody", path=os.path.dirname(sys.executable)) or "custody"
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    full = dict(os.environ)
    full.update(cli_env)
    (tmp_path / "pw").write_text(PHRASE + "\n")
    full["CUSTODY_IDENTITY_PASSPHRASE_FILE"] = str(tmp_path / "pw")
    return full


def test_age_opens_stored_client_key(env: dict[str, str], tmp_path: Path) -> None:
    age = require_tool("age")
    assert _custody(env, "init").returncode == 0
    identity = tmp_path / "acme-identity.age"
    keygen = _custody(env, "client", "keygen", "--out", str(identity))
    assert keygen.returncode == 0, keygen.stderr
    recipient = keygen.stdout.strip()
    assert recipient.startswith("age1") and "AGE-SECRET-KEY" not in keygen.stdout
    assert oct(identity.stat().st_mode & 0o777) == "0o600"
    added = _custody(env, "client", "add", "Acme", "--recipient", recipient)
    assert added.returncode == 0, added.stderr
    blob = tmp_path / "acme-key.age"
    assert _custody(env, "client", "keyfile", "Acme", "--out", str(blob)).returncode == 0

    out = tmp_path / "acme-key.txt"
    code, transcript = run_with_tty(
        [age, "-d", "-i", str(identity), "-o", str(out), str(blob)], PHRASE
    )
    assert code == 0, transcript
    lines = out.read_text().splitlines()
    assert lines[0] == "custody-client-key/v1" and lines[1].startswith("client: ")
    key = base64.b64decode(lines[2].removeprefix("key: "))
    assert len(key) == 32

    # ... and it is the very key the vault uses for that client's data.
    from tests.conftest import TEST_PASSPHRASE
    from vault.config import Settings
    from vault.keys import UnsealSecret
    from vault.services import Context
    from vault.services.clients import get_client
    from vault.store import Store

    store = Store.open(Settings.from_env(env))
    keys = store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    with store.session() as session:
        client = get_client(Context(session=session, actor="test"), "Acme")
        assert keys.client_key(client) == key
        assert unwrap_client_key(blob.read_bytes(), [keys.identity], client.id) == key
    store.engine.dispose()


def test_keygen_interactive_prompts(tmp_path: Path) -> None:
    """`custody client keygen` asks twice for the passphrase on a terminal; age opens the file."""
    age = require_tool("age")
    exe = shutil.which("custody", path=os.path.dirname(sys.executable))
    assert exe
    identity = tmp_path / "id.age"
    code, transcript = run_with_tty([exe, "client", "keygen", "--out", str(identity)], PHRASE)
    assert code == 0, transcript
    assert transcript.lower().count("passphrase") >= 2
    code, transcript = run_with_tty(
        [age, "-d", "-o", str(tmp_path / "id.txt"), str(identity)], PHRASE
    )
    assert code == 0, transcript
    assert (tmp_path / "id.txt").read_text().count("AGE-SECRET-KEY-1") == 1


def test_keygen_refuses_to_overwrite(env: dict[str, str], tmp_path: Path) -> None:
    existing = tmp_path / "id.age"
    existing.write_text("precious")
    result = _custody(env, "client", "keygen", "--out", str(existing))
    assert result.returncode == 2 and "refusing to overwrite" in result.stderr
    assert existing.read_text() == "precious"
