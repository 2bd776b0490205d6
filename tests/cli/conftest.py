from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    """Run `custody ARGS` in-process against the test database; stdin from ``input``."""
    import io
    import sys

    def _run(*args: str, input: str | None = None) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(input or ""))
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


@pytest.fixture
def initialized(run: Run) -> Run:
    result = run("init")
    assert result.code == 0, result.err
    return run
