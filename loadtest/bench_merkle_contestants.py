"""The contestants of the Merkle benchmark (loadtest/bench_merkle.py): notar's merkle/, a plain
hashlib loop and pymerkle 7, each as the work it does and as one timed round of it that checks
its root and proofs against the plain loop's before its rates count."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, TypeVar

import pymerkle
from pymerkle import BaseMerkleTree, InmemoryTree, InvalidProof

from merkle import TileBuilder, TileId, Tree, inclusion_proof_from_tiles, verify_inclusion
from merkle.hashing import leaf_hashes
from merkle.proofs import inclusion_path
from merkle.tiles import TileSource

T = TypeVar("T")


# ---------------------------------------------------------------- the work, one function each


def make_entries(n: int, seed: int = 9162) -> list[bytes]:
    """`n` notar-shaped log entries: a sha256 multihash (34 bytes) then a 16-byte salt."""
    rng = random.Random(seed)
    return [b"\x12\x20" + rng.randbytes(48) for _ in range(n)]


def plain_root(entries: Sequence[bytes]) -> bytes:
    """The RFC 9162 root with nothing but hashlib: the reference point for CPython."""
    h = sha256
    level = [h(b"\x00" + e).digest() for e in entries]
    if not level:
        return h(b"").digest()
    while len(level) > 1:
        pairs = iter(level)
        up = [h(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        if len(level) % 2:
            up.append(level[-1])
        level = up
    return level[0]


@dataclass
class TiledLog:
    """What the sequencer produces: the root, the tiles as an object store would hold them."""

    size: int
    root: bytes
    tiles: dict[TileId, bytes]
    hashes: list[bytes]


def notar_build(entries: Sequence[bytes], batch: int = 4096) -> TiledLog:
    """Leaf hashes and tiles of `entries`, appended `batch` at a time as the sequencer does."""
    builder = TileBuilder()
    tiles: dict[TileId, bytes] = {}
    hashes: list[bytes] = []
    for start in range(0, len(entries), batch):
        chunk = leaf_hashes(entries[start : start + batch])
        for tile in builder.append(chunk):
            tiles[tile.id] = tile.data
        hashes.extend(chunk)
    return TiledLog(builder.size, builder.root(), tiles, hashes)


def notar_tree(entries: Sequence[bytes]) -> Tree:
    return Tree(leaf_hashes(entries))


def notar_proofs(tree: Tree, indices: Sequence[int]) -> list[list[bytes]]:
    prove = tree.inclusion_proof
    return [prove(i) for i in indices]


def notar_tile_proofs(log: TiledLog, indices: Sequence[int]) -> list[list[bytes]]:
    fetch = log.tiles.__getitem__
    return [inclusion_proof_from_tiles(i, log.size, fetch) for i in indices]


def notar_warm_tile_proofs(source: TileSource, size: int, indices: Sequence[int]) -> list[list[bytes]]:
    """Proofs through one long-lived TileSource, which keeps the inner levels of every tile read."""
    return [inclusion_path(source, i, size) for i in indices]


def notar_verify(
    leaves: Sequence[bytes], indices: Sequence[int], size: int, proofs: Sequence[list[bytes]], root: bytes
) -> int:
    """How many of the proofs verify (all of them, when the implementation is right)."""
    return sum(
        verify_inclusion(leaf, i, size, p, root) for leaf, i, p in zip(leaves, indices, proofs, strict=True)
    )


def pymerkle_build(entries: Sequence[bytes], *, secure: bool = True) -> Any:
    """pymerkle's InmemoryTree, which keeps every node so proofs read subtree roots off nodes.

    With `secure` (the default) it hashes exactly as RFC 9162 (0x00 leaf and 0x01 node prefixes);
    `disable_security` drops both prefixes, so its roots and proofs are not RFC 9162 ones.
    """
    tree = InmemoryTree("sha256", disable_security=not secure)
    tree.append_entries(entries)
    return tree


class ListTree(BaseMerkleTree):  # type: ignore[misc]
    """The list-backed tree of pymerkle's README: leaf hashes only, no interior nodes kept."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        super().__init__("sha256")

    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        self.hashes.append(digest)
        return len(self.hashes)

    def _get_leaf(self, index: int) -> bytes:
        return self.hashes[index - 1]

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        return self.hashes[offset : offset + width]

    def _get_size(self) -> int:
        return len(self.hashes)


def pymerkle_list_build(entries: Sequence[bytes]) -> ListTree:
    tree = ListTree()
    tree.append_entries(entries)
    return tree


def pymerkle_proofs(tree: Any, indices: Sequence[int]) -> list[Any]:
    """pymerkle proofs; its indices count from one and its path starts with the leaf itself."""
    prove = tree.prove_inclusion
    return [prove(i + 1) for i in indices]


def pymerkle_verify(
    leaves: Sequence[bytes],
    indices: Sequence[int],
    size: int,
    proofs: Sequence[Any],
    root: bytes,
    *,
    secure: bool = True,
) -> int:
    ok = 0
    for leaf, i, p in zip(leaves, indices, proofs, strict=True):
        try:
            pymerkle.verify_inclusion(leaf, root, p, index=i + 1, size=size, security=secure)
        except InvalidProof:
            continue
        ok += 1
    return ok


