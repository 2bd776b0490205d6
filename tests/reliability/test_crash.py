"""CI mode of the crash-consistency script (tests/reliability/crash.py): a few SIGKILLs of a
real server on SQLite and on PostgreSQL; CUSTODY_FULL_RELIABILITY=1 kills it 20 times."""

from __future__ import annotations

import os

import pytest

from tests.reliability.crash import run

FULL = os.environ.get("CUSTODY_FULL_RELIABILITY") == "1"
KILLS = 20 if FULL else 4


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_crash_consistency(engine: str, request: pytest.FixtureRequest) -> None:
    pg_url = None
    if engine == "postgresql":
        base = request.getfixturevalue("pg_database")  # skips (or fails, in CI) without one
        if base is None:
            pytest.skip("PostgreSQL not reachable (set CUSTODY_TEST_PG_URL)")
        pg_url = os.environ.get("CUSTODY_TEST_PG_URL")
    result = run(engine, KILLS, pg_url=pg_url, seed_value=KILLS, quiet=False)
    print(
        f"\n{engine}: {KILLS} kills, {result.get('acknowledged', 0)} acknowledged writes "
        f"present, unacknowledged {result.get('unacknowledged', 0)}, committed: "
        f"{result.get('committed', 0)}"
    )
    assert not result["problems"], "\n".join(result["problems"])
    assert result.get("acknowledged", 0) > KILLS * 5  # real traffic between the kills
