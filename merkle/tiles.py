"""C2SP tlog-tiles: paths, which tiles a tree has, an incremental builder, proofs from tiles.

Tile height is 8 (256 hashes of 32 bytes per full tile). A tile at level L holds the hashes of
perfect subtrees of 256**L leaves; the rightmost tile of each level is partial (1..255 wide).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from merkle.hashing import EMPTY_ROOT, HASH_SIZE, fold_right, reduce_level
from merkle.proofs import consistency_path, inclusion_path, subtree_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
ENTRIES: Literal["entries"] = "entries"


@dataclass(frozen=True, order=True)
class TileId:
    """A tile: `level` (0..63) or "entries" for an entry bundle, `index`, `width` (1..256)."""

    level: int | Literal["entries"]
    index: int
    width: int = TILE_WIDTH

    @property
    def path(self) -> str:
        return tile_path(self.level, self.index, self.width)

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH


def _index_path(index: int) -> str:
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def tile_path(level: int | str, index: int, width: int = TILE_WIDTH) -> str:
    """`tile/<L>/<N>[.p/<W>]`, with N in x-prefixed 3-digit groups; level "entries" for bundles."""
    if level != ENTRIES and (
        not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 63
    ):
        raise ValueError('tile level must be an integer 0..63 or "entries"')
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError("tile index must be a non-negative integer")
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= TILE_WIDTH:
        raise ValueError("tile width must be 1..256")
    path = f"tile/{level}/{_index_path(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


_PATH_RE = re.compile(
    r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*)([0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?"
)


def parse_tile_path(path: str) -> TileId:
    """Strict inverse of `tile_path`; anything else (traversal, leading zeros…) is ValueError."""
    m = _PATH_RE.fullmatch(path) if isinstance(path, str) else None
    if m is None:
        raise ValueError(f"not a tile path: {path!r}")
    level_s, groups, last, width_s = m.groups()
    level: int | Literal["entries"] = ENTRIES if level_s == ENTRIES else int(level_s)
    if level != ENTRIES and int(level) > 63:
        raise ValueError(f"tile level out of range in {path!r}")
    digits = [g[1:] for g in groups.split("/") if g] + [last]
    if len(digits) > 1 and digits[0] == "000":
        raise ValueError(f"tile index has a leading zero group in {path!r}")
    width = int(width_s) if width_s else TILE_WIDTH
    if width_s and width >= TILE_WIDTH:
        raise ValueError(f"partial tile width must be 1..255 in {path!r}")
    return TileId(level, int("".join(digits)), width)


def tiles_for_size(size: int, *, entries: bool = False) -> Iterator[TileId]:
    """Every tile (full and partial) a tree of `size` has; with entries=True, its bundles too."""
    if not isinstance(size, int) or size < 0:
        raise ValueError("tree size must be a non-negative integer")
    level = 0
    while size >> (TILE_HEIGHT * level):
        n = size >> (TILE_HEIGHT * level)
        kinds: list[int | Literal["entries"]] = [level, ENTRIES] if entries and not level else [level]
        for lv in kinds:
            for i in range(n >> TILE_HEIGHT):
                yield TileId(lv, i)
            if n % TILE_WIDTH:
                yield TileId(lv, n >> TILE_HEIGHT, n % TILE_WIDTH)
        level += 1


def tile_width_at(level: int, index: int, size: int) -> int:
    """The width tile (level, index) has in a tree of `size` (0 when it does not exist yet)."""
    n = size >> (TILE_HEIGHT * level)
    if index < n >> TILE_HEIGHT:
        return TILE_WIDTH
    if index == n >> TILE_HEIGHT:
        return n % TILE_WIDTH
    return 0


def split_hashes(data: bytes, width: int) -> list[bytes]:
    """The `width` hashes of a tile's bytes; ValueError if the length does not match."""
    if len(data) != width * HASH_SIZE:
        raise ValueError(f"tile of width {width} must be {width * HASH_SIZE} bytes, got {len(data)}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Root of a power-of-two number of hashes."""
    level = list(hashes)
    while len(level) > 1:
        level = reduce_level(level)
    return level[0]


TileLevels = dict[tuple[int, int], list[list[bytes]]]
"""A tile's hashes and each level above them inside the tile, by the tile's (level, index)."""


def tile_levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    """`hashes` and every level above them, pairwise reduced with an odd last node carried up."""
    levels = [list(hashes)]
    while len(levels[-1]) > 1:
        levels.append(reduce_level(levels[-1]))
    return levels


def _edge_roots(edges: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Perfect-subtree roots of a tree from its partial tiles, leftmost (largest) first."""
    roots: list[bytes] = []
    for level_hashes in reversed(edges):
        start, w = 0, len(level_hashes)
        for bit in reversed(range(TILE_HEIGHT)):
            if w & (1 << bit):
                roots.append(perfect_root(level_hashes[start : start + (1 << bit)]))
                start += 1 << bit
    return roots


@dataclass(frozen=True)
class Tile:
    id: TileId
    data: bytes


class TileBuilder:
    """The right edge of a tiled tree; `append` returns exactly the tiles that changed.

    State is the partial tile of each level, so a sequencer restarts from the published
    partial tiles (`from_tiles`) without reading the whole log.
    """

    def __init__(self, size: int = 0, edges: Sequence[Sequence[bytes]] = ()) -> None:
        self._size = size
        self._edges: list[list[bytes]] = [list(e) for e in edges]
        for level, e in enumerate(self._edges):
            if len(e) != (size >> (TILE_HEIGHT * level)) % TILE_WIDTH:
                raise ValueError(f"partial tile at level {level} does not match tree size {size}")
        while len(self._edges) <= self._top_level(size):
            self._edges.append([])

    @staticmethod
    def _top_level(size: int) -> int:
        level = 0
        while size >> (TILE_HEIGHT * (level + 1)):
            level += 1
        return level

    @classmethod
    def from_tiles(cls, size: int, fetch: Callable[[TileId], bytes]) -> TileBuilder:
        """Rebuild the edge of a tree of `size` by fetching its partial tiles."""
        edges: list[list[bytes]] = []
        for level in range(cls._top_level(size) + 1):
            width = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
            tid = TileId(level, size >> (TILE_HEIGHT * (level + 1)), width) if width else None
            edges.append(split_hashes(fetch(tid), width) if tid else [])
        return cls(size, edges)

    @property
    def size(self) -> int:
        return self._size

    def root(self) -> bytes:
        return fold_right(_edge_roots(self._edges)) if self._size else EMPTY_ROOT

    def edge_tiles(self) -> list[Tile]:
        """The current partial tile of every level that has one."""
        return [
            Tile(TileId(lv, self._size >> (TILE_HEIGHT * (lv + 1)), len(edge)), b"".join(edge))
            for lv, edge in enumerate(self._edges)
            if edge
        ]

    def append(self, leaf_hashes: Sequence[bytes], *, levels: TileLevels | None = None) -> list[Tile]:
        """Add leaf hashes; return new full tiles in order, then each level's changed partial.

        With `levels`, the inner levels hashed for each new full tile are recorded there too
        (see `tile_levels`), so that a `TileSet` need not hash them again.
        """
        out: list[Tile] = []
        changed: set[int] = set()
        pending: list[bytes] = list(leaf_hashes)
        level = 0
        base = self._size
        while pending:
            if level == len(self._edges):
                self._edges.append([])
            edge = self._edges[level]
            count_before = base >> (TILE_HEIGHT * level)
            first_tile = count_before >> TILE_HEIGHT
            up: list[bytes] = []
            pos = 0
            while pos < len(pending):
                take = min(TILE_WIDTH - len(edge), len(pending) - pos)
                edge.extend(pending[pos : pos + take])
                pos += take
                if len(edge) == TILE_WIDTH:
                    out.append(Tile(TileId(level, first_tile), b"".join(edge)))
                    inner = tile_levels(edge)
                    up.append(inner[-1][0])
                    if levels is not None:
                        levels[(level, first_tile)] = inner
                    first_tile += 1
                    edge = []
            self._edges[level] = edge
            changed.add(level)
            pending = up
            level += 1
        self._size += len(leaf_hashes)
        for lv in sorted(changed):
            edge = self._edges[lv]
            if edge:
                tile_index = self._size >> (TILE_HEIGHT * (lv + 1))
                out.append(Tile(TileId(lv, tile_index, len(edge)), b"".join(edge)))
        return out


class TileSource:
    """A NodeSource reading tiles through `fetch`, for a tree of a given size.

    Each tile is fetched once and its inner levels hashed once, so every later node of it is a
    lookup: a proof asks several nodes of the same tile, and a long-lived source asks many.
    """

    def __init__(self, size: int, fetch: Callable[[TileId], bytes]) -> None:
        self._size = size
        self._fetch = fetch
        self._levels: TileLevels = {}

    def _tile_levels(self, level: int, index: int) -> list[list[bytes]]:
        levels = self._levels.get((level, index))
        if levels is None:
            width = tile_width_at(level, index, self._size)
            if width == 0:
                raise ValueError(f"tile {level}/{index} does not exist in a tree of size {self._size}")
            levels = tile_levels(split_hashes(self._fetch(TileId(level, index, width)), width))
            self._levels[(level, index)] = levels
        return levels

    def perfect(self, height: int, index: int) -> bytes:
        level, rest = divmod(height, TILE_HEIGHT)
        first = index << rest
        # A perfect subtree inside the tree lies wholly inside its tile, where the levels that
        # pairwise reduction builds hold its root (only the carried last nodes are not perfect).
        return self._tile_levels(level, first >> TILE_HEIGHT)[rest][(first % TILE_WIDTH) >> rest]


def tiles_needed(run: Callable[[Callable[[TileId], bytes]], object]) -> set[TileId]:
    """The tiles a computation reads: run it once against zero-filled tiles and record them.

    Lets an async caller fetch every tile in parallel before computing for real.
    """
    seen: set[TileId] = set()

    def record(tid: TileId) -> bytes:
        seen.add(tid)
        return bytes(HASH_SIZE * tid.width)

    run(record)
    return seen


def inclusion_proof_from_tiles(
    index: int, size: int, fetch: Callable[[TileId], bytes]
) -> list[bytes]:
    return inclusion_path(TileSource(size, fetch), index, size)


def consistency_proof_from_tiles(
    size1: int, size2: int, fetch: Callable[[TileId], bytes]
) -> list[bytes]:
    return consistency_path(TileSource(size2, fetch), size1, size2)


def root_from_tiles(size: int, fetch: Callable[[TileId], bytes]) -> bytes:
    return subtree_hash(TileSource(size, fetch), 0, size)
