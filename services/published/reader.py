"""Reading the published log back from the object store: checkpoint, keys, tiles and proofs.

Proofs work for any tree size up to the published one: a perfect subtree never changes, so every
node of a smaller tree is read from the tiles of the published tree. Tiles are hashed once (their
inner levels) and cached: full tiles never change, right-edge tiles are kept per published width.
A proof whose tiles are all held is computed without awaiting anything.

A receipt reaches its client a moment before its checkpoint is published (it is durable first):
a question about a tree size, or a tile, that the published checkpoint does not cover yet waits
for it, at most `WAIT_S` (SPEC §2), polling the checkpoint: all waiters share one read of it per
`POLL_S`.
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
from merkle.tiles import ENTRIES, TILE_HEIGHT, TILE_WIDTH, TileId, split_hashes, tile_levels, tile_width_at
from services.published import layout
from storage.base import ObjectStore
from storage.errors import NotFoundError

_CACHE_TILES = 4096  # full tiles, hashed: 16 KiB each with their inner levels, 64 MiB at most
_CACHE_PARTIAL = 64  # right-edge tiles at the widths recently published
_ZERO = bytes(HASH_SIZE)
WAIT_S = 2.0
"""The longest a question about a tree not yet published waits for it."""
POLL_S = 0.05
KEYS_TTL_S = 30.0
"""How long the keys document is served before it is read again."""
_Levels = list[bytes]
"""A tile's hashes and each level above them inside the tile (odd last node carried up), each
level one bytes string of 32-byte hashes."""


class LogReader:
    def __init__(
        self, store: ObjectStore, *, prefix: str = layout.LOG_PREFIX, origin: str, checkpoint_ttl: float = 1.0
    ) -> None:
        self._store, self._prefix, self._origin = store, prefix, origin
        self._ttl = checkpoint_ttl
        self._checkpoint: tuple[float, str, Checkpoint] | None = None  # (read at, note, body)
        self._reading = asyncio.Lock()
        self._keys: tuple[float, dict[str, Any]] | None = None  # (read at, document)
        self._full: OrderedDict[tuple[int, int], _Levels] = OrderedDict()
        self._partial: OrderedDict[tuple[int, int, int], _Levels] = OrderedDict()

    async def raw(self, path: str) -> bytes:
        """The published bytes at `path` under the log prefix (NotFoundError when absent)."""
        return await self._store.get(self._prefix + path)

    async def checkpoint(self, *, max_age: float | None = None) -> tuple[str, Checkpoint]:
        """The latest published checkpoint (note and parsed body), read at most `max_age` seconds
        ago (default: the reader's checkpoint_ttl, a second). Concurrent callers share one read."""
        age = self._ttl if max_age is None else min(max_age, self._ttl)
        held = self._checkpoint
        if held is None or time.monotonic() - held[0] >= age:
            async with self._reading:
                held = self._checkpoint
                if held is None or time.monotonic() - held[0] >= age:
                    read_at = time.monotonic()
                    note = (await self.raw(layout.CHECKPOINT)).decode()
                    body = parse_checkpoint(parse_note(note).text, origin=self._origin)
                    held = self._checkpoint = (read_at, note, body)
        return held[1], held[2]

    async def published(self, size: int, *, wait: float = WAIT_S) -> tuple[str, Checkpoint] | None:
        """The latest published checkpoint once it covers `size` entries, waiting up to `wait`
        seconds for publication to catch up; None when it has not by then."""
        deadline = time.monotonic() + wait
        note, cp = await self.checkpoint()
        while cp.size < size:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(POLL_S, left))
            note, cp = await self.checkpoint(max_age=POLL_S)
        return note, cp

    async def checkpoint_covering(self, index: int) -> tuple[str, Checkpoint]:
        """The latest checkpoint, once it contains entry `index` if that happens within `WAIT_S`."""
        return await self.published(index + 1) or await self.checkpoint()

    async def tile(self, tile: TileId) -> bytes:
        """The published bytes of `tile`; when it is not there yet and the published checkpoint is
        smaller than the tree it belongs to, waits up to `WAIT_S` for that tree. NotFoundError."""
        try:
            return await self.raw(tile.path)
        except NotFoundError:
            needed = (tile.index * TILE_WIDTH + tile.width) * (
                1 if tile.level == ENTRIES else TILE_WIDTH ** int(tile.level)
            )
            _, cp = await self.checkpoint()
            if cp.size >= needed or await self.published(needed) is None:
                raise
        return await self.raw(tile.path)

    async def keys(self) -> dict[str, Any]:
        """The keys document the anchor wrote (services.published.trust), read again after
        ``KEYS_TTL_S``: an anchor that starts after a key rotation rewrites it."""
        now = time.monotonic()
        if self._keys is None or now - self._keys[0] >= KEYS_TTL_S:
            try:
                self._keys = (now, orjson.loads(await self._store.get(layout.keys_key(self._prefix))))
            except NotFoundError:
                raise NotFoundError("the log's keys are not published yet (no anchor has started)") from None
        return self._keys[1]

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
        found = await self.published(size)
        if found is None:
            _, cp = await self.checkpoint()
            raise NotFoundError(f"the published log has {cp.size} entries; no tree of size {size} yet")
        return found[1].size

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
