"""`custody export` of a large client, as a whole process, against `keepassxc-cli export -f csv`.

    python bench/bench_export.py [--n 10000] [--records 500] [--runs 3]

Sets up a throwaway vault (SQLite, production Argon2id parameters) with one client: N secrets
(login, username, URL, notes), ``--records`` vendors and assets (half each), a quarter of the
secrets linked to a vendor, and two escrow recipients. In the same run it builds a KDBX 4 file
holding the same N entries (keepassxc-cli import of a KeePass XML file) whose key derivation
is set to take as long as Custody's unseal does, so both tools pay the same for opening.
Then it alternates, ``--runs`` times each:

* ``custody export Acme --out FILE`` (unseal, read, decrypt every field, age-encrypt to the
  client's recipients, sign the manifest, audit event), and
* ``keepassxc-cli export -f csv DB > FILE`` (open, decrypt, write every entry as CSV),

and prints the median wall time of each, their ratio, and each process's peak RSS (from
``wait4``'s rusage of that very child).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PASSPHRASE, bench_settings, require, workdir  # noqa: E402

KDBX_PASSWORD = "benchmark kdbx passphrase"


def _value(i: int) -> str:
    return f"pw-{i:07d}-{'x' * 16}"


def setup_vault(home: Path, n: int, records: int, *, weak_kdf: bool = False) -> float:
    """The vault and client; returns how long one unseal takes (seconds)."""
    from sqlalchemy import insert, select

    from vault.config import sqlite_url
    from vault.crypto import age
    from vault.db.models import Secret, SecretLink, Vendor, new_id
    from vault.keys import UnsealSecret
    from vault.services import clients, inventory, secrets
    from vault.store import Store, init_vault

    settings = bench_settings(sqlite_url(home / "custody.db"), home, allow_weak_kdf=weak_kdf)
    init_vault(settings, passphrase=PASSPHRASE, admin=None, weak_kdf=weak_kdf)
    store = Store.open(settings)
    started = time.perf_counter()
    keys = store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))
    unseal_seconds = time.perf_counter() - started
    recipients = [str(age.X25519Identity.generate().recipient) for _ in range(2)]
    with store.context("operator:bench", keys) as ctx:
        clients.add_client(ctx, "Acme", recipients=recipients)
        for i in range(records // 2):
            inventory.add_record(
                ctx,
                "vendor",
                "Acme",
                name=f"vendor {i:04d}",
                category="saas",
                account_number=f"ACCT-{i:06d}",
                support_contacts=[{"name": "support", "phone": "+1 555 0100"}],
            )
            inventory.add_record(
                ctx, "asset", "Acme", name=f"asset {i:04d}", kind="workstation", location="office"
            )
    step = 5000
    for start in range(0, n, step):
        with store.context("operator:bench", keys) as ctx:
            secrets.add_secrets(
                ctx,
                "Acme",
                [
                    secrets.NewSecret(
                        title=f"secret {i:07d}",
                        value=_value(i),
                        username=f"user{i}@acme.example",
                        url=f"https://app{i % 97}.example.com/login",
                        notes=f"note for entry {i}",
                    )
                    for i in range(start, min(n, start + step))
                ],
            )
    with store.session() as session, session.begin():
        vendor_ids = list(session.scalars(select(Vendor.id)))
        secret_ids = list(session.scalars(select(Secret.id).order_by(Secret.title_key)))
        if vendor_ids:
            rows = [
                {"id": new_id(), "secret_id": sid, "vendor_id": vendor_ids[i % len(vendor_ids)]}
                for i, sid in enumerate(secret_ids)
                if i % 4 == 0
            ]
            for start in range(0, len(rows), step):
                session.execute(insert(SecretLink), rows[start : start + step])
    store.engine.dispose()
    return unseal_seconds


def write_keepass_xml(path: Path, n: int) -> None:
    def uid() -> str:
        return base64.b64encode(uuid.uuid4().bytes).decode("ascii")

    def field(key: str, value: str) -> str:
        return f"<String><Key>{key}</Key><Value>{escape(value)}</Value></String>"

    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n<KeePassFile><Meta>'
            "<Generator>custody-bench</Generator><DatabaseName>Acme</DatabaseName></Meta>"
            f"<Root><Group><UUID>{uid()}</UUID><Name>Acme</Name>\n"
        )
        for i in range(n):
            out.write(
                f"<Entry><UUID>{uid()}</UUID>"
                + field("Title", f"secret {i:07d}")
                + field("UserName", f"user{i}@acme.example")
                + field("Password", _value(i))
                + field("URL", f"https://app{i % 97}.example.com/login")
                + field("Notes", f"note for entry {i}")
                + "</Entry>\n"
            )
        out.write("</Group></Root></KeePassFile>\n")


def make_kdbx(tool: str, xml: Path, db: Path, kdf_ms: int) -> None:
    subprocess.run(
        [tool, "import", "-q", "-p", "-t", str(kdf_ms), str(xml), str(db)],
        input=f"{KDBX_PASSWORD}\n{KDBX_PASSWORD}\n",
        text=True,
        check=True,
        capture_output=True,
    )


def run_measured(
    args: list[str], env: dict[str, str], *, stdin: bytes = b"", stdout: Path
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of one process (wait4
    gives that child's own rusage). CPU time is the steadier figure on a shared machine.

    A child starts as a copy of this process, and its peak RSS counts that copy: so this
    process never imports Custody (the vault is set up in a child of its own)."""
    with stdout.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            args, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{args[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="secrets (and KDBX entries)")
    parser.add_argument("--records", type=int, default=500, help="vendors + assets")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--weak-kdf",
        action="store_true",
        help="cheap Argon2id for the vault (and so the KDBX): peak RSS is then the export's "
        "own, not the key derivation's (production Argon2id uses more memory than the export)",
    )
    parser.add_argument(
        "--agent",
        action="store_true",
        help="with the vault running (`custody start`), as it is used day to day: the CLI "
        "hands the export to the unsealed agent; the agent's CPU time is added to the CLI's",
    )
    parser.add_argument("--setup-only", metavar="HOME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_only:  # in a child process, so that this one stays small (see run_measured)
        print(setup_vault(Path(args.setup_only), args.n, args.records, weak_kdf=args.weak_kdf))
        return
    keepassxc = require("keepassxc-cli")
    custody = str(Path(sys.executable).parent / "custody")

    with workdir("custody-bench-export-") as root:
        home = root / "custody-data"
        started = time.perf_counter()
        made = subprocess.run(
            [sys.executable, __file__, "--setup-only", str(home), "--n", str(args.n)]
            + ["--records", str(args.records)]
            + (["--weak-kdf"] if args.weak_kdf else []),
            check=True,
            capture_output=True,
            text=True,
        )
        unseal_seconds = float(made.stdout.strip().splitlines()[-1])
        # keepassxc-cli accepts 100 to 5000 ms (so with --weak-kdf its KDF costs it more)
        kdf_ms = min(5000, max(100, round(unseal_seconds * 1000)))
        write_keepass_xml(root / "acme.xml", args.n)
        make_kdbx(keepassxc, root / "acme.xml", root / "acme.kdbx", kdf_ms)
        (root / "acme.xml").unlink()
        print(
            f"setup: {args.n} secrets, {args.records} vendors+assets, KDBX with "
            f"{kdf_ms} ms KDF (= one Custody unseal) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        unseal_file = root / "unseal.txt"
        unseal_file.write_text(PASSPHRASE + "\n")
        # As installed for real: Python may cache bytecode (a development shell often says not).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CUSTODY_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(
            CUSTODY_HOME=str(home),
            CUSTODY_UNSEAL_FILE=str(unseal_file),
            CUSTODY_NO_AGENT="1",
        )
        if args.weak_kdf:
            env["CUSTODY_ALLOW_WEAK_KDF"] = "1"
        agent = None
        if args.agent:
            env.pop("CUSTODY_NO_AGENT")
            agent = subprocess.Popen(
                [custody, "start"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            socket = home / "custody.sock"
            for _ in range(600):
                if socket.exists():
                    break
                time.sleep(0.1)
            else:
                raise SystemExit("custody start did not come up")
        results: dict[str, list[tuple[float, float, int]]] = {"custody": [], "keepassxc": []}
        for run in range(args.runs + 1):  # run 0 warms caches (bytecode, page cache) for both
            bundle = root / "acme.age"
            before = _cpu_seconds(agent.pid) if agent else 0.0
            ours = run_measured(
                [custody, "export", "Acme", "--out", str(bundle)], env, stdout=root / "custody.out"
            )
            if agent:  # the work was done in the agent: count its CPU time too
                ours = (ours[0], ours[1] + _cpu_seconds(agent.pid) - before, ours[2])
            theirs = run_measured(
                [keepassxc, "export", "-q", "-f", "csv", str(root / "acme.kdbx")],
                env,
                stdin=f"{KDBX_PASSWORD}\n".encode(),
                stdout=root / "acme.csv",
            )
            if run:
                results["custody"].append(ours)
                results["keepassxc"].append(theirs)
        agent_rss = 0
        if agent:
            agent_rss = _peak_rss_kib(agent.pid)
            agent.terminate()
            agent.wait(30)
        csv_lines = sum(1 for _ in (root / "acme.csv").open(encoding="utf-8"))
        bundle_mib = (root / "acme.age").stat().st_size / 2**20
        csv_mib = (root / "acme.csv").stat().st_size / 2**20

    wall = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    rss = {k: max(r[2] for r in v) / 1024 for k, v in results.items()}
    for name, label, extra in (
        ("custody", "custody export      ", f"bundle {bundle_mib:.1f} MiB"),
        ("keepassxc", "keepassxc-cli export", f"CSV {csv_mib:.1f} MiB, {csv_lines - 1} entries"),
    ):
        print(
            f"{label} wall median {wall[name]:.3f} s  CPU median {cpu[name]:.3f} s  "
            f"peak RSS {rss[name]:.1f} MiB"
        )
        runs = ", ".join(f"{r[0]:.2f}/{r[1]:.2f}" for r in results[name])
        print(f"  runs (wall/CPU s): {runs}; {extra}")
    print(f"one Custody unseal (Argon2id) in setup: {unseal_seconds:.3f} s")
    if args.agent:
        print(
            f"with the vault running: CPU includes the agent's; agent peak RSS "
            f"{agent_rss / 1024:.1f} MiB (since it started)"
        )
    print(
        f"ratio custody / keepassxc-cli: wall {wall['custody'] / wall['keepassxc']:.2f}x, "
        f"CPU {cpu['custody'] / cpu['keepassxc']:.2f}x (target: <= 1.00x)"
    )


if __name__ == "__main__":
    main()
