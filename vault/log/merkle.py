"""Merkle tree hashing and proofs of RFC 9162 (Certificate Transparency v2), section 2.1.

The tree is the one RFC 6962 defined and RFC 9162 kept: with SHA-256,

    MTH({})      = SHA-256()                                  (the empty tree, ``EMPTY_ROOT``)
    MTH({d(0)})  = SHA-256(0x00 || d(0))                      (a leaf, ``leaf_hash``)
    MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) (a node, ``node_hash``)

where k is the largest power of two smaller than n. The 0x00 / 0x01 prefixes keep a leaf from
ever being passed off as a node (RFC 9162 2.1.1, second-preimage resistance).

Everything here is pure: hashes in, hashes out. Leaves are reached through a callback
(``get_leaf_hash(i)``) so the caller decides where they live (a list, a database table). The
checking side (``verify_inclusion``, ``verify_consistency``) takes untrusted input and raises
:class:`ProofError` for every way it can be wrong; the building side treats bad arguments from
our own code as programming errors (``ValueError``) except tree positions, which may come from a
client asking for a proof and so raise :class:`ProofError` too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence

from vault.log.errors import LogError, ProofError

#: size of every hash in the tree (SHA-256)
HASH_SIZE = 32
#: DoS limit: a longer proof is refused before any hashing. An inclusion proof in a tree of n
#: leaves has at most ceil(log2 n) hashes and a consistency proof ceil(log2 n) + 1, so ...
MAX_PROOF_HASHES = 64
#: ... tree sizes are capped at 2**63 (RFC 9162 allows uint64; 2**63 leaves is beyond any log,
#: and Go's tlog uses int64 too). Larger sizes raise ProofError instead of needing 65 hashes.
MAX_TREE_SIZE = 2**63

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

#: MTH({}) - the root of the empty tree (RFC 9162 2.1.1)
EMPTY_ROOT = _sha256(b"").digest()

#: ``get_leaf_hash(index) -> leaf hash``
LeafHashReader = Callable[[int], bytes]
#: ``get_node_hash(level, index) -> hash`` of the perfect subtree of 2**level leaves that starts
#: at leaf ``index * 2**level`` (level 0: the leaf hash itself)
NodeHashReader = Callable[[int, int], bytes]
#: ``on_node(level, index, hash)``: told about every perfect subtree completed by an append
NodeCallback = Callable[[int, int, bytes], None]


def leaf_hash(data: bytes) -> bytes:
    """MTH({data}) = SHA-256(0x00 || data): the hash of one leaf (RFC 9162 2.1.1)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node (RFC 9162 2.1.1)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_leaf_hash(value: bytes) -> bytes:
    """A leaf hash handed to the builder by our own code: 32 bytes or a programming error."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"leaf hash must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ValueError(f"leaf hash is {len(value)} bytes, expected {HASH_SIZE}")
    return value


# --- building: a compact range -------------------------------------------------------------


class CompactRange:
    """The right edge of an append-only tree: enough to append leaves and to compute the root.

    A tree of ``size`` leaves is, left to right, one perfect subtree per set bit of ``size``
    (largest first); MTH of the whole tree is those subtree hashes folded from the right with
    ``node_hash``. So the state is ``size`` plus popcount(size) <= 64 hashes - O(log n) memory -
    and appending a leaf merges as many subtrees as ``size + 1`` has trailing zero bits
    (one ``node_hash`` per leaf on average).

    The journal keeps one of these next to the log and stores it with :meth:`to_bytes` or
    :meth:`to_json`; :func:`root_from_leaf_hashes` uses it for a one-shot root.
    """

    __slots__ = ("_size", "_hashes")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_state(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild from a stored ``size`` and its subtree hashes (largest subtree first)."""
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise LogError("compact range: size out of range")
        if len(hashes) != size.bit_count():
            raise LogError(
                f"compact range: size {size} needs {size.bit_count()} hashes, got {len(hashes)}"
            )
        if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in hashes):
            raise LogError(f"compact range: every hash must be {HASH_SIZE} bytes")
        state = cls()
        state._size = size
        state._hashes = list(hashes)
        return state

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect-subtree hashes, largest (leftmost) subtree first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes, on_node: NodeCallback | None = None) -> None:
        """Append one leaf hash (see :meth:`extend`)."""
        self.extend((leaf_hash,), on_node)

    def extend(self, leaf_hashes: Iterable[bytes], on_node: NodeCallback | None = None) -> None:
        """Append leaf hashes in order. Costs one SHA-256 per leaf on average.

        ``on_node(level, index, hash)``, if given, hears about the leaf (level 0) and every
        perfect subtree each append completes, so a caller can store them and later answer
        proofs in O(log n) through ``get_node_hash``. If a leaf hash is malformed or the
        iterable raises, the leaves before it stay appended and the state stays consistent.
        """
        if on_node is not None:
            self._extend_reporting(leaf_hashes, on_node)
            return
        # The hot loop (10**6 leaves in about a second): locals only, no calls but SHA-256.
        stack = self._hashes
        n = self._size
        sha256 = _sha256
        prefix = _NODE_PREFIX
        try:
            for h in leaf_hashes:
                if h.__class__ is not bytes or len(h) != HASH_SIZE:
                    h = _check_leaf_hash(h)
                if n >= MAX_TREE_SIZE:
                    raise ValueError("tree is full")
                n += 1
                m = n
                while not m & 1:  # each trailing zero of the new size closes a subtree
                    h = sha256(prefix + stack.pop() + h).digest()
                    m >>= 1
                stack.append(h)
        finally:
            self._size = n

    def _extend_reporting(self, leaf_hashes: Iterable[bytes], on_node: NodeCallback) -> None:
        stack = self._hashes
        for h in leaf_hashes:
            h = _check_leaf_hash(h)
            if self._size >= MAX_TREE_SIZE:
                raise ValueError("tree is full")
            index = self._size
            on_node(0, index, h)
            level = 0
            m = index + 1
            while not m & 1:
                h = node_hash(stack.pop(), h)
                level += 1
                index >>= 1
                on_node(level, index, h)
                m >>= 1
            stack.append(h)
            self._size += 1

    def extend_subtrees(self, subtrees: Iterable[tuple[int, bytes]]) -> None:
        """Append whole perfect subtrees, left to right: ``(level, hash)`` covers the next
        ``2**level`` leaves. Each must start where the tree ends on a multiple of its width
        (what :meth:`SubtreeLevels.subtrees` returns for a range that starts at :attr:`size`), so it
        merges exactly as its leaves would have, one ``node_hash`` per carry."""
        stack = self._hashes
        for level, h in subtrees:
            width = 1 << level
            if self._size % width:
                raise ValueError(f"a subtree of 2**{level} leaves cannot start at {self._size}")
            if self._size + width > MAX_TREE_SIZE:
                raise ValueError("tree is full")
            h = _check_leaf_hash(h)
            self._size += width
            m = self._size >> level
            while not m & 1:
                h = _sha256(_NODE_PREFIX + stack.pop() + h).digest()
                m >>= 1
            stack.append(h)

    def root(self) -> bytes:
        """MTH of the leaves appended so far (``EMPTY_ROOT`` when there are none)."""
        if not self._hashes:
            return EMPTY_ROOT
        hashes = self._hashes
        r = hashes[-1]
        for h in reversed(hashes[:-1]):
            r = _sha256(_NODE_PREFIX + h + r).digest()
        return r

    def copy(self) -> CompactRange:
        return CompactRange.from_state(self._size, self._hashes)

    # Serialised forms: 8-byte big-endian size || the hashes; or JSON {"size", "hashes" (hex)}.

    def to_bytes(self) -> bytes:
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise LogError("compact range: malformed encoding")
        size = int.from_bytes(data[:8], "big")
        body = bytes(data[8:])
        hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return cls.from_state(size, hashes)

    def to_json(self) -> str:
        return json.dumps({"size": self._size, "hashes": [h.hex() for h in self._hashes]})

    @classmethod
    def from_json(cls, text: str | bytes) -> CompactRange:
        try:
            obj = json.loads(text)
            size = obj["size"]
            hashes = [bytes.fromhex(h) for h in obj["hashes"]]
        except (ValueError, TypeError, KeyError) as exc:
            raise LogError("compact range: malformed JSON") from exc
        return cls.from_state(size, hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}...)"


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """MTH of a stream of leaf hashes, in O(log n) memory (n - 1 node hashes for n leaves)."""
    builder = CompactRange()
    builder.extend(hashes)
    return builder.root()


