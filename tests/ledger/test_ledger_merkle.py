"""RFC 9162 2.1 Merkle trees: hand-computed vectors and properties over random trees (hypothesis)."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ledger import merkle


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(bytes([i % 256]) * (i % 7 + 1)) for i in range(n)]


def test_rfc9162_leaf_and_node_prefixes() -> None:
    assert merkle.leaf_hash(b"") == h(b"\x00")
    assert merkle.leaf_hash(b"") == bytes.fromhex(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == h(b"\x01" + b"a" * 32 + b"b" * 32)


def test_empty_tree_root_is_hash_of_empty_string() -> None:
    assert merkle.MemoryTree().root() == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_three_leaf_tree_by_hand() -> None:
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    ab = h(b"\x01" + a + b)
    expected = h(b"\x01" + ab + c)
    tree = merkle.MemoryTree([a, b, c])
    assert tree.root() == expected
    assert merkle.inclusion_proof(tree, 2, 3) == [ab]
    assert merkle.inclusion_proof(tree, 0, 3) == [b, c]
    assert merkle.consistency_proof(tree, 2, 3) == [c]
    assert merkle.consistency_proof(tree, 1, 3) == [b, c]
    assert merkle.verify_consistency(2, 3, ab, expected, [c])


def test_seven_leaf_rfc_example_shapes() -> None:
    # RFC 9162 2.1.5: the inclusion proof for d0 in the 7-leaf tree is [b, h, i].
    lv = leaves(7)
    tree = merkle.MemoryTree(lv)
    hh = merkle.node_hash(lv[2], lv[3])
    i = merkle.node_hash(merkle.node_hash(lv[4], lv[5]), lv[6])
    assert merkle.inclusion_proof(tree, 0, 7) == [lv[1], hh, i]
    # consistency between 4 and 7 leaves is [l] = [i] (4 is a power of two: k is prepended by the verifier)
    assert merkle.consistency_proof(tree, 4, 7) == [i]
    # consistency between 3 and 7 leaves is [c, d, g, l]
    g = merkle.node_hash(lv[0], lv[1])
    assert merkle.consistency_proof(tree, 3, 7) == [lv[2], lv[3], g, i]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 140), st.data())
def test_every_proof_verifies_and_matches_the_definition(n: int, data: st.DataObject) -> None:
    lv = leaves(n)
    tree = merkle.MemoryTree(lv)
    assert tree.root() == merkle.mth(lv)
    m = data.draw(st.integers(0, n - 1))
    size = data.draw(st.integers(m + 1, n))
    root = merkle.mth(lv[:size])
    assert tree.root(size) == root
    proof = merkle.inclusion_proof(tree, m, size)
    assert merkle.verify_inclusion(m, size, lv[m], proof, root)
    first = data.draw(st.integers(1, n))
    second = data.draw(st.integers(first, n))
    cproof = merkle.consistency_proof(tree, first, second)
    assert merkle.verify_consistency(first, second, merkle.mth(lv[:first]), merkle.mth(lv[:second]), cproof)


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 100), st.data())
def test_a_flipped_bit_fails(n: int, data: st.DataObject) -> None:
    lv = leaves(n)
    tree = merkle.MemoryTree(lv)
    m = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(tree, m, n)
    root = tree.root()

    def flip(value: bytes) -> bytes:
        bit = data.draw(st.integers(0, len(value) * 8 - 1))
        out = bytearray(value)
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    assert not merkle.verify_inclusion(m, n, flip(lv[m]), proof, root)
    assert not merkle.verify_inclusion(m, n, lv[m], proof, flip(root))
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[j] = flip(bad[j])
        assert not merkle.verify_inclusion(m, n, lv[m], bad, root)
    other = data.draw(st.integers(0, n - 1).filter(lambda x: x != m))
    assert not merkle.verify_inclusion(other, n, lv[m], proof, root) or lv[other] == lv[m]

    first = data.draw(st.integers(1, n - 1))
    cproof = merkle.consistency_proof(tree, first, n)
    old = merkle.mth(lv[:first])
    assert not merkle.verify_consistency(first, n, flip(old), root, cproof)
    assert not merkle.verify_consistency(first, n, old, flip(root), cproof)
    j = data.draw(st.integers(0, len(cproof) - 1))
    bad = list(cproof)
    bad[j] = flip(bad[j])
    assert not merkle.verify_consistency(first, n, old, root, bad)


def test_proofs_reject_bad_arguments() -> None:
    tree = merkle.MemoryTree(leaves(4))
    assert not merkle.verify_inclusion(4, 4, b"x" * 32, [], tree.root())
    assert not merkle.verify_consistency(0, 4, b"", tree.root(), [])
    assert not merkle.verify_consistency(2, 4, tree.root(2), tree.root(), [])
    assert merkle.verify_consistency(4, 4, tree.root(), tree.root(), [])
