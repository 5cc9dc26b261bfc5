"""Reading the published log back from the object store: checkpoint, keys, tiles and proofs.

Proofs work for any tree size up to the published one: a perfect subtree never changes, so every
node of a smaller tree is read from the tiles of the published tree. Tiles are hashed once (their
inner levels) and cached: full tiles never change, right-edge tiles are kept per published width.
A proof whose tiles are all held is computed without awaiting anything.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.hashing import HASH_SIZE
from merkle.note import parse_note
from merkle.proofs import NodeSource, consistency_path, inclusion_path
from merkle.tiles import TILE_HEIGHT, TILE_WIDTH, TileId, split_hashes, tile_levels, tile_width_at
from services.published import layout
from storage.base import ObjectStore
from storage.errors import NotFoundError

_CACHE_TILES = 4096  # full tiles, hashed: 16 KiB each with their inner levels, 64 MiB at most
_CACHE_PARTIAL = 64  # right-edge tiles at the widths recently published
_ZERO = bytes(HASH_SIZE)
_Levels = list[bytes]
"""A tile's hashes and each level above them inside the tile (odd last node carried up), each
level one bytes string of 32-byte hashes."""


class LogReader:
    def __init__(
        self, store: ObjectStore, *, prefix: str = layout.LOG_PREFIX, origin: str, checkpoint_ttl: float = 1.0
    ) -> None:
        self._store, self._prefix, self._origin = store, prefix, origin
        self._ttl = checkpoint_ttl
        self._checkpoint: tuple[float, str, Checkpoint] | None = None
        self._keys: dict[str, Any] | None = None
        self._full: OrderedDict[tuple[int, int], _Levels] = OrderedDict()
        self._partial: OrderedDict[tuple[int, int, int], _Levels] = OrderedDict()

    async def raw(self, path: str) -> bytes:
        """The published bytes at `path` under the log prefix (NotFoundError when absent)."""
        return await self._store.get(self._prefix + path)

    async def checkpoint(self) -> tuple[str, Checkpoint]:
        """The latest published checkpoint (note and parsed body), cached for a second."""
        now = time.monotonic()
        if self._checkpoint is None or self._checkpoint[0] < now:
            note = (await self.raw(layout.CHECKPOINT)).decode()
            self._checkpoint = (
                now + self._ttl,
                note,
                parse_checkpoint(parse_note(note).text, origin=self._origin),
            )
        return self._checkpoint[1], self._checkpoint[2]

    async def checkpoint_covering(self, index: int, *, wait: float = 3.0) -> tuple[str, Checkpoint]:
        """The latest checkpoint if it contains entry `index`; waits up to `wait` seconds for
        publication to catch up (entries are acknowledged before they are published)."""
        deadline = time.monotonic() + wait
        note, cp = await self.checkpoint()
        while cp.size <= index and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            self._checkpoint = None
            note, cp = await self.checkpoint()
        return note, cp

    async def keys(self) -> dict[str, Any]:
        """The verifier keys the anchor published: {"log", "clock", "witnesses"}."""
        if self._keys is None:
            try:
                self._keys = orjson.loads(await self.raw(layout.KEYS))
            except NotFoundError:
                raise NotFoundError("the log's keys are not published yet (no anchor has started)") from None
        return self._keys

    def _held(self, place: tuple[int, int], published: int) -> _Levels | None:
        width = tile_width_at(place[0], place[1], published)
        if width == TILE_WIDTH:
            levels = self._full.get(place)
            if levels is not None:
                self._full.move_to_end(place)
            return levels
        return self._partial.get((*place, width))

    async def _load(self, places: set[tuple[int, int]], published: int) -> dict[tuple[int, int], _Levels]:
        """Fetch and hash the tiles at `places`, at their width in the published tree."""

        async def one(place: tuple[int, int]) -> _Levels:
            level, index = place
            width = tile_width_at(level, index, published)
            data = await self.raw(TileId(level, index, width).path)
            levels = [b"".join(row) for row in tile_levels(split_hashes(data, width))]
            if width == TILE_WIDTH:
                self._full[place] = levels
                if len(self._full) > _CACHE_TILES:
                    self._full.popitem(last=False)
            else:
                self._partial[(level, index, width)] = levels
                if len(self._partial) > _CACHE_PARTIAL:
                    self._partial.popitem(last=False)
            return levels

        ordered = list(places)
        if len(ordered) == 1:
            return {ordered[0]: await one(ordered[0])}
        return dict(zip(ordered, await asyncio.gather(*(one(p) for p in ordered)), strict=True))

    async def _prove(self, proof: Callable[[NodeSource], list[bytes]], published: int) -> list[bytes]:
        """Run `proof` over the cached tiles; when some are missing, the first run (on zero
        hashes: a proof's shape does not depend on them) names them all, they are fetched at
        once and the proof runs again over those and the tiles the first run found held (kept
        by the run itself: concurrent loads may evict them from the caches meanwhile)."""
        nodes = _Nodes(self, published, {})
        result = proof(nodes)
        if nodes.missing:
            nodes = _Nodes(self, published, nodes.used | await self._load(nodes.missing, published))
            result = proof(nodes)
            assert not nodes.missing, "tiles just loaded are held"
        return result

    async def _published_size(self, size: int) -> int:
        _, cp = await self.checkpoint()
        if size > cp.size:  # the cached checkpoint may be a second old: look again before refusing
            self._checkpoint = None
            _, cp = await self.checkpoint()
        if size > cp.size:
            raise NotFoundError(f"the published log has {cp.size} entries; no tree of size {size} yet")
        return cp.size

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        published = await self._published_size(size)
        return await self._prove(lambda nodes: inclusion_path(nodes, index, size), published)

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        published = await self._published_size(size2)
        return await self._prove(lambda nodes: consistency_path(nodes, size1, size2), published)


class _Nodes:
    """Perfect subtree hashes of the published tree (so of every smaller tree: a perfect node
    never changes) from hashed tiles: those just `loaded`, else the reader's caches (each kept in
    `used`). A node of a tile not held reads as zeros and the tile is noted in `missing`."""

    def __init__(self, reader: LogReader, published: int, loaded: dict[tuple[int, int], _Levels]) -> None:
        self._reader, self._published = reader, published
        self.used = dict(loaded)  # every tile this run read: those given, then those found held
        self.missing: set[tuple[int, int]] = set()

    def perfect(self, height: int, index: int) -> bytes:
        level, rest = divmod(height, TILE_HEIGHT)
        first = index << rest
        place = (level, first >> TILE_HEIGHT)
        levels = self.used.get(place)
        if levels is None:
            levels = self._reader._held(place, self._published)
            if levels is None:
                self.missing.add(place)
                return _ZERO
            self.used[place] = levels
        at = ((first % TILE_WIDTH) >> rest) * HASH_SIZE
        return levels[rest][at : at + HASH_SIZE]
