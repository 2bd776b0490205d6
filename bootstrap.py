#!/usr/bin/env python3
"""Set-up for a fresh machine that has only python3.

    python3 bootstrap.py vault   # make .venv, install Custody, create ./custody-data, start it
    python3 bootstrap.py test    # make .venv, install Custody with test tools, run every test

Works without pip or ensurepip (as on a bare Debian python3): it makes the virtualenv without
pip, then fetches pip's wheel from PyPI and runs it from the wheel. Uses only the stdlib.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".custody-installed"


def run(*args: str | Path, **kwargs: object) -> None:
    subprocess.run([str(a) for a in args], check=True, **kwargs)  # type: ignore[call-overload]


def _has_pip() -> bool:
    return subprocess.run([str(PY), "-m", "pip", "--version"], capture_output=True).returncode == 0


def _bootstrap_pip() -> None:
    """Fetch pip's wheel from PyPI and install pip with it (a wheel runs as a zip app)."""
    with urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=60) as resp:  # noqa: S310
        release = json.load(resp)
    wheel = next(u for u in release["urls"] if u["filename"].endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / wheel["filename"]
        urllib.request.urlretrieve(wheel["url"], path)  # noqa: S310
        run(PY, f"{path}/pip", "install", "--quiet", "pip")


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except (subprocess.CalledProcessError, OSError):
            venv.create(VENV, with_pip=False, clear=True)  # Debian without python3-venv/pip
    if not _has_pip():
        _bootstrap_pip()
    # The install is redone when the project's metadata or a C source changes: an editable
    # install picks up Python edits by itself, but builds the C extension only when installed.
    inputs = [ROOT / "pyproject.toml", *sorted(ROOT.glob("vault/**/*.c"))]
    wanted = f"{extras}:" + ",".join(str(p.stat().st_mtime_ns) for p in inputs)
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing Custody and its dependencies ...", flush=True)
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    run(
        PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", target, cwd=ROOT
    )
    STAMP.write_text(wanted)


def vault() -> int:
    ensure_venv("")
    env = dict(os.environ)
    env.setdefault("CUSTODY_HOME", str(Path.cwd() / "custody-data"))
    # Creates the vault on first run (asking for a new passphrase), then unseals and serves.
    # Ctrl-C reaches the vault too, which seals and exits; we just wait for it.
    proc = subprocess.Popen([str(BIN / "custody"), "start", "--init"], env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def test(args: list[str]) -> int:
    ensure_venv("test")
    # One pytest worker per CPU (pytest-xdist) unless the caller chose: the suite spends most
    # of its time in real servers, Argon2id and fsyncs, which overlap well.
    chosen = "no:xdist" in args or any(a.startswith(("-n", "--numprocesses")) for a in args)
    parallel = [] if chosen else ["-n", "auto"]
    return subprocess.run([str(PY), "-m", "pytest", *parallel, *args], cwd=ROOT).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("vault", "test"):
        print(__doc__)
        return 2
    if sys.argv[1] == "vault":
        return vault()
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
