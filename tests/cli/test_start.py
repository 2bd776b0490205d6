"""`custody start` as a real process: creates the vault if asked, unseals, serves the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CUSTODY = str(Path(sys.executable).parent / "custody")


def _env(cli_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(cli_env)
    return env


def _custody(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        [CUSTODY, *args], env=env, capture_output=True, text=True, input=input, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [CUSTODY, "start", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if "unsealed" not in first:
        proc.kill()
        pytest.fail(f"start failed: {first}{proc.stderr.read() if proc.stderr else ''}")
    assert "agent listening" in proc.stdout.readline()
    return proc


def test_start_init_serve_and_stop(cli_env: dict[str, str]) -> None:
    env = _env(cli_env)
    agent = _start(env, "--init")
    try:
        _custody(env, "client", "add", "Acme")
        _custody(
            env, "secret", "add", "Acme", "--title", "Router", "--password-stdin", input="hunter2"
        )
        # Through the agent: even a broken database URL in the client's env does not matter.
        fast_env = dict(env, CUSTODY_DATABASE_URL="sqlite:////nonexistent/x.db")
        assert _custody(fast_env, "secret", "get", "Acme", "Router") == "hunter2\n"
        status = _custody(env, "status")
        assert "running (unsealed)" in status
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
    sock = Path(cli_env["CUSTODY_HOME"]) / "custody.sock"
    assert not sock.exists()
    assert "not running" in _custody(env, "status")

    # A second start on the existing vault unseals with the same passphrase.
    agent = _start(env)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(20) == 0


def test_start_without_vault_and_without_init_fails_clearly(cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [CUSTODY, "start"], env=_env(cli_env), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.startswith("custody: error:")
