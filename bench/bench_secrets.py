"""Add N secrets and read them all back: Custody against `pass` with two GPG recipients.

    python bench/bench_secrets.py [--n 1000]

Custody: one client whose key is wrapped to the vault and two escrow recipients (age X25519).
Measured in the same run, on the same machine:
  * custody library  - the service API, one transaction (with its audit event) per secret
  * custody batch    - add_secrets / read_client_secrets: all N in one transaction, still one
                       audit event per secret (the path imports and exports take)
  * custody agent    - reads through a running `custody start` agent (what the CLI uses)
  * pass             - `pass insert -m` / `pass show`, one process per secret, encrypted to two
                       GPG keys (gpg-agent warm)
Prints per-operation figures and the ratios pass/custody.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PASSPHRASE, bench_settings, pass_store, timed, workdir  # noqa: E402


def custody_runs(root: Path, n: int) -> dict[str, float]:
    from vault.agent import call, socket_path
    from vault.agent_server import serve
    from vault.config import sqlite_url
    from vault.crypto import age
    from vault.keys import UnsealSecret
    from vault.services import clients, secrets
    from vault.store import Store, init_vault

    home = root / "custody-data"
    settings = bench_settings(sqlite_url(home / "custody.db"), home)
    init_vault(settings, passphrase=PASSPHRASE)  # real Argon2id parameters
    store = Store.open(settings)
    keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    escrow = [str(age.X25519Identity.generate().recipient) for _ in range(2)]
    with store.context("operator:bench", keys) as ctx:
        clients.add_client(ctx, "Acme", recipients=escrow)
    values = [f"value-{i:05d}-{'x' * 16}" for i in range(n)]

    def add_all() -> None:
        for i, value in enumerate(values):
            with store.context("operator:bench", keys) as ctx:
                secrets.add_secret(
                    ctx,
                    "Acme",
                    title=f"secret {i:05d}",
                    value=value,
                    username="admin",
                    url="https://example.invalid",
                )

    def read_all() -> None:
        for i, value in enumerate(values):
            with store.context("operator:bench", keys) as ctx:
                got = secrets.read_secret(ctx, "Acme", f"secret {i:05d}")
            assert got.value == value

    results = {"custody library add": timed(add_all), "custody library read": timed(read_all)}

    with store.context("operator:bench", keys) as ctx:
        clients.add_client(ctx, "Globex", recipients=escrow)

    def add_batch() -> None:
        with store.context("operator:bench", keys) as ctx:
            secrets.add_secrets(
                ctx,
                "Globex",
                [
                    secrets.NewSecret(
                        title=f"secret {i:05d}",
                        value=value,
                        username="admin",
                        url="https://example.invalid",
                    )
                    for i, value in enumerate(values)
                ],
            )

    def read_batch() -> None:
        with store.context("operator:bench", keys) as ctx:
            got = secrets.read_client_secrets(ctx, "Globex")
        assert [g.value for g in got] == values

    results["custody batch add"] = timed(add_batch)
    results["custody batch read"] = timed(read_batch)

    path = socket_path(home)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=serve,
        args=(path, store, keys),
        kwargs={"ready": ready.set, "stop": stop},
        daemon=True,
    )
    thread.start()
    ready.wait(10)

    def read_agent() -> None:
        for i, value in enumerate(values):
            got = call(path, "secret.read", {"client": "Acme", "title": f"secret {i:05d}"})
            assert got["value"] == value

    results["custody agent read"] = timed(read_agent)
    stop.set()
    thread.join()
    store.engine.dispose()
    return results


def pass_runs(root: Path, n: int) -> dict[str, float]:
    with pass_store(root, recipients=2) as env:
        values = [f"value-{i:05d}-{'x' * 16}" for i in range(n)]

        def add_all() -> None:
            for i, value in enumerate(values):
                subprocess.run(
                    ["pass", "insert", "-m", f"acme/secret-{i:05d}"],
                    env=env,
                    input=f"{value}\nusername: admin\n",
                    text=True,
                    check=True,
                    capture_output=True,
                )

        def read_all() -> None:
            for i, value in enumerate(values):
                out = subprocess.run(
                    ["pass", "show", f"acme/secret-{i:05d}"],
                    env=env,
                    text=True,
                    check=True,
                    capture_output=True,
                ).stdout
                assert out.splitlines()[0] == value

        return {"pass add": timed(add_all), "pass read": timed(read_all)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    n = args.n
    with workdir("custody-bench-") as root:
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        custody = custody_runs(root / "custody", n)
        (root / "pass").mkdir()
        pass_ = pass_runs(root / "pass", n)
    print(f"# bench_secrets  n={n}  {started}")
    for name, seconds in {**custody, **pass_}.items():
        print(
            f"{name:24s} {seconds:8.3f} s total  {seconds / n * 1000:8.3f} ms/op  "
            f"{n / seconds:9.0f} op/s"
        )
    pairs = [
        ("add ", "pass add", "custody library add"),
        ("read", "pass read", "custody library read"),
        ("read", "pass read", "custody agent read"),
        ("add ", "pass add", "custody batch add"),
        ("read", "pass read", "custody batch read"),
    ]
    for label, theirs, ours in pairs:
        mode = ours.removeprefix("custody ").rsplit(" ", 1)[0]
        print(f"ratio {label} (pass / custody {mode:7s}): {pass_[theirs] / custody[ours]:6.1f}x")


if __name__ == "__main__":
    main()
