"""Merkle tree throughput: vault/log/merkle.py against the bare cost of its SHA-256 calls.

    python bench/bench_merkle.py [--n 1000000] [--old 1000] [--repeat 3]

Measured in the same run, on the same machine:
  * root of N leaves with merkle.py: leaf_hash on each event, then root_from_leaf_hashes
  * the bare floor: hashlib.sha256(...).digest() over the same N leaf inputs (0x00 || data) and
    N - 1 node inputs (0x01 || left || right), prepared beforehand - no tree logic at all
  * the ratio of the two (how much the tree bookkeeping costs on top of hashing)
  * a consistency proof from --old to --n leaves: the tree is built once, recording every
    perfect subtree (CompactRange.extend's on_node), so the proof is made from O(log n) stored
    hashes; then the time to generate it and to verify it
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import timed  # noqa: E402
from vault.log.merkle import (  # noqa: E402
    HASH_SIZE,
    CompactRange,
    consistency_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
)


def best(samples: list[float]) -> str:
    return f"best {min(samples):7.3f} s  median {statistics.median(samples):7.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="leaves in the tree")
    parser.add_argument("--old", type=int, default=1_000, help="old size for the proof")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing")
    args = parser.parse_args()
    n, old = args.n, args.old
    if not 0 < old < n:
        sys.exit("need 0 < --old < --n")

    events = [b"custody journal event %010d" % i for i in range(n)]
    print(f"{n:,} leaves of {len(events[0])} bytes; python {sys.version.split()[0]}")

    # --- root of n leaves -------------------------------------------------------------------
    root = b""

    def with_merkle() -> None:
        nonlocal root
        root = root_from_leaf_hashes([leaf_hash(e) for e in events])

    leaf_hashes = [leaf_hash(e) for e in events]
    leaf_inputs = [b"\x00" + e for e in events]
    node_inputs = [b"\x01" + leaf_hashes[i - 1] + leaf_hashes[i] for i in range(1, n)]
    sha256 = hashlib.sha256

    def bare_hashlib() -> None:
        for data in leaf_inputs:
            sha256(data).digest()
        for data in node_inputs:
            sha256(data).digest()

    def tree_only() -> None:
        root_from_leaf_hashes(leaf_hashes)

    def bare_nodes_only() -> None:
        for data in node_inputs:
            sha256(data).digest()

    merkle_runs = [timed(with_merkle) for _ in range(args.repeat)]
    bare_runs = [timed(bare_hashlib) for _ in range(args.repeat)]
    tree_runs = [timed(tree_only) for _ in range(args.repeat)]
    bare_node_runs = [timed(bare_nodes_only) for _ in range(args.repeat)]
    print()
    print(f"root of {n:,} leaves (leaf_hash + root_from_leaf_hashes)")
    print(f"  merkle.py                {best(merkle_runs)}")
    print(f"  bare hashlib, 2n-1 calls {best(bare_runs)}")
    print(f"  ratio merkle/bare        {min(merkle_runs) / min(bare_runs):7.2f}x")
    print(f"tree only, from {n:,} leaf hashes (root_from_leaf_hashes)")
    print(f"  merkle.py                {best(tree_runs)}")
    print(f"  bare hashlib, n-1 calls  {best(bare_node_runs)}")
    print(f"  ratio merkle/bare        {min(tree_runs) / min(bare_node_runs):7.2f}x")
    print(f"  root {root.hex()}")

    # --- consistency proof old -> n ----------------------------------------------------------
    levels: list[bytearray] = []

    def record(level: int, index: int, h: bytes) -> None:
        if level == len(levels):
            levels.append(bytearray())
        levels[level] += h  # nodes of a level complete left to right, so index == len // 32

    tree = CompactRange()
    old_root = b""

    def build() -> None:
        nonlocal old_root
        tree.extend(leaf_hashes[:old], on_node=record)
        old_root = tree.root()
        tree.extend(leaf_hashes[old:], on_node=record)

    build_time = timed(build)
    assert tree.root() == root

    def get_node_hash(level: int, index: int) -> bytes:
        return bytes(levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def no_leaves(i: int) -> bytes:
        raise AssertionError("the proof must come from stored subtrees")

    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        proof = consistency_proof(old, n, no_leaves, get_node_hash=get_node_hash)
    generate = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        verify_consistency(old, n, old_root, root, proof)
    verify = (time.perf_counter() - start) / rounds
    print()
    print(f"consistency proof {old:,} -> {n:,} ({len(proof)} hashes)")
    stored = sum(len(lv) for lv in levels) // HASH_SIZE
    print(f"  build once, storing {stored:,} subtree hashes: {build_time:.3f} s")
    print(f"  generate proof           {generate * 1e6:7.1f} us  (mean of {rounds})")
    print(f"  verify proof             {verify * 1e6:7.1f} us  (mean of {rounds})")


if __name__ == "__main__":
    main()
