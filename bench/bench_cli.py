"""Whole-process latency of `custody secret get` against `pass show`, in the same run.

    python bench/bench_cli.py [--runs 40]

Both read one secret and print it. `pass show` decrypts with gpg (gpg-agent warm). Custody is
measured two ways: with the vault running (`custody start`, the normal way to work: the CLI
asks the unsealed agent over its private socket), and opened directly for one read
(CUSTODY_NO_AGENT=1: imports SQLAlchemy and runs Argon2id with the production parameters).
Runs alternate between the tools so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PASSPHRASE, pass_store, summary, workdir  # noqa: E402

CUSTODY = str(Path(sys.executable).parent / "custody")


def run_once(cmd: list[str], env: dict[str, str], expect: str) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    assert out.strip() == expect, (cmd, out)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    value = "correct-horse-battery-staple-42"
    with workdir("custody-bench-cli-") as root:
        unseal = root / "unseal.txt"
        unseal.write_text(PASSPHRASE + "\n")
        env = dict(
            os.environ, CUSTODY_HOME=str(root / "custody-data"), CUSTODY_UNSEAL_FILE=str(unseal)
        )
        env.pop("CUSTODY_DATABASE_URL", None)
        subprocess.run([CUSTODY, "init"], env=env, check=True, capture_output=True)
        subprocess.run([CUSTODY, "client", "add", "Acme"], env=env, check=True, capture_output=True)
        subprocess.run(
            [CUSTODY, "secret", "add", "Acme", "--title", "Router", "--password-stdin"],
            env=env,
            input=value,
            text=True,
            check=True,
            capture_output=True,
        )
        agent = subprocess.Popen(
            [CUSTODY, "start"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert agent.stdout is not None
        agent.stdout.readline()  # "Custody vault unsealed ..."
        agent.stdout.readline()  # "agent listening on ..."
        direct_env = dict(env, CUSTODY_NO_AGENT="1")
        get = [CUSTODY, "secret", "get", "Acme", "Router"]
        (root / "pass").mkdir()
        try:
            with pass_store(root / "pass", recipients=2) as penv:
                subprocess.run(
                    ["pass", "insert", "-m", "acme/router"],
                    env=penv,
                    input=value,
                    text=True,
                    check=True,
                    capture_output=True,
                )
                show = ["pass", "show", "acme/router"]
                for _ in range(3):  # warm caches and gpg-agent
                    run_once(get, env, value)
                    run_once(show, penv, value)
                custody_t, pass_t, direct_t = [], [], []
                for i in range(args.runs):
                    custody_t.append(run_once(get, env, value))
                    pass_t.append(run_once(show, penv, value))
                    if i % 4 == 0:
                        direct_t.append(run_once(get, direct_env, value))
        finally:
            agent.terminate()
            agent.wait(10)
    ratio = statistics.median(custody_t) / statistics.median(pass_t)
    print(f"# bench_cli  runs={args.runs}  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"custody secret get (vault running) {summary(custody_t)}")
    print(f"custody secret get (direct+KDF)    {summary(direct_t)}")
    print(f"pass show (2 GPG recipients)       {summary(pass_t)}")
    print(f"ratio custody(running) / pass (median): {ratio:.2f}x   (target: <= 3x)")
    print(
        f"ratio custody(direct)  / pass (median): "
        f"{statistics.median(direct_t) / statistics.median(pass_t):.2f}x"
    )


if __name__ == "__main__":
    main()
