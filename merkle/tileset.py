"""A NodeSource over tiles held in memory, each tile's inner levels hashed once.

The sequencer proves every entry of a batch against the new tree from the tiles that batch
changed plus the rightmost tile of each level before it: a sibling of an ancestor of entry i at
height h lies in i's level-(h // 8) tile, which is one of those. No tile is read back from storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

from merkle.hashing import reduce_level
from merkle.proofs import inclusion_path
from merkle.tiles import TILE_HEIGHT, TILE_WIDTH, Tile, TileLevels, split_hashes


class TileSet:
    """Hash tiles of one tree by (level, index); later tiles of the same place replace earlier."""

    def __init__(self, tiles: Iterable[Tile] = ()) -> None:
        self._hashes: dict[tuple[int, int], list[bytes]] = {}
        self._levels: dict[tuple[int, int], list[list[bytes]]] = {}
        self.add(tiles)

    def add(self, tiles: Iterable[Tile], levels: TileLevels | None = None) -> None:
        """Hold `tiles`; `levels`, as `TileBuilder.append` recorded them for the same tiles, spares
        hashing their inner levels again."""
        for t in tiles:
            if t.id.level == "entries":
                continue
            place = (int(t.id.level), t.id.index)
            known = levels.get(place) if levels else None
            if known is not None and len(known[0]) == t.id.width:
                self._hashes[place] = known[0]
                self._levels[place] = known
            else:
                self._hashes[place] = split_hashes(t.data, t.id.width)
                self._levels.pop(place, None)

    def _tile_levels(self, level: int, index: int) -> list[list[bytes]]:
        place = (level, index)
        levels = self._levels.get(place)
        if levels is None:
            try:
                row = self._hashes[place]
            except KeyError:
                raise ValueError(f"tile {level}/{index} is not held in memory") from None
            levels = [row]
            while len(row) > 1:
                row = reduce_level(row)
                levels.append(row)
            self._levels[place] = levels
        return levels

    def perfect(self, height: int, index: int) -> bytes:
        level, rest = divmod(height, TILE_HEIGHT)
        first = index << rest
        levels = self._tile_levels(level, first >> TILE_HEIGHT)
        return levels[rest][(first % TILE_WIDTH) >> rest]

    def _perfect_run(self, height: int, start: int, end: int) -> list[bytes]:
        """Hashes of the perfect subtrees start..end-1 at `height`, sliced off the tiles' levels."""
        level, rest = divmod(height, TILE_HEIGHT)
        per_tile = TILE_WIDTH >> rest
        out: list[bytes] = []
        j = start
        while j < end:
            tile, offset = divmod(j, per_tile)
            row = self._tile_levels(level, tile)[rest]
            take = min(end - j, per_tile - offset)
            if offset + take > len(row):
                raise ValueError(f"tile {level}/{tile} is too narrow for node {height}/{j + take - 1}")
            out += row[offset : offset + take]
            j += take
        return out

    def prune(self, size: int) -> None:
        """Forget every tile but the rightmost of each level in a tree of `size`: all that proofs
        of entries appended later can need besides the tiles their own batch changes."""
        for place in list(self._hashes):
            level, index = place
            if index != size >> (TILE_HEIGHT * (level + 1)):
                del self._hashes[place]
                self._levels.pop(place, None)

    def edges(self, size: int) -> list[bytes]:
        """The last node of each level of the tree of `size`, leaves first (RFC 9162's shape: a
        level's odd last node is carried up; an even level's last pair is hashed)."""
        lengths = _lengths(size)
        edges = [self.perfect(0, size - 1)]
        for h, n in enumerate(lengths[:-1]):
            edge = edges[-1]
            if not n & 1:
                edge = sha256(b"\x01" + self.perfect(h, n - 2) + edge).digest()
            edges.append(edge)
        return edges

    def root(self, size: int) -> bytes:
        """The root of the tree of `size` (> 0) off the tiles held: the top of `edges`. After a
        batch's tiles are added this is `TileBuilder.root`, from the tile levels its proofs read
        anyway, instead of hashing every partial tile's perfect subtrees again."""
        if size < 1:
            raise ValueError("the tree of size 0 has no tile: its root is EMPTY_ROOT")
        return self.edges(size)[-1]

    def nodes(self, indices: Iterable[int], size: int) -> list[bytes]:
        """The nodes of a compact answer's part (merkle.compact) for the entries at `indices` of
        the tree of `size`, read off the tiles held: the siblings of the entries' ancestors that
        are not ancestors of an entry, level by level from the leaves up, by position. The same
        list `compact.batch_nodes` picks from the entries' proofs, without a proof per entry:
        per level, one set pass and one lookup per node. ValueError for an index outside the
        tree or a tile not held."""
        known = set(indices)
        if known and (min(known) < 0 or max(known) >= size):
            raise ValueError(f"an index is outside the tree of size {size}")
        lengths = _lengths(size)
        edges: list[bytes] | None = None
        out: list[bytes] = []
        for h, n in enumerate(lengths[:-1]):
            missing = sorted({j ^ 1 for j in known} - known)
            if missing and missing[-1] >= n:  # the odd last node has no sibling: carried up
                missing.pop()
            if missing and missing[-1] == n - 1 and (n << h) != size:  # the right edge: not perfect
                missing.pop()
                if edges is None:
                    edges = self.edges(size)
                out += self._perfect_nodes(h, missing)
                out.append(edges[h])
            else:
                out += self._perfect_nodes(h, missing)
            known = {j >> 1 for j in known}
        return out

    def _perfect_nodes(self, height: int, positions: list[int]) -> list[bytes]:
        """The perfect subtrees at `height` and `positions` (sorted), each read off its tile's
        level. Their tiles are a contiguous run (those of the entries' ancestors: module doc),
        fetched once; then one comprehension, no call per node."""
        if not positions:
            return []
        level, rest = divmod(height, TILE_HEIGHT)
        shift = TILE_HEIGHT - rest  # positions per tile: 2**shift
        mask = (1 << shift) - 1
        tiles = range(positions[0] >> shift, (positions[-1] >> shift) + 1)
        rows = {t: self._tile_levels(level, t)[rest] for t in tiles}
        return [rows[m >> shift][m & mask] for m in positions]

    def inclusion_proofs(
        self, first: int, count: int, size: int, order: Sequence[int] | None = None
    ) -> list[list[bytes]]:
        """Inclusion proofs of entries first..first+count-1 in the tree of `size`; given `order`
        (positions in range(count)), the proof of entry first + order[k] at k instead.

        Consecutive entries share most of their siblings, so the proofs are built top-down over
        RFC 9162's levels (a level's odd last node carried up): a node's proof is its sibling
        followed by its parent's proof, one list per node instead of one walk per entry. The
        entries' own lists are made in the order asked for: a caller that reads them in its own
        order (the sequencer's, whose entries are placed at random) reads them from memory in
        order, without copying them into it.
        """
        if count <= 0:
            return []
        last = first + count - 1
        if order is not None and order and not (min(order) >= 0 and max(order) < count):
            raise ValueError(f"order holds a position outside range({count})")
        if first < 0 or last >= size:
            paths = [inclusion_path(self, i, size) for i in range(first, first + count)]
            return paths if order is None else [paths[k] for k in order]
        # Level h has ceil(size / 2**h) nodes; its last one covers the tree's right edge and is
        # perfect only when 2**h divides size, so it is hashed up from the perfect ones beside it.
        lengths = _lengths(size)
        edges = self.edges(size)
        proofs: list[list[bytes]] = [[]]
        for h in range(len(lengths) - 2, -1, -1):
            n, lo, hi = lengths[h], first >> h, last >> h
            start, end = lo & ~1, min(n, (hi | 1) + 1)  # the nodes and their siblings
            nodes = self._perfect_run(h, start, min(end, n - 1))
            if end == n:
                nodes.append(edges[h])
            # Node j's sibling is j ^ 1: swap neighbours pairwise. Both children of a node share
            # its proof. A last node without a sibling (odd count at this level) is carried up:
            # its proof is its parent's.
            swapped, pairs = nodes[:], len(nodes) & ~1
            swapped[0:pairs:2], swapped[1:pairs:2] = nodes[1:pairs:2], nodes[0:pairs:2]
            shared = [p for p in proofs for _ in (0, 1)]
            stop = min(hi + 1, n - (n & 1))
            carried = proofs[-1] if hi == n - 1 and n & 1 else None
            if h == 0 and order is not None:
                siblings, parents = swapped[lo - start : stop - start], shared[lo - start :]
                if carried is not None:  # the last entry: no sibling, its proof is its parent's
                    return [[siblings[j], *parents[j]] if j < count - 1 else carried for j in order]
                return [[siblings[j], *parents[j]] for j in order]
            proofs = [
                [s, *p]
                for s, p in zip(swapped[lo - start : stop - start], shared[lo - start :], strict=False)
            ]
            if carried is not None:
                proofs.append(carried)
        return proofs if order is None else [proofs[k] for k in order]


def _lengths(size: int) -> list[int]:
    """The number of nodes of each level of the tree of `size`, leaves first, root last."""
    lengths = [size]
    while lengths[-1] > 1:
        lengths.append((lengths[-1] + 1) >> 1)
    return lengths
