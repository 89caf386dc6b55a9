"""RFC 9162 section 2.1 Merkle trees: hashing, tree heads, inclusion and consistency proofs.

Pure functions. The proof generators read the tree through a :class:`TreeView`, which only has to
return hashes of *complete, aligned* subtrees (``2**level`` leaves starting at ``index * 2**level``).
A stored log keeps exactly those (see ``broker.ledger.storage``), so a proof costs O(log n)
lookups per path element instead of rehashing the whole tree; :class:`MemoryTree` is the in-memory
view used by tests and by ``broker ledger verify``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0)); the prefix stops second-preimage attacks."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k (RFC 9162 2.1.1); n must be > 1."""
    if n < 2:
        raise ValueError("n must be at least 2")
    return 1 << ((n - 1).bit_length() - 1)


class TreeView(Protocol):
    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree of 2**level leaves starting at leaf index * 2**level."""
        ...


def range_hash(tree: TreeView, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range whose start is aligned to the largest power of two below its
    size (true of every range RFC 9162's recursion visits); O(log n) subtree lookups."""
    size = end - start
    if size <= 0:
        raise ValueError("empty range")
    # Decompose into complete aligned subtrees, largest first, then fold from the right.
    parts: list[bytes] = []
    pos = start
    while pos < end:
        remaining = end - pos
        level = remaining.bit_length() - 1
        while pos % (1 << level):
            level -= 1
        parts.append(tree.subtree(level, pos >> level))
        pos += 1 << level
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = node_hash(part, acc)
    return acc


def root(tree: TreeView, size: int) -> bytes:
    """The Merkle tree head of the first ``size`` leaves."""
    return EMPTY_ROOT if size == 0 else range_hash(tree, 0, size)


def inclusion_proof(tree: TreeView, index: int, size: int) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]) for leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError("index must be within the tree")
    proof: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if m < k:
            proof.append(range_hash(tree, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(tree, start, start + k))
            start, m = start + k, m - k
    proof.reverse()  # the recursion appends outermost-first; the path is leaf-to-root
    return proof


def consistency_proof(tree: TreeView, first: int, second: int) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]) between the trees of ``first`` and ``second`` leaves."""
    if not 0 < first <= second:
        raise ValueError("need 0 < first <= second")
    proof: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:
        k = largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(range_hash(tree, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(tree, start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        proof.append(range_hash(tree, start, end))
    proof.reverse()
    return proof


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``leaf`` sit at ``index`` in the tree of ``size`` leaves with this root?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree of ``second`` leaves an append-only extension of ``first``?"""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is itself a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class MemoryTree:
    """Every complete subtree of a list of leaf hashes, level by level (level 0 = the leaves)."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; returns the (level, index, hash) entries it completed, leaf first."""
        added = [(0, len(self.levels[0]), leaf)]
        self.levels[0].append(leaf)
        level, index = 0, len(self.levels[0]) - 1
        while index & 1:
            parent = node_hash(self.levels[level][index - 1], self.levels[level][index])
            level, index = level + 1, index >> 1
            if len(self.levels) == level:
                self.levels.append([])
            self.levels[level].append(parent)
            added.append((level, index, parent))
        return added

    def subtree(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root(self, self.size if size is None else size)


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH by the definition (recursive); the reference the fast paths are tested against."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = largest_power_of_two_below(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))
