"""Shared rule for tests that drive a real external tool (age, ssh-keygen, keepassxc-cli…).

A missing tool skips the test, unless CUSTODY_REQUIRE_INTEROP=1 is set (as in CI images
that install the tools), where a missing tool is a failure: an interop suite that silently
skips everything proves nothing.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import time

import pytest

REQUIRE_ENV = "CUSTODY_REQUIRE_INTEROP"


def interop_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def require_tool(name: str) -> str:
    """The absolute path of ``name`` on PATH; otherwise skip (or fail if required)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name!r} is not installed (not found on PATH)"
    if interop_required():
        pytest.fail(f"{message}, but {REQUIRE_ENV}=1 requires it")
    pytest.skip(message)


def run_with_tty(args: list[str], passphrase: str, *, timeout: float = 60.0) -> tuple[int, str]:
    """Run ``args`` on a pseudo-terminal, typing ``passphrase`` whenever it is prompted for.

    age reads passphrases from the controlling terminal, never from stdin; a child forked
    with pty.fork() has the pty as its controlling terminal, so /dev/tty reaches us.
    """
    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.execv(args[0], args)  # noqa: S606 (a fixed tool path, no shell)
        finally:
            os._exit(127)
    transcript = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal (it exited)
                break
            if not data:
                break
            transcript += data
            if transcript.lower().count(b"passphrase") > answered:
                answered += 1
                os.write(fd, passphrase.encode() + b"\n")
        else:
            os.kill(pid, 9)
            pytest.fail(f"{args[0]} did not finish within {timeout}s: {transcript!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), transcript.decode(errors="replace")
