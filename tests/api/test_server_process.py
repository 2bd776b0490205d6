"""What the server process does to itself at start, seen from a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import TEST_PASSPHRASE, Vault

_PROBE = """
import gc
from api.main import app_from_env
app_from_env()
print(gc.get_freeze_count())
"""


def test_the_server_freezes_its_startup_heap_for_the_collector(vault: Vault) -> None:
    """The objects made at start-up are out of the collector's full collections (their
    scans were the slowest check-outs' wait), and garbage is collected before, not frozen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(
        CUSTODY_DATABASE_URL=vault.settings.database_url,
        CUSTODY_UNSEAL_PASSPHRASE=TEST_PASSPHRASE,
        CUSTODY_ALLOW_WEAK_KDF="1",
    )
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    frozen = int(out.stdout.split()[-1])
    assert frozen > 50_000  # the app, the ORM and the libraries: well over 100,000 objects
