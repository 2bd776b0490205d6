"""Shared rule for tests that drive a real external tool (age, ssh-keygen, keepassxc-cli…).

A missing tool skips the test, unless CUSTODY_REQUIRE_INTEROP=1 is set (as in CI images
that install the tools), where a missing tool is a failure: an interop suite that silently
skips everything proves nothing.
"""

from __future__ import annotations

import os
import shutil

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