class SubtreeLevels:
    """Every perfect subtree that lies wholly inside the leaf range ``[begin, begin + n)``,
    hashed level by level from the range's leaf hashes (n - 1 node hashes at most).

    This lets independent workers each hash a stretch of a log: a worker returns
    :meth:`subtrees` of its stretch (and of its prefixes up to any checkpoint sizes inside it),
    O(log n) hashes each, and whoever holds the tree to the left appends them with
    :meth:`CompactRange.extend_subtrees`. The result is the tree the leaves themselves make,
    because RFC 9162's tree of any size is the perfect subtrees of its binary decomposition.
    """

    __slots__ = ("begin", "end", "_levels", "_firsts")

    def __init__(self, begin: int, leaf_hashes: Sequence[bytes]) -> None:
        if begin < 0 or begin + len(leaf_hashes) > MAX_TREE_SIZE:
            raise ValueError("leaf range out of bounds")
        self.begin = begin
        self.end = begin + len(leaf_hashes)
        #: _levels[k][j] is the subtree of level k with index _firsts[k] + j
        self._levels: list[Sequence[bytes]] = [leaf_hashes]
        self._firsts = [begin]
        sha256, prefix = _sha256, _NODE_PREFIX
        level = 0
        while True:
            below, below_first = self._levels[level], self._firsts[level]
            first = -(-self.begin >> (level + 1))  # first index whose leaves all lie in range
            stop = self.end >> (level + 1)
            if stop <= first:
                break
            at = 2 * first - below_first
            self._levels.append(
                [
                    sha256(prefix + below[i] + below[i + 1]).digest()
                    for i in range(at, at + 2 * (stop - first), 2)
                ]
            )
            self._firsts.append(first)
            level += 1

    def subtrees(self, end: int | None = None) -> list[tuple[int, bytes]]:
        """The range ``[begin, end)`` as maximal perfect subtrees ``(level, hash)``, left to
        right - at most 2 log2(n) of them. ``end`` defaults to the end of the range."""
        end = self.end if end is None else end
        if not self.begin <= end <= self.end:
            raise ValueError(f"{end} is outside the range {self.begin}..{self.end}")
        out: list[tuple[int, bytes]] = []
        at = self.begin
        top = len(self._levels) - 1
        while at < end:
            # the widest subtree that starts at ``at`` (aligned) and does not pass ``end``
            level = min(top, (at & -at).bit_length() - 1 if at else top)
            while at + (1 << level) > end:
                level -= 1
            out.append((level, self._levels[level][(at >> level) - self._firsts[level]]))
            at += 1 << level
        return out


