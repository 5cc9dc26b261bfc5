"""Hypothesis properties of roots and proofs against the recursive reference."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from merkle import (
    Tree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from tests.merkle.reference import ref_path, ref_root, ref_subproof


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


sizes = st.integers(min_value=1, max_value=600)


def _sides(i: int, n: int) -> list[bool]:
    """The shape of PATH(i, D[n]): for each sibling, deepest first, whether it is on the right."""
    sides = []
    while n > 1:
        k = 1 << ((n - 1).bit_length() - 1)
        sides.append(i < k)
        i, n = (i, k) if i < k else (i - k, n - k)
    return sides[::-1]


@given(st.integers(min_value=0, max_value=1100))
def test_root_matches_reference(n: int) -> None:
    hs = leaves(n)
    assert root(hs) == ref_root(hs) == Tree(hs).root()


@given(sizes, st.data())
def test_inclusion_matches_reference_and_verifies(n: int, data: st.DataObject) -> None:
    hs = leaves(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = inclusion_proof(i, n, hs)
    assert proof == ref_path(i, hs) == Tree(hs).inclusion_proof(i)
    assert verify_inclusion(hs[i], i, n, proof, ref_root(hs))


@given(sizes, st.data())
def test_consistency_matches_reference_and_verifies(n: int, data: st.DataObject) -> None:
    hs = leaves(n)
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof = consistency_proof(m, n, hs)
    want = [] if m == n else ref_subproof(m, hs, True)
    assert proof == want == Tree(hs).consistency_proof(m)
    assert verify_consistency(m, n, proof, ref_root(hs[:m]), ref_root(hs))


@given(sizes, st.data())
def test_tampered_inclusion_fails(n: int, data: st.DataObject) -> None:
    hs = leaves(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = inclusion_proof(i, n, hs)
    r = root(hs)
    kind = data.draw(st.sampled_from(["flip", "index", "size", "drop", "extra", "leaf"]))
    if kind == "flip":
        assume(proof)
        j = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        p = bytearray(proof[j])
        p[bit // 8] ^= 1 << (bit % 8)
        proof[j] = bytes(p)
        assert not verify_inclusion(hs[i], i, n, proof, r)
    elif kind == "index":
        j = data.draw(st.integers(0, n - 1))
        assume(j != i)
        assert not verify_inclusion(hs[i], j, n, proof, r)
    elif kind == "size":
        m = data.draw(st.integers(1, 2000))
        # RFC 9162 binds the size only through the proof's shape: (0, 257) and (0, 258) share one.
        assume(i >= m or _sides(i, m) != _sides(i, n))
        assert not verify_inclusion(hs[i], i, m, proof, r)
    elif kind == "drop":
        assume(proof)
        assert not verify_inclusion(hs[i], i, n, proof[:-1], r)
    elif kind == "extra":
        assert not verify_inclusion(hs[i], i, n, [*proof, hs[0]], r)
    else:
        assert not verify_inclusion(leaf_hash(b"other"), i, n, proof, r)


@given(sizes, st.data())
def test_tampered_consistency_fails(n: int, data: st.DataObject) -> None:
    hs = leaves(n + 1)
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof = consistency_proof(m, n + 1, hs)
    r1, r2 = root(hs[:m]), root(hs)
    kind = data.draw(st.sampled_from(["flip", "root1", "root2", "size"]))
    if kind == "flip":
        j = data.draw(st.integers(0, len(proof) - 1))
        proof[j] = bytes([proof[j][0] ^ 1]) + proof[j][1:]
        assert not verify_consistency(m, n + 1, proof, r1, r2)
    elif kind == "root1":
        assert not verify_consistency(m, n + 1, proof, leaf_hash(b"x"), r2)
    elif kind == "root2":
        assert not verify_consistency(m, n + 1, proof, r1, leaf_hash(b"x"))
    else:
        m2 = data.draw(st.integers(1, n))
        assume(m2 != m)
        assert not verify_consistency(m2, n + 1, proof, r1, r2)


@settings(max_examples=50)
@given(st.integers(1, 300), st.data())
def test_tree_prefix_roots_and_proofs(n: int, data: st.DataObject) -> None:
    hs = leaves(n)
    t = Tree(hs)
    size = data.draw(st.integers(1, n))
    assert t.root(size) == ref_root(hs[:size])
    i = data.draw(st.integers(0, size - 1))
    assert t.inclusion_proof(i, size) == ref_path(i, hs[:size])
