"""A/B of the check-out path: this checkout against another revision, in the same run.

    python bench/ab_checkout.py --against REV [--pg URL] [--workers 1 2] [--slices 10]
        [--slice-seconds 3] [--clients 32]

The load and the figures are bench_checkout.py's (wrk, 32 connections, check-out + check-in
pairs; CPU per request of the servers and of PostgreSQL). REV is checked out in a temporary
git worktree; each side, with each worker count, gets a database of its own, set up by that
side's own code, and all of them are served at once and driven in turn, slice by slice, with
the order rotated every slice (``bench_checkout._drive_in_turn``): on these noisy machines
only figures from the same minutes compare. Prints each configuration, then this side / REV
per worker count and each side's 2-worker / 1-worker ratio.

SQLite unless --pg (an admin URL: fresh databases are created and dropped).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_checkout as bc  # noqa: E402

#: run in a side's own tree: its vault set up by its own code (schema, users, tokens)
_SETUP = (
    "import json, sys; sys.path.insert(0, '.'); import vault; "
    "from bench.bench_checkout import setup_vault; "
    "print(json.dumps([vault.__file__, *setup_vault(sys.argv[1], int(sys.argv[2]))]))"
)


def setup_in(tree: Path, url: str, clients: int) -> tuple[str, list[str], list[str]]:
    """A vault at ``url`` set up by the code in ``tree``: (client id, secret ids, tokens)."""
    out = subprocess.run(
        [sys.executable, "-c", _SETUP, url, str(clients)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    imported, client_id, secret_ids, tokens = json.loads(out.strip().splitlines()[-1])
    # the servers start the same way (`python -m` in the tree): the tree's code, not the
    # installed one, or the comparison compares nothing
    assert Path(imported).resolve().is_relative_to(tree.resolve()), imported
    return client_id, secret_ids, tokens


def worktree(stack: ExitStack, rev: str) -> Path:
    """REV checked out (detached) in a temporary worktree, removed when ``stack`` closes."""
    path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="custody-ab-"))) / "tree"
    subprocess.run(
        ["git", "-C", str(bc.REPO), "worktree", "add", "--detach", "-q", str(path), rev],
        check=True,
    )
    stack.callback(
        subprocess.run,
        ["git", "-C", str(bc.REPO), "worktree", "remove", "--force", str(path)],
        check=False,
    )
    return path


def summary(target: Any, slice_seconds: int) -> dict[str, Any]:
    requests = sum(s["requests"] for s in target.slices)
    return {
        "pairs": requests / (len(target.slices) * slice_seconds) / 2,
        "p99": statistics.median(s["p99"] for s in target.slices),
        "cpu": 1000 * sum(s["cpu"] for s in target.slices) / requests,
        "pg": 1000 * sum(s["postgres_cpu"] for s in target.slices) / requests,
        "idle": statistics.mean(s["idle"] for s in target.slices),
        "errors": int(sum(s["errors"] for s in target.slices)),
        "rps": [s["rps"] for s in target.slices],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the revision to compare with")
    parser.add_argument("--pg", help="PostgreSQL admin URL (default: SQLite)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--slice-seconds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    engine = "postgresql" if args.pg else "sqlite"
    fresh: Callable[[], tuple[str, Callable[[], None]]] = (
        (lambda: bc.fresh_pg(args.pg)) if args.pg else bc.fresh_sqlite
    )
    with ExitStack() as stack:
        sides = [("this", bc.REPO), (args.against, worktree(stack, args.against))]
        targets = []
        for name, tree in sides:
            for workers in args.workers:
                url, drop = fresh()
                stack.callback(drop)
                client_id, secret_ids, tokens = setup_in(tree, url, args.clients)
                target = bc._Target(
                    name,
                    workers,
                    "checkout",
                    "api.main:app_from_env",
                    bc.server_env(url),
                    "checkout.lua",
                    bc.checkout_wrk_env(client_id, secret_ids, tokens),
                    tree=tree,
                )
                targets.append(target)
        bc._drive_in_turn(targets, args)
        results = {(t.label, t.workers): summary(t, args.slice_seconds) for t in targets}
        for t in targets:  # before the databases are dropped: what a refused request was
            if results[(t.label, t.workers)]["errors"]:
                refused = bc.refusals(t.env["CUSTODY_DATABASE_URL"])
                print(f"{t.label} workers={t.workers}: refusals logged {refused}", file=sys.stderr)
    rev = args.against
    print(
        f"# ab_checkout {engine}: this checkout against {rev}  clients={args.clients}  "
        f"slices={args.slices} x {args.slice_seconds} s per configuration"
    )
    for (name, workers), r in results.items():
        print(
            f"{name:12.12s} workers={workers}  {r['pairs']:7.1f} pairs/s  p99 {r['p99']:6.1f} ms"
            f"  CPU {r['cpu']:.2f} ms/request"
            + (f", PostgreSQL {r['pg']:.2f}" if args.pg else "")
            + f"  idle {r['idle']:.0%}  errors {r['errors']}"
        )
    for workers in args.workers:
        this, other = results[("this", workers)], results[(rev, workers)]
        slices = [a / b for a, b in zip(this["rps"], other["rps"], strict=True)]
        print(
            f"this / {rev} with {workers} worker(s): {this['pairs'] / other['pairs']:.2f}x "
            f"(slice by slice: median {statistics.median(slices):.2f}x, "
            f"{min(slices):.2f}x-{max(slices):.2f}x)"
        )
    if 1 in args.workers and 2 in args.workers:
        for name, _tree in sides:
            ratio = results[(name, 2)]["pairs"] / results[(name, 1)]["pairs"]
            print(f"{name}: 2 workers / 1 worker {ratio:.2f}x")


if __name__ == "__main__":
    main()