# --- proofs: which subtrees they are made of ---------------------------------------------------


def _split(n: int) -> int:
    """k of RFC 9162 2.1.1: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [start, end) whose MTHs make PATH(index, D[size]) (RFC 9162 2.1.3.1),
    in proof order (from the leaf up). ``0 <= index < size``."""
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make PROOF(old_size, D[new_size]) = SUBPROOF(m, D[n], true)
    (RFC 9162 2.1.4.1), in proof order. ``0 < old_size < new_size``."""
    ranges: list[tuple[int, int]] = []
    start, end, m, whole_old_tree = 0, new_size, old_size, True
    while True:
        if end - start == m:
            # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
            if not whole_old_tree:
                ranges.append((start, end))
            break
        k = _split(end - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
            m -= k
            whole_old_tree = False
    ranges.reverse()
    return ranges


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int):
        raise ProofError(f"{what} must be an integer")
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"{what} {size} is out of range")


# --- proofs: generating ----------------------------------------------------------------------


def subtree_hash(start: int, end: int, get_leaf_hash: LeafHashReader) -> bytes:
    """MTH(D[start:end]) from leaf hashes.

    Cost: ``end - start`` calls to ``get_leaf_hash`` and one fewer SHA-256; O(log n) memory.
    """
    if not 0 <= start <= end:
        raise ValueError("subtree range must satisfy 0 <= start <= end")
    return root_from_leaf_hashes(get_leaf_hash(i) for i in range(start, end))


def _range_reader(
    get_leaf_hash: LeafHashReader, get_node_hash: NodeHashReader | None
) -> Callable[[int, int], bytes]:
    """MTH(D[start:end]) for the ranges that proofs are made of.

    Those ranges start at a multiple of the smallest power of two >= their length, so each is the
    perfect subtrees of its binary length, left to right, folded from the right. With
    ``get_node_hash`` that is at most 64 lookups; without it, every leaf of the range is read.
    """
    if get_node_hash is None:

        def from_leaves(start: int, end: int) -> bytes:
            return subtree_hash(start, end, get_leaf_hash)

        return from_leaves

    node = get_node_hash

    def from_nodes(start: int, end: int) -> bytes:
        parts: list[bytes] = []
        pos = start
        for level in range((end - start).bit_length() - 1, -1, -1):
            if (end - start) >> level & 1:
                parts.append(node(level, pos >> level))
                pos += 1 << level
        r = parts[-1]
        for h in reversed(parts[:-1]):
            r = node_hash(h, r)
        return r

    return from_nodes


def inclusion_proof(
    index: int,
    size: int,
    get_leaf_hash: LeafHashReader,
    *,
    get_node_hash: NodeHashReader | None = None,
) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1: the audit path proving leaf ``index`` is in
    the tree of ``size`` leaves, ordered from the leaf up (at most 64 hashes).

    Cost with ``get_leaf_hash`` only: the sibling subtrees cover every leaf but one, so about
    ``size`` leaf reads and ``size`` SHA-256 - fine for small trees and tests. Give
    ``get_node_hash`` (hashes of stored perfect subtrees, e.g. recorded through
    :meth:`CompactRange.extend`'s ``on_node``) and it is O(log size) lookups and hashes: every
    sibling is a perfect subtree except at most one on the tree's right edge, which is at most
    64 perfect subtrees. Raises :class:`ProofError` if ``index >= size``.
    """
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    mth = _range_reader(get_leaf_hash, get_node_hash)
    return [mth(start, end) for start, end in _inclusion_ranges(index, size)]


