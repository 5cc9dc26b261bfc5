"""The log's tree as the sequencer grows it: each durable batch appended to the tiles and entry
bundles, the new tree head signed (log key and clock cosignature), every entry of the batch
proved (`Tree.integrate`). CPU only: the sequencer runs it in a worker thread (on its event loop
for a small batch), one batch after another in index order."""

from __future__ import annotations

from collections.abc import Sequence

from merkle.bundles import BundleBuilder
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.hashing import leaf_hashes
from merkle.tiles import Tile, TileBuilder, TileLevels
from merkle.tileset import TileSet
from services.anchor.batch import Batch, Group
from services.anchor.keys import LogKeys
from services.model import SequencedGroup


class Tree:
    """The tiles and bundles of the log `origin` (from recovery, or empty), and the tiles the
    next proofs need."""

    def __init__(
        self,
        origin: str,
        keys: LogKeys,
        tiles: TileBuilder | None = None,
        bundles: BundleBuilder | None = None,
    ) -> None:
        self._origin, self._keys = origin, keys
        self._tiles = tiles or TileBuilder()
        self._bundles = bundles or BundleBuilder()
        self._held = TileSet(self._tiles.edge_tiles())

    def sign(self, size: int, timestamp: int, root: bytes | None = None) -> str:
        """The checkpoint of the tree as it is, of `size` entries, cosigned at `timestamp`;
        `root`, when the caller has it, is the tree's root (else hashed off the tiles' edge)."""
        cp = Checkpoint(self._origin, size, self._tiles.root() if root is None else root)
        return sign_checkpoint(cp, self._keys.log, self._keys.clock, timestamp)

    def integrate(
        self, batch: Batch, groups: Sequence[Group]
    ) -> tuple[list[Tile], str, list[SequencedGroup]]:
        """Append a durable batch to the tiles, sign the new tree head and prove the entries of
        `groups` (the batch's callers, in its order): the tiles and bundles it changed (the
        partial ones of its size included: C2SP tlog-tiles), its checkpoint, and one result per
        group, each with the proof material its caller asked for (`Group.compact`: the nodes of
        its compact part, else every entry's proof)."""
        first, placed = batch.first, batch.placed
        size = first + len(placed)
        levels: TileLevels = {}
        changed = self._tiles.append(leaf_hashes(placed), levels=levels) + self._bundles.append(placed)
        self._held.add(changed, levels)
        note = self.sign(size, batch.timestamp, self._held.root(size))  # off the levels proofs read
        spans, at = [], 0
        for g in groups:
            spans.append((at, at + g.size))
            at += g.size
        # The proofs of the groups that want them, made together in the callers' order: the
        # receipt writer reads them in that order, and reading them at random in index order's
        # memory cost it more than making them so.
        rank = batch.rank
        wanted = [k for g, (a, b) in zip(groups, spans, strict=True) if not g.compact for k in rank[a:b]]
        proofs = self._held.inclusion_proofs(first, len(placed), size, order=wanted) if wanted else []
        results, used = [], 0
        for g, (a, b) in zip(groups, spans, strict=True):
            indices = batch.indices[a:b]
            mine = nodes = None
            if g.compact:
                nodes = self._held.nodes(indices, size)
            else:
                mine, used = proofs[used : used + b - a], used + b - a
            results.append(
                SequencedGroup(
                    indices=indices,
                    entries=batch.entries[a:b],
                    salts=b"".join(batch.salts[a:b]),
                    tree_size=size,
                    checkpoint=note,
                    proofs=mine,
                    nodes=nodes,
                )
            )
        self._held.prune(size)
        return changed, note, results
