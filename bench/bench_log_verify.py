"""End-to-end verification of an exported log against the bare cost of its SHA-256 work.

    python bench/bench_log_verify.py [--n 1000000] [--every 1000] [--repeat 3]

Builds an export file (docs/audit-log.md format) of N realistic events - check-outs with a
reason and a ticket, sign-ins, secret additions - with a signed checkpoint every --every events,
written by the vault's own encoder and signer. Then, in the same run:

  * ``custody audit verify`` work, in process: ``vault.log.verify.verify_export`` reading the
    file line by line (parse, re-derive each leaf from its fields, compare with the leaf bytes,
    hash, recompute the tree, check each checkpoint's root and signature);
  * ``custody audit verify FILE --key K`` as a whole process (start-up included; one worker
    process per CPU), its wall time and its CPU time (user + system of all its processes:
    stable on a shared machine where wall time is not);
  * the same command with the verifier's Python fast path instead of its C one (when built;
    ``CUSTODY_NATIVE=0``);
  * the bare floor: ``hashlib.sha256(...).digest()`` over the same N leaf inputs
    (0x00 || leaf) and N - 1 node inputs, prepared in memory beforehand;
  * the ratio of the two (target: within 2x);
  * a consistency proof between sizes 10^3 and N: generation and verification time (target
    verification under 10 ms).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from vault.log import merkle  # noqa: E402
from vault.log import verify as verify_module  # noqa: E402
from vault.log.events import (  # noqa: E402
    checkpoint_line,
    encode,
    event_object,
    export_header,
    export_line,
)
from vault.log.note import Checkpoint, Signer, generate_signer, sign_checkpoint  # noqa: E402
from vault.log.verify import verify_export  # noqa: E402

ORIGIN = "custody.vault/bench"

ACTIONS = ("secret.checkout", "lease.checkin", "auth.login", "secret.add", "secret.totp")


def event_fields(i: int, start: datetime) -> dict[str, object]:
    action = ACTIONS[i % len(ACTIONS)]
    return {
        "at": start + timedelta(milliseconds=37 * i),
        "actor": f"user:consultant{i % 40}",
        "role": "consultant",
        "source": f"10.0.{i % 7}.{i % 250}",
        "action": action,
        "outcome": "ok" if i % 13 else "denied",
        "client_id": f"7d0c3a4e-0000-4000-8000-{i % 300:012d}",
        "subject_kind": "secret",
        "subject_id": f"5b1e6c1a-0000-4000-8000-{i % 9000:012d}",
        "detail": {"reason": "monthly patching of the file server", "ticket": f"T-{i}"}
        if action == "secret.checkout"
        else {"title": f"Router admin {i % 9000}"},
    }


def build_export(path: Path, n: int, every: int, signer: Signer) -> list[bytes]:
    """Write the export; return the leaf bytes (for the bare-hashing floor)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    leaves: list[bytes] = []
    compact = merkle.CompactRange()
    notes: list[str] = []
    events: list[bytes] = []
    for i in range(n):
        obj = event_object(i, event_fields(i, start))
        leaf = encode(obj)
        leaves.append(leaf)
        compact.append(merkle.leaf_hash(leaf))
        events.append(export_line(leaf, i))
        if compact.size % every == 0 or compact.size == n:
            checkpoint = Checkpoint(origin=ORIGIN, size=compact.size, root=compact.root())
            notes.append(sign_checkpoint(checkpoint, signer))
    header = export_header(
        ORIGIN,
        signer.verifier.key_string(),
        n,
        "whole",
        exported_at="2026-11-23T00:00:00.000000Z",
    )
    with path.open("wb") as out:
        out.write(orjson.dumps(header) + b"\n")
        for note in notes:
            out.write(checkpoint_line(note) + b"\n")
        out.write(b"\n".join(events) + b"\n")
    return leaves


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_floor(leaves: list[bytes]) -> float:
    """SHA-256 over the same leaf and node inputs, prepared beforehand; no tree logic."""
    leaf_inputs = [b"\x00" + leaf for leaf in leaves]
    hashes = [hashlib.sha256(x).digest() for x in leaf_inputs]
    node_inputs = []
    level = hashes
    while len(level) > 1:  # the node inputs of a left-balanced tree, built once, untimed
        nxt = []
        for j in range(0, len(level) - 1, 2):
            node = b"\x01" + level[j] + level[j + 1]
            node_inputs.append(node)
            nxt.append(hashlib.sha256(node).digest())
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    sha256 = hashlib.sha256
    start = time.perf_counter()
    for x in leaf_inputs:
        sha256(x).digest()
    for x in node_inputs:
        sha256(x).digest()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=1_000, help="events per checkpoint")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    signer = Signer.parse(generate_signer(ORIGIN)[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        t0 = time.perf_counter()
        leaves = build_export(path, args.n, args.every, signer)
        size_mb = os.path.getsize(path) / 1e6
        print(
            f"{args.n:,} events, {size_mb:,.0f} MB export, checkpoint every {args.every:,} "
            f"(built in {time.perf_counter() - t0:.1f} s); python {sys.version.split()[0]}"
        )
        one, bare, cli, cli_cpu, cli_py = [], [], [], [], []
        jobs = os.cpu_count() or 1
        custody = str(Path(sys.executable).parent / "custody")
        verify_args = ["audit", "verify", str(path), "--key", signer.verifier.key_string()]
        native = verify_module._intact_leaves_native is not None
        for _ in range(args.repeat):
            before = _children_cpu()
            start = time.perf_counter()
            subprocess.run([custody, *verify_args], check=True, capture_output=True)
            cli.append(time.perf_counter() - start)
            cli_cpu.append(_children_cpu() - before)
            if native:  # the baseline of the C fast path: the same command without it
                start = time.perf_counter()
                subprocess.run(
                    [custody, *verify_args],
                    check=True,
                    capture_output=True,
                    env={**os.environ, "CUSTODY_NATIVE": "0"},
                )
                cli_py.append(time.perf_counter() - start)
            start = time.perf_counter()
            with path.open("rb") as lines:
                report = verify_export(lines, key=signer.verifier)
            one.append(time.perf_counter() - start)
            assert report.events == args.n and report.checkpoints == -(-args.n // args.every)
            bare.append(bare_floor(leaves))
        b = min(bare)
        fast_path = "C" if native else "Python"  # Python: not built, or CUSTODY_NATIVE=0
        for name, times in (
            ("verify, 1 process", one),
            (f"custody audit verify FILE --key K ({jobs} workers, {fast_path} fast path)", cli),
            ("  the same with the Python fast path", cli_py),
            ("bare SHA-256 over the same inputs", bare),
        ):
            if not times:
                continue
            best = min(times)
            print(
                f"{name:62s} best {best:7.3f} s  median {statistics.median(times):7.3f} s  "
                f"{best / args.n * 1e6:5.2f} us/event  {best / b:5.2f}x bare"
            )
        print(
            f"custody audit verify CPU (user+sys, all its processes): best {min(cli_cpu):.3f} s, "
            f"{min(cli_cpu) / args.n * 1e6:.2f} us/event, {min(cli_cpu) / b:.2f}x bare "
            f"({jobs} CPUs: wall can be at best CPU / {jobs})"
        )

    # consistency proof 10^3 -> N from stored subtrees
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    nodes: dict[tuple[int, int], bytes] = {}
    compact = merkle.CompactRange()
    compact.extend(hashes, lambda lv, i, h: nodes.__setitem__((lv, i), h))
    old = 1000
    old_root = merkle.root_from_leaf_hashes(hashes[:old])
    t = time.perf_counter()
    proof = merkle.consistency_proof(
        old, args.n, hashes.__getitem__, get_node_hash=lambda lv, i: nodes[(lv, i)]
    )
    gen = time.perf_counter() - t
    t = time.perf_counter()
    merkle.verify_consistency(old, args.n, old_root, compact.root(), proof)
    ver = time.perf_counter() - t
    print(
        f"consistency proof {old:,} -> {args.n:,}: {len(proof)} hashes, generated in "
        f"{gen * 1e6:.0f} us, verified in {ver * 1e6:.0f} us"
    )


if __name__ == "__main__":
    main()
