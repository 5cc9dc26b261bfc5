"""RFC 9162 §2.1.1 hashing: leaves, interior nodes and tree roots (SHA-256)."""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()
"""The root of the empty tree: SHA-256 of the empty string."""


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry)."""
    if not isinstance(entry, bytes | bytearray | memoryview):
        raise ValueError("a log entry must be bytes")
    return sha256(b"\x00" + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right); both children must be 32-byte hashes."""
    check_hash(left, "left")
    check_hash(right, "right")
    return sha256(b"\x01" + left + right).digest()


def check_hash(value: object, what: str = "hash") -> bytes:
    """Return `value` if it is a 32-byte hash, else raise ValueError naming `what`."""
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
    return value


def leaf_hashes(entries: Sequence[bytes]) -> list[bytes]:
    """Leaf hashes of many entries at once (the hot path of the sequencer)."""
    h = sha256
    return [h(b"\x00" + e).digest() for e in entries]


def reduce_level(level: Sequence[bytes]) -> list[bytes]:
    """One level up: pair neighbours, carry an odd last node up unchanged (RFC 9162 shape)."""
    h = sha256
    pairs = iter(level)  # zip of one iterator with itself pairs neighbours without slicing copies
    up = [h(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
    if len(level) % 2:
        up.append(level[-1])
    return up


def root(hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 Merkle Tree Hash of a list of leaf hashes (EMPTY_ROOT for none).

    Bottom-up pairing that carries an odd node up gives exactly the split-at-largest-power-of-two
    tree of RFC 9162, in linear time.
    """
    if not hashes:
        return EMPTY_ROOT
    for i, value in enumerate(hashes):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ValueError(f"leaf hash {i} must be {HASH_SIZE} bytes")
    level = list(hashes)
    while len(level) > 1:
        level = reduce_level(level)
    return level[0]


def fold_right(subtree_roots: Sequence[bytes]) -> bytes:
    """Combine the perfect-subtree roots of a tree, largest first, into its root."""
    if not subtree_roots:
        return EMPTY_ROOT
    acc = subtree_roots[-1]
    h = sha256
    for left in reversed(subtree_roots[:-1]):
        acc = h(b"\x01" + left + acc).digest()
    return acc


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)
