"""CI mode of the load script (tests/reliability/load.py): 60 seconds of mixed traffic against
a real server, no error answer, flat memory after warm-up. CUSTODY_FULL_RELIABILITY=1 runs the
30-minute mode."""

from __future__ import annotations

import os

from tests.reliability.load import describe, run

FULL = os.environ.get("CUSTODY_FULL_RELIABILITY") == "1"
SECONDS = 1800.0 if FULL else 50.0
RATE = 100.0
MAX_GROWTH_MB = 24.0  # why: see the module docstring of tests/reliability/load.py


def test_mixed_load_no_errors_flat_memory() -> None:
    result = run(seconds=SECONDS, rate=RATE, clients=8, warmup=15.0, engine="sqlite")
    print("\nload:", describe(result, RATE))
    assert not result["errors"], result["errors"][:10]
    assert result["after_warmup"] > 0
    assert result["growth_mb"] < MAX_GROWTH_MB
