"""Helpers shared by the benchmark scripts (timing, a throwaway vault, a throwaway pass store)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PASSPHRASE = "benchmark unseal passphrase"


def bench_settings(url: str, home: Path = Path("."), **overrides: Any) -> Any:
    """Settings of a benchmark's vault at ``url``: the passphrase comes from the script
    (PASSPHRASE), never from the environment; real Argon2id parameters unless
    ``allow_weak_kdf=True`` is among ``overrides``."""
    from vault.config import Settings

    fields: dict[str, Any] = {
        "home": home,
        "database_url": url,
        "unseal_file": None,
        "unseal_passphrase_set": False,
        "allow_weak_kdf": False,
        **overrides,
    }
    return Settings(**fields)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"median {statistics.median(ms):7.2f} ms  mean {statistics.fmean(ms):7.2f} ms  "
        f"min {min(ms):7.2f} ms  (n={len(ms)})"
    )


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"benchmark needs {tool!r} (apt-get install {tool})")
    return path


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def pass_store(root: Path, recipients: int = 2) -> Iterator[dict[str, str]]:
    """A pass store encrypted to ``recipients`` fresh GPG keys (no passphrase), with its agent."""
    require("pass")
    gnupg = root / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(gnupg), PASSWORD_STORE_DIR=str(root / "store"))
    ids = []
    for i in range(recipients):
        uid = f"bench{i} <bench{i}@custody.invalid>"
        subprocess.run(
            [
                "gpg",
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                uid,
                "default",
                "default",
                "never",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        ids.append(f"bench{i}@custody.invalid")
    subprocess.run(["pass", "init", *ids], env=env, check=True, capture_output=True)
    try:
        yield env
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
