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

from bench.common import PASSPHRASE, require, workdir  # noqa: E402

KDBX_PASSWORD = "benchmark kdbx passphrase"


def _value(i: int) -> str:
    return f"pw-{i:07d}-{'x' * 16}"


def setup_vault(home: Path, n: int, records: int) -> float:
    """The vault and client; returns how long one unseal takes (seconds)."""
    from sqlalchemy import insert, select

    from vault.config import Settings, sqlite_url
    from vault.crypto import age
    from vault.db.models import Secret, SecretLink, Vendor, new_id
    from vault.keys import UnsealSecret
    from vault.services import clients, inventory, secrets
    from vault.store import Store, init_vault

    settings = Settings(
        home=home,
        database_url=sqlite_url(home / "custody.db"),
        unseal_file=None,
        unseal_passphrase_set=False,
        allow_weak_kdf=False,
    )
    init_vault(settings, passphrase=PASSPHRASE, admin=None)
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
) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process (wait4 gives that child's own rusage)."""
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
    return elapsed, int(usage.ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="secrets (and KDBX entries)")
    parser.add_argument("--records", type=int, default=500, help="vendors + assets")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    keepassxc = require("keepassxc-cli")
    custody = str(Path(sys.executable).parent / "custody")

    with workdir("custody-bench-export-") as root:
        home = root / "custody-data"
        started = time.perf_counter()
        unseal_seconds = setup_vault(home, args.n, args.records)
        kdf_ms = max(1, round(unseal_seconds * 1000))
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
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        env.update(
            CUSTODY_HOME=str(home),
            CUSTODY_UNSEAL_FILE=str(unseal_file),
            CUSTODY_NO_AGENT="1",
        )
        results: dict[str, list[tuple[float, int]]] = {"custody": [], "keepassxc": []}
        for _ in range(args.runs):
            bundle = root / "acme.age"
            results["custody"].append(
                run_measured(
                    [custody, "export", "Acme", "--out", str(bundle)],
                    env,
                    stdout=root / "custody.out",
                )
            )
            results["keepassxc"].append(
                run_measured(
                    [keepassxc, "export", "-q", "-f", "csv", str(root / "acme.kdbx")],
                    env,
                    stdin=f"{KDBX_PASSWORD}\n".encode(),
                    stdout=root / "acme.csv",
                )
            )
        csv_lines = sum(1 for _ in (root / "acme.csv").open(encoding="utf-8"))
        bundle_mib = (root / "acme.age").stat().st_size / 2**20
        csv_mib = (root / "acme.csv").stat().st_size / 2**20

    med = {k: statistics.median(t for t, _ in v) for k, v in results.items()}
    rss = {k: max(r for _, r in v) / 1024 for k, v in results.items()}
    print(f"custody export      median {med['custody']:.3f} s  peak RSS {rss['custody']:.1f} MiB")
    print(
        f"  runs: {', '.join(f'{t:.3f}' for t, _ in results['custody'])} s; "
        f"bundle {bundle_mib:.1f} MiB; of which one unseal {unseal_seconds:.3f} s"
    )
    print(
        f"keepassxc-cli export median {med['keepassxc']:.3f} s  peak RSS {rss['keepassxc']:.1f} MiB"
    )
    print(
        f"  runs: {', '.join(f'{t:.3f}' for t, _ in results['keepassxc'])} s; "
        f"CSV {csv_mib:.1f} MiB, {csv_lines - 1} entries"
    )
    ratio = med["custody"] / med["keepassxc"]
    print(f"ratio custody / keepassxc-cli = {ratio:.2f}x (target: <= 1.00x)")


if __name__ == "__main__":
    main()
