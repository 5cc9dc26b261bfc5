"""A NodeSource over tiles held in memory, each tile's inner levels hashed once.

The sequencer proves every entry of a batch against the new tree from the tiles that batch
changed plus the rightmost tile of each level before it: a sibling of an ancestor of entry i at
height h lies in i's level-(h // 8) tile, which is one of those. No tile is read back from storage.
"""

from __future__ import annotations

from collections.abc import Iterable

from merkle.hashing import reduce_level
from merkle.proofs import inclusion_path
from merkle.tiles import TILE_HEIGHT, TILE_WIDTH, Tile, split_hashes


class TileSet:
    """Hash tiles of one tree by (level, index); later tiles of the same place replace earlier."""

    def __init__(self, tiles: Iterable[Tile] = ()) -> None:
        self._hashes: dict[tuple[int, int], list[bytes]] = {}
        self._levels: dict[tuple[int, int], list[list[bytes]]] = {}
        self.add(tiles)

    def add(self, tiles: Iterable[Tile]) -> None:
        for t in tiles:
            if t.id.level == "entries":
                continue
            place = (int(t.id.level), t.id.index)
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

    def prune(self, size: int) -> None:
        """Forget every tile but the rightmost of each level in a tree of `size`: all that proofs
        of entries appended later can need besides the tiles their own batch changes."""
        for place in list(self._hashes):
            level, index = place
            if index != size >> (TILE_HEIGHT * (level + 1)):
                del self._hashes[place]
                self._levels.pop(place, None)

    def inclusion_proofs(self, first: int, count: int, size: int) -> list[list[bytes]]:
        """Inclusion proofs of entries first..first+count-1 in the tree of `size`."""
        return [inclusion_path(self, i, size) for i in range(first, first + count)]
