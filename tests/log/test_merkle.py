"""RFC 9162 Merkle trees: known answers, a naive reference, and properties of every proof."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import HERE as VECTORS
from tests.vectors import load_json_vectors
from vault.log import merkle
from vault.log.errors import LogError, ProofError
from vault.log.merkle import (
    EMPTY_ROOT,
    MAX_PROOF_HASHES,
    MAX_TREE_SIZE,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

VECTOR_FILE = "log/merkle.json"
REFERENCE = json.loads((VECTORS / VECTOR_FILE).read_text(encoding="utf-8"))
VECTORS_BY_NAME = {v["name"]: v for v in load_json_vectors(VECTOR_FILE)}
REF_LEAVES = [bytes.fromhex(x) for x in REFERENCE["leaves"]]
REF_LEAF_HASHES = [leaf_hash(d) for d in REF_LEAVES]


# --- an independent, naive implementation: the RFC 9162 2.1 definitions, recursively -----------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _sha(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_mth(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return naive_subproof(m, leaves[:k], whole) + [naive_mth(leaves[k:])]
    return naive_subproof(m - k, leaves[k:], False) + [naive_mth(leaves[:k])]


def naive_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    return naive_subproof(m, leaves, True)


# --- a test tree: distinct leaves, with every perfect subtree recorded ------------------------

TREE_LEAVES = [b"custody leaf %d" % i for i in range(260)]
TREE_LEAF_HASHES = [leaf_hash(d) for d in TREE_LEAVES]
NODES: dict[tuple[int, int], bytes] = {}
TREE_ROOTS = [EMPTY_ROOT]
_builder = CompactRange()
for _h in TREE_LEAF_HASHES:
    _builder.append(_h, lambda level, index, h: NODES.__setitem__((level, index), h))
    TREE_ROOTS.append(_builder.root())


def get_leaf(i: int) -> bytes:
    return TREE_LEAF_HASHES[i]


def get_node(level: int, index: int) -> bytes:
    return NODES[(level, index)]


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


# --- known answers ------------------------------------------------------------------------------


def test_leaf_hashes_match_reference() -> None:
    assert [h.hex() for h in REF_LEAF_HASHES] == REFERENCE["leaf_hashes"]


def test_empty_root_and_node_hash() -> None:
    assert EMPTY_ROOT.hex() == VECTORS_BY_NAME["root-0"]["root"]
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    two = VECTORS_BY_NAME["root-2"]["root"]
    assert node_hash(REF_LEAF_HASHES[0], REF_LEAF_HASHES[1]).hex() == two


def _hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def _inclusion_probes(v: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """transparency-dev-style corruptions of a good inclusion proof; each must fail."""
    index, size = v["index"], v["size"]
    leaf = REF_LEAF_HASHES[index]
    root = bytes.fromhex(v["root"])
    proof = [bytes.fromhex(p) for p in v["proof"]]
    other = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes: list[tuple[str, tuple[Any, ...]]] = [
        ("index - 1", (leaf, index - 1, size, proof, root)),
        ("index + 1", (leaf, index + 1, size, proof, root)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, root)),
        ("size * 2", (leaf, index, size * 2, proof, root)),
        ("size // 2", (leaf, index, size // 2, proof, root)),
        ("wrong leaf", (b"WrongLeaf", index, size, proof, root)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("random root", (leaf, index, size, proof, other)),
        ("trailing garbage", (leaf, index, size, [*proof, b""], root)),
        ("trailing root", (leaf, index, size, [*proof, root], root)),
        ("preceding garbage", (leaf, index, size, [b"", *proof], root)),
        ("preceding root", (leaf, index, size, [root, *proof], root)),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 3)
        probes.append((f"proof[{i}] bit 3", (leaf, index, size, bad, root)))
    if proof:
        probes.append(("removed component", (leaf, index, size, proof[:-1], root)))
    if len(proof) > 1:
        probes.append(
            ("inserted component", (leaf, index, size, [proof[0], other, *proof[1:]], root))
        )
    return probes


def _consistency_probes(v: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    m, n = v["old_size"], v["new_size"]
    r1, r2 = bytes.fromhex(v["old_root"]), bytes.fromhex(v["new_root"])
    proof = [bytes.fromhex(p) for p in v["proof"]]
    probes: list[tuple[str, tuple[Any, ...]]] = [
        ("old - 1", (m - 1, n, r1, r2, proof)),
        ("old + 1", (m + 1, n, r1, r2, proof)),
        ("old ^ 2", (m ^ 2, n, r1, r2, proof)),
        ("new * 2", (m, n * 2, r1, r2, proof)),
        ("new // 2", (m, n // 2, r1, r2, proof)),
        ("wrong old root", (m, n, b"WrongRoot", r2, proof)),
        ("wrong new root", (m, n, r1, b"WrongRoot", proof)),
        ("swapped roots", (m, n, r2, r1, proof)),
        ("empty proof", (m, n, r1, r2, [])),
        ("trailing garbage", (m, n, r1, r2, [*proof, b""])),
        ("trailing old root", (m, n, r1, r2, [*proof, r1])),
        ("trailing new root", (m, n, r1, r2, [*proof, r2])),
        ("preceding garbage", (m, n, r1, r2, [b"", *proof])),
        ("preceding old root", (m, n, r1, r2, [r1, *proof])),
        ("preceding new root", (m, n, r1, r2, [r2, *proof])),
        ("preceding proof[0]", (m, n, r1, r2, [proof[0], *proof])),
        ("truncated", (m, n, r1, r2, proof[:-1])),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 4)
        probes.append((f"proof[{i}] bit 4", (m, n, r1, r2, bad)))
    return probes


@pytest.mark.parametrize("name", sorted(VECTORS_BY_NAME))
def test_vector(name: str) -> None:
    v = VECTORS_BY_NAME[name]
    kind = v["kind"]
    if kind == "root":
        size = v["size"]
        assert root_from_leaf_hashes(REF_LEAF_HASHES[:size]).hex() == v["root"]
        assert naive_mth(REF_LEAVES[:size]).hex() == v["root"]
        return

    if kind == "inclusion":
        index, size = v["index"], v["size"]
        leaf = bytes.fromhex(v["leaf_hash"]) if "leaf_hash" in v else REF_LEAF_HASHES[index]
        proof = [bytes.fromhex(p) for p in v["proof"]]
        root = bytes.fromhex(v["root"])
        if v["expect"] == "failure":
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, size, proof, root)
            return
        assert _hexes(inclusion_proof(index, size, REF_LEAF_HASHES.__getitem__)) == v["proof"]
        assert _hexes(naive_path(index, REF_LEAVES[:size])) == v["proof"]
        assert naive_mth(REF_LEAVES[:size]).hex() == v["root"]
        verify_inclusion(leaf, index, size, proof, root)
        for desc, probe in _inclusion_probes(v):
            with pytest.raises(ProofError):
                verify_inclusion(*probe)
                pytest.fail(f"verified a corrupted proof: {desc}")
        return

    assert kind == "consistency"
    m, n = v["old_size"], v["new_size"]
    proof = [bytes.fromhex(p) for p in v["proof"]]
    old_root, new_root = bytes.fromhex(v["old_root"]), bytes.fromhex(v["new_root"])
    if v["expect"] == "failure":
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, new_root, proof)
        return
    assert _hexes(consistency_proof(m, n, REF_LEAF_HASHES.__getitem__)) == v["proof"]
    if 0 < m < n:
        assert _hexes(naive_proof(m, REF_LEAVES[:n])) == v["proof"]
    verify_consistency(m, n, old_root, new_root, proof)
    if proof:
        for desc, probe in _consistency_probes(v):
            with pytest.raises(ProofError):
                verify_consistency(*probe)
                pytest.fail(f"verified a corrupted proof: {desc}")


# --- generated proofs against the naive reference -----------------------------------------------


def test_every_proof_in_small_trees_matches_reference_and_verifies() -> None:
    for n in range(1, 34):
        leaves = TREE_LEAVES[:n]
        assert root_from_leaf_hashes(TREE_LEAF_HASHES[:n]) == naive_mth(leaves) == TREE_ROOTS[n]
        for i in range(n):
            proof = inclusion_proof(i, n, get_leaf)
            assert proof == naive_path(i, leaves)
            assert inclusion_proof(i, n, get_leaf, get_node_hash=get_node) == proof
            verify_inclusion(TREE_LEAF_HASHES[i], i, n, proof, TREE_ROOTS[n])
        for m in range(0, n + 1):
            proof = consistency_proof(m, n, get_leaf)
            assert proof == (naive_proof(m, leaves) if 0 < m < n else [])
            assert consistency_proof(m, n, get_leaf, get_node_hash=get_node) == proof
            verify_consistency(m, n, TREE_ROOTS[m], TREE_ROOTS[n], proof)


def test_subtree_hash() -> None:
    assert subtree_hash(0, 0, get_leaf) == EMPTY_ROOT
    assert subtree_hash(4, 7, get_leaf) == naive_mth(TREE_LEAVES[4:7])
    assert subtree_hash(64, 128, get_leaf) == NODES[(6, 1)]
    with pytest.raises(ValueError):
        subtree_hash(5, 4, get_leaf)


# --- properties ---------------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=200)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(sizes)
    return draw(st.integers(min_value=0, max_value=new)), new


def _fails(fn: Any, *args: Any) -> None:
    """The call must raise ProofError - not succeed, not raise anything else."""
    with pytest.raises(ProofError):
        fn(*args)


@settings(max_examples=150, deadline=None)
@given(tree_and_index(), st.data())
def test_inclusion_proofs_verify_and_resist_tampering(
    ti: tuple[int, int], data: st.DataObject
) -> None:
    size, index = ti
    proof = inclusion_proof(index, size, get_leaf)
    leaf, root = TREE_LEAF_HASHES[index], TREE_ROOTS[size]
    verify_inclusion(leaf, index, size, proof, root)

    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    if proof:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="proof index")
        bad = list(proof)
        bad[i] = flip(bad[i], bit)
        _fails(verify_inclusion, leaf, index, size, bad, root)
        _fails(verify_inclusion, leaf, index, size, proof[:i] + proof[i + 1 :], root)
    _fails(verify_inclusion, leaf, index, size, [*proof, proof[0] if proof else root], root)
    _fails(verify_inclusion, flip(leaf, bit), index, size, proof, root)
    _fails(verify_inclusion, leaf, index, size, proof, flip(root, bit))

    # another index or size, with the root a checkpoint would pair with that size
    other_index = data.draw(st.integers(min_value=0, max_value=size), label="other index")
    if other_index != index:
        _fails(verify_inclusion, leaf, other_index, size, proof, root)
    other_size = data.draw(sizes, label="other size")
    if other_size != size:
        legit = index < other_size and inclusion_proof(index, other_size, get_leaf) == proof
        if legit:  # the same path can prove the leaf in both trees (e.g. leaf 0 of sizes 3, 4)
            verify_inclusion(leaf, index, other_size, proof, TREE_ROOTS[other_size])
        else:
            _fails(verify_inclusion, leaf, index, other_size, proof, TREE_ROOTS[other_size])


@settings(max_examples=150, deadline=None)
@given(two_sizes(), st.data())
def test_consistency_proofs_verify_and_resist_tampering(
    sizes_: tuple[int, int], data: st.DataObject
) -> None:
    old, new = sizes_
    proof = consistency_proof(old, new, get_leaf)
    r1, r2 = TREE_ROOTS[old], TREE_ROOTS[new]
    verify_consistency(old, new, r1, r2, proof)
    assert len(proof) <= MAX_PROOF_HASHES

    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    if proof:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="proof index")
        bad = list(proof)
        bad[i] = flip(bad[i], bit)
        _fails(verify_consistency, old, new, r1, r2, bad)
        _fails(verify_consistency, old, new, r1, r2, proof[:i] + proof[i + 1 :])
    _fails(verify_consistency, old, new, r1, r2, [*proof, r1])
    _fails(verify_consistency, old, new, flip(r1, bit), r2, proof)
    if old > 0:  # every tree extends the empty tree, whatever its root
        _fails(verify_consistency, old, new, r1, flip(r2, bit), proof)

    other_old = data.draw(st.integers(min_value=0, max_value=200), label="other old size")
    if other_old != old:
        legit = other_old <= new and consistency_proof(other_old, new, get_leaf) == proof
        if legit:
            verify_consistency(other_old, new, TREE_ROOTS[other_old], r2, proof)
        else:
            _fails(verify_consistency, other_old, new, TREE_ROOTS[other_old], r2, proof)
    other_new = data.draw(sizes, label="other new size")
    if other_new != new:
        legit = old <= other_new and consistency_proof(old, other_new, get_leaf) == proof
        if legit:  # e.g. from size 0, or a proof that does not depend on the new tree's edge
            verify_consistency(old, other_new, r1, TREE_ROOTS[other_new], proof)
        else:
            _fails(verify_consistency, old, other_new, r1, TREE_ROOTS[other_new], proof)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-3, max_value=300),
    st.integers(min_value=-3, max_value=300),
    st.lists(st.binary(min_size=0, max_size=40), max_size=12),
    st.binary(max_size=40),
    st.binary(max_size=40),
)
def test_garbage_only_raises_proof_error(
    a: int, b: int, proof: list[bytes], h1: bytes, h2: bytes
) -> None:
    with contextlib.suppress(ProofError):
        verify_inclusion(h1, a, b, proof, h2)
    with contextlib.suppress(ProofError):
        verify_consistency(a, b, h1, h2, proof)


# --- edges and limits ---------------------------------------------------------------------------


def test_edge_cases_have_clear_messages() -> None:
    root = TREE_ROOTS[8]
    with pytest.raises(ProofError, match="not below tree size"):
        verify_inclusion(TREE_LEAF_HASHES[8], 8, 8, [], root)
    with pytest.raises(ProofError, match="larger than new tree size"):
        verify_consistency(9, 8, TREE_ROOTS[9], root, [])
    with pytest.raises(ProofError, match="same size have different roots"):
        verify_consistency(8, 8, TREE_ROOTS[7], root, [])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 8, TREE_ROOTS[1], root, [])
    with pytest.raises(ProofError, match="expected 0"):
        verify_consistency(0, 8, EMPTY_ROOT, root, [root])
    with pytest.raises(ProofError, match="expected 3"):
        verify_inclusion(TREE_LEAF_HASHES[0], 0, 8, [root], root)
    with pytest.raises(ProofError, match="expected 4"):
        verify_consistency(3, 8, TREE_ROOTS[3], root, [root] * 5)
    with pytest.raises(ProofError, match="32"):
        verify_inclusion(TREE_LEAF_HASHES[0], 0, 1, [], root[:31])
    with pytest.raises(ProofError, match="not bytes"):
        verify_inclusion(TREE_LEAF_HASHES[0], 0, 2, ["ab" * 16], root)  # type: ignore[list-item]
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(TREE_LEAF_HASHES[0], -1, 8, [], root)
    with pytest.raises(ProofError, match="out of range"):
        verify_consistency(1, MAX_TREE_SIZE + 1, root, root, [root])
    with pytest.raises(ProofError, match="not below tree size"):
        inclusion_proof(3, 3, get_leaf)
    with pytest.raises(ProofError, match="larger than new tree size"):
        consistency_proof(4, 3, get_leaf)


def test_proofs_longer_than_the_limit_are_refused_before_hashing() -> None:
    calls = 0

    class Counting(bytes):
        def __len__(self) -> int:
            nonlocal calls
            calls += 1
            return 32

    proof = [Counting(b"\x00" * 32)] * (MAX_PROOF_HASHES + 1)
    with pytest.raises(ProofError, match="more than the 64 allowed"):
        verify_inclusion(TREE_LEAF_HASHES[0], 0, MAX_TREE_SIZE, proof, EMPTY_ROOT)
    with pytest.raises(ProofError, match="more than the 64 allowed"):
        verify_consistency(1, MAX_TREE_SIZE, EMPTY_ROOT, EMPTY_ROOT, proof)
    assert calls == 0


def _uniform_tree() -> tuple[Any, list[bytes]]:
    """A tree of identical leaves, as its perfect-subtree hashes by level."""
    levels = [leaf_hash(b"same")]
    for _ in range(63):
        levels.append(node_hash(levels[-1], levels[-1]))
    return (lambda level, index: levels[level]), levels


def _uniform_root(levels: list[bytes], size: int) -> bytes:
    hashes = [levels[lv] for lv in range(size.bit_length() - 1, -1, -1) if size >> lv & 1]
    return CompactRange.from_state(size, hashes).root()


def test_proofs_in_the_largest_trees() -> None:
    get_node_hash, levels = _uniform_tree()

    def no_leaves(i: int) -> bytes:
        raise AssertionError("must not read leaves")

    for size in (MAX_TREE_SIZE, MAX_TREE_SIZE - 1):
        root = _uniform_root(levels, size)
        for index in (0, 2**61 + 12345, 2**62 - 1, 2**62, size - 2, size - 1):
            proof = inclusion_proof(index, size, no_leaves, get_node_hash=get_node_hash)
            verify_inclusion(levels[0], index, size, proof, root)
    assert len(inclusion_proof(0, MAX_TREE_SIZE - 1, no_leaves, get_node_hash=get_node_hash)) == 63

    # the longest consistency proof that fits: ceil(log2 n) + 1 = 64 hashes
    old, new = 2**62 + 1, MAX_TREE_SIZE
    proof = consistency_proof(old, new, no_leaves, get_node_hash=get_node_hash)
    assert len(proof) == MAX_PROOF_HASHES
    verify_consistency(old, new, _uniform_root(levels, old), _uniform_root(levels, new), proof)
    with pytest.raises(ProofError, match="out of range"):
        consistency_proof(old, new + 1, no_leaves, get_node_hash=get_node_hash)


# --- the compact range --------------------------------------------------------------------------


def test_compact_range_tracks_the_root_and_reports_nodes() -> None:
    builder = CompactRange()
    assert builder.size == 0 and builder.root() == EMPTY_ROOT
    seen: list[tuple[int, int]] = []
    for n, h in enumerate(TREE_LEAF_HASHES[:70], 1):
        builder.append(h, lambda level, index, _h: seen.append((level, index)))
        assert builder.size == n
        assert builder.root() == TREE_ROOTS[n] == naive_mth(TREE_LEAVES[:n])
        assert len(builder.hashes) == n.bit_count()
    # every node of a 70-leaf tree's perfect subtrees, each once: 70 + 35 + 17 + 8 + 4 + 2 + 1
    assert len(seen) == len(set(seen)) == 137
    assert NODES[(3, 2)] == naive_mth(TREE_LEAVES[16:24])


def test_compact_range_extend_matches_appends() -> None:
    one = CompactRange()
    one.extend(TREE_LEAF_HASHES[:100])
    two = CompactRange()
    two.extend(TREE_LEAF_HASHES[:37])
    two.extend(iter(TREE_LEAF_HASHES[37:100]))
    assert one == two and one.root() == TREE_ROOTS[100]
    copy = one.copy()
    copy.append(TREE_LEAF_HASHES[100])
    assert one.size == 100 and copy.size == 101


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 100, 255])
def test_compact_range_serialises(n: int) -> None:
    builder = CompactRange()
    builder.extend(TREE_LEAF_HASHES[:n])
    for restored in (
        CompactRange.from_bytes(builder.to_bytes()),
        CompactRange.from_json(builder.to_json()),
        CompactRange.from_state(builder.size, builder.hashes),
    ):
        assert restored == builder
        assert restored.root() == TREE_ROOTS[n]
        restored.extend(TREE_LEAF_HASHES[n : n + 5])
        assert restored.root() == TREE_ROOTS[n + 5]
    assert json.loads(builder.to_json())["size"] == n


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x00" * 7,
        (3).to_bytes(8, "big") + b"\x00" * 32,  # size 3 needs two hashes
        (2).to_bytes(8, "big") + b"\x00" * 31,
        (1).to_bytes(8, "big"),
    ],
)
def test_compact_range_rejects_bad_bytes(bad: bytes) -> None:
    with pytest.raises(LogError):
        CompactRange.from_bytes(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "[]",
        '{"size": 1}',
        '{"size": 1, "hashes": ["zz"]}',
        '{"size": -1, "hashes": []}',
        '{"size": true, "hashes": ["' + "00" * 32 + '"]}',
        '{"size": 1, "hashes": ["' + "00" * 31 + '"]}',
        '{"size": 18446744073709551616, "hashes": []}',
    ],
)
def test_compact_range_rejects_bad_json(bad: str) -> None:
    with pytest.raises(LogError):
        CompactRange.from_json(bad)


def test_compact_range_rejects_bad_leaves_and_stays_consistent() -> None:
    builder = CompactRange()
    with pytest.raises(ValueError):
        builder.extend([TREE_LEAF_HASHES[0], TREE_LEAF_HASHES[1], b"short"])
    assert builder.size == 2 and builder.root() == TREE_ROOTS[2]
    with pytest.raises(TypeError):
        builder.append("00" * 32)  # type: ignore[arg-type]
    builder.extend([bytearray(TREE_LEAF_HASHES[2])])  # type: ignore[list-item]  # bytes-like
    assert builder.root() == TREE_ROOTS[3]
    assert "CompactRange(size=3" in repr(builder)


def test_module_constants() -> None:
    assert merkle.HASH_SIZE == 32
    assert MAX_PROOF_HASHES == 64
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


# --- stretches hashed apart and joined (parallel verification) ----------------------------------


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_subtrees_of_a_stretch_join_the_tree_as_its_leaves_would(data: st.DataObject) -> None:
    begin = data.draw(st.integers(0, 150), label="begin")
    end = data.draw(st.integers(begin, 200), label="end")
    cut = data.draw(st.integers(begin, end), label="cut")
    stretch = merkle.SubtreeLevels(begin, TREE_LEAF_HASHES[begin:end])
    for upto in (cut, end):
        tree = CompactRange()
        tree.extend(TREE_LEAF_HASHES[:begin])
        tree.extend_subtrees(stretch.subtrees(upto))
        assert tree.size == upto
        assert tree.root() == TREE_ROOTS[upto]


def test_subtrees_are_the_widest_aligned_ones() -> None:
    stretch = merkle.SubtreeLevels(5, TREE_LEAF_HASHES[5:21])
    # [5, 21) = [5,6) [6,8) [8,16) [16,20) [20,21)
    assert [level for level, _ in stretch.subtrees()] == [0, 1, 3, 2, 0]
    assert stretch.subtrees()[2][1] == NODES[(3, 1)]
    assert stretch.subtrees(5) == []
    with pytest.raises(ValueError):
        stretch.subtrees(22)


def test_extend_subtrees_refuses_a_misaligned_subtree() -> None:
    tree = CompactRange()
    tree.extend(TREE_LEAF_HASHES[:3])
    with pytest.raises(ValueError):
        tree.extend_subtrees([(1, NODES[(1, 1)])])  # covers 2..4, but the tree ends at 3
    assert tree.size == 3 and tree.root() == TREE_ROOTS[3]
