"""Import 10,000 entries from a KDBX file and from a Bitwarden JSON file.

    python bench/bench_import.py [--n 10000] [--pg URL]

Generates the two files with Custody's own writers (logins with a username, URL from 200
hosts, notes; every tenth with a TOTP seed, every twentieth with two earlier passwords), then
times the whole import of each into a fresh client: reading the file (KDBX: the Argon2d key
derivation, 64 MiB, and the decryption), planning (matching against the client and creating
the vendors named after the URL hosts) and writing in batches of 500, with the one audit event.
SQLite by default (a real Argon2id unseal, synchronous=FULL); PostgreSQL with --pg (an admin
URL: a fresh database is created and dropped). Target: under 5 s each.
"""

from __future__ import annotations

import argparse
import secrets as pyrandom
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PASSPHRASE, bench_settings, workdir  # noqa: E402

TARGET_SECONDS = 5.0
KDBX_PASSPHRASE = "bench kdbx passphrase"


def make_items(n: int) -> list:  # type: ignore[type-arg]
    from vault.formats.items import PortableItem, PortableVersion

    seed = "JBSWY3DPEHPK3PXPJBSWY3DP"
    items = []
    for i in range(n):
        history = (
            (PortableVersion(f"old-a-{i}"), PortableVersion(f"old-b-{i}")) if i % 20 == 0 else ()
        )
        title = f"Entry {i:05d}"
        items.append(
            PortableItem(
                title=title,
                username=f"user{i}@example.org",
                value=pyrandom.token_urlsafe(18),
                url=f"https://login.host{i % 200}.example/account",
                notes=f"note for entry {i}",
                group=(f"Group {i % 10}",),
                history=history,
            )
        )
        if i % 10 == 0 and len(items) < n:
            items.append(
                PortableItem(
                    title=f"{title} TOTP",
                    kind="totp",
                    value=seed,
                    url=f"https://login.host{i % 200}.example/account",
                    group=(f"Group {i % 10}",),
                )
            )
    return items[:n]


def open_store(root: Path, url: str | None):  # type: ignore[no-untyped-def]
    from vault.config import sqlite_url
    from vault.keys import UnsealSecret
    from vault.store import Store, init_vault

    home = root / "custody-data"
    settings = bench_settings(url or sqlite_url(home / "custody.db"), home)
    init_vault(settings, passphrase=PASSPHRASE)
    store = Store.open(settings)
    return store, store.unseal(UnsealSecret.from_passphrase(PASSPHRASE))


def run(root: Path, n: int, url: str | None) -> dict[str, float]:
    from vault.formats import writers
    from vault.formats.readers import read_source
    from vault.services import clients, imports

    items = make_items(n)
    files = {"keepass": root / "bench.kdbx", "bitwarden": root / "bench.json"}
    started = time.perf_counter()
    writers.write("kdbx", items, files["keepass"], passphrase=KDBX_PASSPHRASE)
    print(
        f"  wrote {files['keepass'].name} ({files['keepass'].stat().st_size // 1024} KiB) "
        f"in {time.perf_counter() - started:.2f} s"
    )
    started = time.perf_counter()
    writers.write("bitwarden-json", items, files["bitwarden"])
    print(
        f"  wrote {files['bitwarden'].name} ({files['bitwarden'].stat().st_size // 1024} KiB) "
        f"in {time.perf_counter() - started:.2f} s"
    )
    store, keys = open_store(root, url)
    results: dict[str, float] = {}
    try:
        for source, path in files.items():
            client = f"Client {source}"
            with store.context("operator:bench", keys) as ctx:
                clients.add_client(ctx, client)
            t0, cpu0 = time.perf_counter(), time.process_time()
            read, records = read_source(source, path, passphrase=KDBX_PASSPHRASE)
            t1 = time.perf_counter()
            result = imports.run_import(
                lambda: store.context("operator:bench", keys), client, read, records, source=source
            )
            t2, cpu = time.perf_counter(), time.process_time() - cpu0
            assert result.created == len(read), (result.created, len(read), result.errors)
            results[source] = t2 - t0
            print(
                f"  {source:9s}: {len(read)} entries, read {t1 - t0:.2f} s + import "
                f"{t2 - t1:.2f} s = {t2 - t0:.2f} s (CPU {cpu:.2f} s; {result.batches} batches, "
                f"{result.plan.counts()['vendors_create']} vendors)  "
                f"{'OK' if t2 - t0 < TARGET_SECONDS else 'over target'}"
            )
    finally:
        store.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pg", help="PostgreSQL admin URL: also run against PostgreSQL")
    args = parser.parse_args()
    with workdir("custody-bench-import-") as root:
        print(f"SQLite, {args.n} entries:")
        (root / "sqlite").mkdir()
        run(root / "sqlite", args.n, None)
    if args.pg:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"custody_bench_{pyrandom.token_hex(4)}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            with workdir("custody-bench-import-") as root:
                print(f"PostgreSQL, {args.n} entries:")
                url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
                (root / "pg").mkdir()
                run(root / "pg", args.n, url)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