# ---------------------------------------------------------------- one round of each contestant


@dataclass
class Workload:
    entries: list[bytes]
    indices: list[int]
    slow_indices: list[int]
    batch: int
    tile_proofs: int
    """How many of `indices` to prove from cold tiles (a few hundred hashes each)."""
    clock: Callable[[], float] = time.process_time
    """CPU time of this process by default: on a shared machine it counts our work, not theirs."""
    root: bytes = b""
    """The plain loop's root, which every RFC 9162 contestant must reproduce."""
    proofs: list[list[bytes]] = field(default_factory=list)
    """notar's proofs for `indices`, which pymerkle's paths must match."""


Rates = dict[str, float]


def _timed(clock: Callable[[], float], fn: Callable[[], T]) -> tuple[T, float]:
    gc.collect()  # garbage left by the previous step is not this step's cost
    start = clock()
    out = fn()
    return out, clock() - start


def _agree(what: str, got: object, want: object) -> None:
    if got != want:
        raise SystemExit(f"bench_merkle: {what} disagrees with the plain hashlib loop; numbers withheld")


def run_plain(w: Workload) -> Rates:
    root, secs = _timed(w.clock, lambda: plain_root(w.entries))
    _agree("plain root", root, w.root or root)
    w.root = root
    return {"build": len(w.entries) / secs}


def run_notar(w: Workload) -> Rates:
    n, k = len(w.entries), len(w.indices)
    log, build_s = _timed(w.clock, lambda: notar_build(w.entries, w.batch))
    _agree("notar TileBuilder root", log.root, w.root)
    tree, tree_s = _timed(w.clock, lambda: notar_tree(w.entries))
    _agree("notar Tree root", tree.root(), w.root)
    proofs, proofs_s = _timed(w.clock, lambda: notar_proofs(tree, w.indices))
    cold = w.indices[: w.tile_proofs]
    tile_proofs, tile_s = _timed(w.clock, lambda: notar_tile_proofs(log, cold))
    _agree("notar proofs from tiles", tile_proofs, proofs[: len(cold)])
    source = TileSource(n, log.tiles.__getitem__)
    notar_warm_tile_proofs(source, n, w.indices)  # warm-up: read and hash every tile once
    warm_proofs, warm_s = _timed(w.clock, lambda: notar_warm_tile_proofs(source, n, w.indices))
    _agree("notar proofs from a warm TileSource", warm_proofs, proofs)
    leaves = [log.hashes[i] for i in w.indices]
    ok, verify_s = _timed(w.clock, lambda: notar_verify(leaves, w.indices, n, proofs, w.root))
    _agree("notar verifications", ok, k)
    w.proofs = proofs
    return {
        "build": n / build_s,
        "tree": n / tree_s,
        "proofs": k / proofs_s,
        "tile_proofs": len(cold) / tile_s,
        "warm_tile_proofs": k / warm_s,
        "verify": k / verify_s,
    }


def run_pymerkle(w: Workload, *, secure: bool = True) -> Rates:
    n, k = len(w.entries), len(w.indices)
    tree, build_s = _timed(w.clock, lambda: pymerkle_build(w.entries, secure=secure))
    root = tree.get_root()
    proofs, proofs_s = _timed(w.clock, lambda: pymerkle_proofs(tree, w.indices))
    if secure:
        _agree("pymerkle root", root, w.root)
        if w.proofs:
            _agree("pymerkle proofs", [p.path[1:] for p in proofs], w.proofs)
    leaves = [tree.get_leaf(i + 1) for i in w.indices]
    ok, verify_s = _timed(w.clock, lambda: pymerkle_verify(leaves, w.indices, n, proofs, root, secure=secure))
    _agree("pymerkle verifications", ok, k)
    return {"build": n / build_s, "tree": n / build_s, "proofs": k / proofs_s, "verify": k / verify_s}


def run_pymerkle_list(w: Workload) -> Rates:
    n = len(w.entries)

    def build() -> tuple[ListTree, bytes]:
        tree = pymerkle_list_build(w.entries)
        return tree, tree.get_root()  # the root is computed here, from the leaf hashes

    (tree, root), build_s = _timed(w.clock, build)
    _agree("pymerkle list-backend root", root, w.root)
    _, proofs_s = _timed(w.clock, lambda: pymerkle_proofs(tree, w.slow_indices))
    return {"build": n / build_s, "proofs": len(w.slow_indices) / proofs_s}


@dataclass(frozen=True)
class Contestant:
    name: str
    run: Callable[[Workload], Rates]


PLAIN = "plain hashlib loop (root only)"
NOTAR = "notar merkle/"
PYMERKLE = "pymerkle 7 InmemoryTree"
PYMERKLE_LIST = "pymerkle 7 list backend (README)"
PYMERKLE_INSECURE = "pymerkle 7 InmemoryTree, disable_security (not RFC 9162)"


def contestants(insecure: bool) -> list[Contestant]:
    out = [
        Contestant(PLAIN, run_plain),
        Contestant(NOTAR, run_notar),
        Contestant(PYMERKLE, run_pymerkle),
        Contestant(PYMERKLE_LIST, run_pymerkle_list),
    ]
    if insecure:
        out.append(Contestant(PYMERKLE_INSECURE, lambda w: run_pymerkle(w, secure=False)))
    return out
