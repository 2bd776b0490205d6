"""API fuzzing: schemathesis generates requests from the app's own OpenAPI schema and sends them
to the app (ASGI, in-process, over a real SQLite vault), signed in as each role.

Every answer must: not be a 5xx, conform to the documented status codes, content types and
response schemas, and carry no stack trace. CI sends at least 2,000 requests in all;
CUSTODY_FUZZ_EXAMPLES raises the examples per operation and role (CUSTODY_FULL_RELIABILITY=1
multiplies them by ten).

When an answer is 401 (a fuzzed ``POST /auth/logout`` or token revocation hit the
caller's own token) the next case gets a freshly minted session token, so nothing blinds the
rest of the run. A third of the cases aim at real objects (the seeded clients, secrets and
people), so the fuzzer gets past the 404s into the routes' logic; a third are negative (invalid
by the schema), which must be refused with a documented 4xx, never a 5xx.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.state import ServerState
from tests.reliability.seed import PEOPLE, Seeded, seed, settings_for

FULL = os.environ.get("CUSTODY_FULL_RELIABILITY") == "1"
EXAMPLES = int(os.environ.get("CUSTODY_FUZZ_EXAMPLES", "0")) or (80 if FULL else 8)
STACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "site-packages")

#: requests each role's run must send, so that the four send at least 2,000 together
MIN_PER_ROLE = 500


def no_stack_trace(ctx: Any, response: Any, case: Any) -> bool | None:
    text = response.text or ""
    for marker in STACK_MARKERS:
        if marker in text:
            raise AssertionError(f"stack trace in the body: {marker!r}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_stack_trace,
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    home = tmp_path_factory.mktemp("fuzz") / "custody-data"
    vault = seed(settings_for(home))
    try:
        yield vault
    finally:
        vault.store.engine.dispose()


@pytest.fixture(scope="module")
def schema(seeded: Seeded) -> Any:
    app = create_app(
        ServerState(store=seeded.store, keys=seeded.keys), sweep_leases=False, checkpoints=False
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _known(seeded: Seeded) -> dict[str, str]:
    return {
        "client": seeded.ids["client_a"],
        "secret": seeded.ids["secret_a0"],
        "username": "cons_a",
        "recipient": seeded.ids["recipient_a"],
        "name": "Gandi",
    }


def _summary(case: Any, exc: BaseException) -> list[str]:
    if isinstance(exc, FailureGroup):
        return [
            f"{case.method} {case.formatted_path}: {failure.title}: "
            + " ".join(str(getattr(failure, "message", "")).split())
            for failure in exc.exceptions
        ]
    return [f"{case.method} {case.formatted_path}: {exc}"]


def _fuzz(operation: Any, strategy: Any, seeded: Seeded, username: str, token: list[str]) -> Any:
    """Run ``strategy``'s cases against ``operation``; return (requests sent, failures)."""
    failed: list[str] = []
    sent = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not FULL,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        try:
            response = case.call(headers={"Authorization": f"Bearer {token[0]}"})
            if response.status_code == 401:
                token[0] = seeded.token(username)
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, AssertionError) as exc:
            for line in _summary(case, exc):
                if len(failed) < 3 and line[:120] not in {f[:120] for f in failed}:
                    failed.append(line[:600])

    run()
    return sent, failed


@pytest.mark.parametrize("username", list(PEOPLE))
def test_fuzz_api_as(username: str, seeded: Seeded, schema: Any, tmp_path: Path) -> None:
    known = _known(seeded)
    problems: list[str] = []
    total = 0
    token = [seeded.token(username)]
    for result in schema.get_all_operations():
        operation = result.ok()
        path_names = {p.name for p in operation.path_parameters}
        real = {k: v for k, v in known.items() if k in path_names}
        strategy = st.one_of(
            operation.as_strategy(),
            operation.as_strategy(path_parameters=real),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )
        sent, failed = _fuzz(operation, strategy, seeded, username, token)
        total += sent
        if failed:
            problems.append(f"== {operation.label}\n" + "\n".join(failed))
    print(f"schemathesis as {username}: {total} requests")
    report = "\n".join(problems)
    if problems:
        (Path(os.environ.get("CUSTODY_FUZZ_REPORT", tmp_path)) / f"fuzz-{username}.txt").write_text(
            report
        )
    assert not problems, report
    assert total >= MIN_PER_ROLE, total