def consistency_proof(
    old_size: int,
    new_size: int,
    get_leaf_hash: LeafHashReader,
    *,
    get_node_hash: NodeHashReader | None = None,
) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 2.1.4.1: proof that the tree of ``old_size``
    leaves is a prefix of the tree of ``new_size`` leaves (at most 64 hashes).

    RFC 9162 defines it for 0 < old_size < new_size; for old_size == 0 or old_size == new_size
    the proof is empty (see :func:`verify_consistency`). Cost as for :func:`inclusion_proof`:
    about ``new_size`` leaf reads from leaves alone, O(log n) lookups with ``get_node_hash``.
    Raises :class:`ProofError` if ``old_size > new_size``.
    """
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    mth = _range_reader(get_leaf_hash, get_node_hash)
    return [mth(start, end) for start, end in _consistency_ranges(old_size, new_size)]


# --- proofs: verifying (untrusted input) --------------------------------------------------------


def _checked_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProofError(f"{what} is not bytes")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")
    return value


def _checked_proof(proof: Sequence[bytes], expected: int) -> list[bytes]:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"proof has {len(proof)} hashes, more than the {MAX_PROOF_HASHES} allowed")
    if len(proof) != expected:
        raise ProofError(f"proof has {len(proof)} hashes, expected {expected}")
    return [_checked_hash(p, f"proof hash {i}") for i, p in enumerate(proof)]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves whose MTH is
    ``root`` (RFC 9162 2.1.3.2). Returns None or raises :class:`ProofError`.

    Only as strong as the pairing of ``size`` with ``root``: trust both from one signed
    checkpoint.
    """
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:  # step 1
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    path = _checked_proof(proof, len(_inclusion_ranges(index, size)))
    r = _checked_hash(leaf_hash, "leaf hash")
    root = _checked_hash(root, "root")

    fn, sn = index, size - 1  # step 2 (r = hash is step 3)
    for p in path:  # step 4
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:  # only when fn == sn: climb to where we are a right child
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 5
        raise ProofError("inclusion proof is too short")
    if not hmac.compare_digest(r, root):
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with MTH ``old_root`` is a prefix of the tree
    of ``new_size`` leaves with MTH ``new_root`` (RFC 9162 2.1.4.2). Returns None or raises
    :class:`ProofError`.

    RFC 9162 defines proofs only for 0 < old_size < new_size. The two trivial cases are decided
    here, as transparency-dev/merkle does, with one departure noted:
      * old_size == new_size: the proof must be empty and the roots equal;
      * old_size == 0: the proof must be empty and, stricter than transparency-dev,
        ``old_root`` must be ``EMPTY_ROOT`` (any tree extends the empty tree).
    """
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0 or old_size == new_size:
        path = _checked_proof(proof, 0)
        old_root = _checked_hash(old_root, "old root")
        new_root = _checked_hash(new_root, "new root")
        if old_size == 0 and not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise ProofError("old root is not the root of the empty tree")
        if old_size == new_size and not hmac.compare_digest(old_root, new_root):
            raise ProofError("trees of the same size have different roots")
        return

    path = _checked_proof(proof, len(_consistency_ranges(old_size, new_size)))
    old_root = _checked_hash(old_root, "old root")
    new_root = _checked_hash(new_root, "new root")

    if not path:  # step 1 (the length check above already ensures it for 0 < old < new)
        raise ProofError("consistency proof is empty")
    if old_size & (old_size - 1) == 0:  # step 2: old tree is a perfect subtree of the new one
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 7
        raise ProofError("consistency proof is too short")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError("consistency proof does not lead to the old root")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError("consistency proof does not lead to the new root")
