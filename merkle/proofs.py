"""RFC 9162 inclusion (§2.1.3) and consistency (§2.1.4) proofs: generation and verification.

Generation is written once against a `NodeSource`, anything that can give the hash of a perfect
subtree: a list of leaf hashes, a `Tree` holding every level, or tiles (see `merkle.tiles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256
from typing import Protocol

from merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    check_hash,
    largest_power_of_two_below,
    reduce_level,
)
from merkle.hashing import root as _root


class NodeSource(Protocol):
    def perfect(self, height: int, index: int) -> bytes:
        """Hash of the perfect subtree of 2**height leaves starting at leaf index * 2**height."""
        ...


def _check_size(size: int, what: str = "tree size") -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{what} must be a non-negative integer")
    return size


def subtree_hash(src: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range that is a perfect aligned subtree or a tree's right edge."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        height = n.bit_length() - 1
        return src.perfect(height, start >> height)
    k = largest_power_of_two_below(n)
    left = subtree_hash(src, start, start + k)
    right = subtree_hash(src, start + k, end)
    return sha256(b"\x01" + left + right).digest()


def inclusion_path(src: NodeSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, deepest sibling first."""
    _check_size(size)
    _check_size(index, "index")
    if index >= size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    siblings: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            siblings.append(subtree_hash(src, start + k, end))
            end = start + k
        else:
            siblings.append(subtree_hash(src, start, start + k))
            start += k
    siblings.reverse()
    return siblings


def consistency_path(src: NodeSource, size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[0:size2]) of RFC 9162 §2.1.4.1; empty when size1 is 0 or size2."""
    _check_size(size1, "old size")
    _check_size(size2, "new size")
    if size1 > size2:
        raise ValueError(f"old size {size1} is larger than new size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    siblings: list[bytes] = []
    head: list[bytes] = []
    m, start, end, complete = size1, 0, size2, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                head.append(subtree_hash(src, start, end))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            siblings.append(subtree_hash(src, start + k, end))
            end = start + k
        else:
            siblings.append(subtree_hash(src, start, start + k))
            m -= k
            start += k
            complete = False
    siblings.reverse()
    return head + siblings


class LeafList:
    """A NodeSource over a plain list of leaf hashes (hashes each subtree on demand)."""

    def __init__(self, hashes: Sequence[bytes]) -> None:
        self._hashes = hashes

    def perfect(self, height: int, index: int) -> bytes:
        start = index << height
        return _root(self._hashes[start : start + (1 << height)])


class Tree:
    """An in-memory tree keeping every level: O(1) per node, proofs in O(log n) hashes."""

    def __init__(self, hashes: Sequence[bytes] = ()) -> None:
        for i, value in enumerate(hashes):
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ValueError(f"leaf hash {i} must be {HASH_SIZE} bytes")
        self._levels: list[list[bytes]] = [list(hashes)]
        level = self._levels[0]
        while len(level) > 1:
            level = reduce_level(level)
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def perfect(self, height: int, index: int) -> bytes:
        return self._levels[height][index]

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else self._within(size)
        return subtree_hash(self, 0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else self._within(size)
        _check_size(index, "index")
        if index >= size:
            raise ValueError(f"index {index} is outside a tree of size {size}")
        # Walk up the stored levels taking each sibling, as `inclusion_path` would find them but
        # without its per-node calls. A node of the last (carried or partial) position of a level
        # holds the right edge of the whole tree, so it is only read as is when size is ours.
        levels = self._levels
        full = size == len(levels[0])
        siblings: list[bytes] = []
        last, height = size - 1, 0
        while last:
            sibling = index ^ 1
            if sibling < last or (sibling == last and (full or (sibling + 1) << height <= size)):
                siblings.append(levels[height][sibling])
            elif sibling == last:
                siblings.append(subtree_hash(self, sibling << height, size))
            index >>= 1
            last >>= 1
            height += 1
        return siblings

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self.size if size2 is None else self._within(size2)
        return consistency_path(self, size1, size2)

    def _within(self, size: int) -> int:
        _check_size(size)
        if size > self.size:
            raise ValueError(f"tree size {size} is larger than the {self.size} leaves held")
        return size


def _leaves(size: int, leaf_hashes: Sequence[bytes]) -> Sequence[bytes]:
    _check_size(size)
    if size > len(leaf_hashes):
        raise ValueError(f"tree size {size} needs {size} leaf hashes, got {len(leaf_hashes)}")
    for i in range(size):
        check_hash(leaf_hashes[i], f"leaf hash {i}")
    return leaf_hashes


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf `index` in the tree of the first `size` leaves."""
    return inclusion_path(LeafList(_leaves(size, leaf_hashes)), index, size)


def consistency_proof(size1: int, size2: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The RFC 9162 consistency proof between the trees of the first size1 and size2 leaves."""
    return consistency_path(LeafList(_leaves(size2, leaf_hashes)), size1, size2)


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` implies for `leaf` at `index` (RFC 9162 §2.1.3.2).

    Raises ValueError when the proof cannot belong to such a tree (wrong length, bad hashes).
    """
    check_hash(leaf, "leaf hash")
    _check_size(size)
    _check_size(index, "index")
    return _inclusion_root(leaf, index, size, proof)


def _inclusion_root(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """`root_from_inclusion` once leaf, index and size are known to be well formed."""
    if index >= size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    h = sha256
    for i, p in enumerate(proof):
        if not isinstance(p, bytes) or len(p) != HASH_SIZE:
            check_hash(p, f"proof hash {i}")  # raises, naming the hash
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = h(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = h(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return r


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        if not isinstance(p, bytes) or len(p) != HASH_SIZE:
            check_hash(p, f"proof hash {i}")  # raises, naming the hash


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when `proof` shows `leaf_hash` at `index` in the tree of `size` with `root`.

    Malformed input (negative numbers, hashes that are not 32 bytes) raises ValueError.
    """
    check_hash(root, "root")
    check_hash(leaf_hash, "leaf hash")
    _check_size(size)
    _check_size(index, "index")
    _check_proof(proof)
    try:
        return _inclusion_root(leaf_hash, index, size, proof) == root
    except ValueError:
        return False


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    """True when `proof` shows the tree (size1, root1) is a prefix of (size2, root2).

    Follows RFC 9162 §2.1.4.2. An old size of 0 is consistent with any tree given an empty proof
    and the empty-tree root (C2SP tlog-witness). Malformed input raises ValueError.
    """
    check_hash(root1, "old root")
    check_hash(root2, "new root")
    _check_size(size1, "old size")
    _check_size(size2, "new size")
    _check_proof(proof)
    if size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof and root1 == EMPTY_ROOT
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    if not path:
        return False
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    h = sha256
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = h(b"\x01" + c + fr).digest()
            sr = h(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = h(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2
