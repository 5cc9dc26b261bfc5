"""Reading the published log back from the object store: checkpoint, keys, tiles and proofs.

Proofs work for any tree size up to the published one: a tile of a smaller tree is a prefix of
the same tile in the published tree, so a missing `.p/W` is cut from the wider tile. Full tiles
never change and are cached.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

import orjson

from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.hashing import HASH_SIZE
from merkle.note import parse_note
from merkle.tiles import (
    TILE_WIDTH,
    TileId,
    consistency_proof_from_tiles,
    inclusion_proof_from_tiles,
    tile_width_at,
    tiles_needed,
)
from storage.base import ObjectStore
from storage.errors import NotFoundError

_CACHE_TILES = 4096


class LogReader:
    def __init__(
        self, store: ObjectStore, *, prefix: str = "log/", origin: str, checkpoint_ttl: float = 1.0
    ) -> None:
        self._store, self._prefix, self._origin = store, prefix, origin
        self._ttl = checkpoint_ttl
        self._checkpoint: tuple[float, str, Checkpoint] | None = None
        self._keys: dict[str, Any] | None = None
        self._full: OrderedDict[TileId, bytes] = OrderedDict()

    async def raw(self, path: str) -> bytes:
        """The published bytes at `path` under the log prefix (NotFoundError when absent)."""
        return await self._store.get(self._prefix + path)

    async def checkpoint(self) -> tuple[str, Checkpoint]:
        """The latest published checkpoint (note and parsed body), cached for a second."""
        now = time.monotonic()
        if self._checkpoint is None or self._checkpoint[0] < now:
            note = (await self.raw("checkpoint")).decode()
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
                self._keys = orjson.loads(await self.raw("keys.json"))
            except NotFoundError:
                raise NotFoundError("the log's keys are not published yet (no anchor has started)") from None
        return self._keys

    async def _tile(self, tid: TileId, published: int) -> bytes:
        assert isinstance(tid.level, int)
        width_now = tile_width_at(tid.level, tid.index, published)
        source = TileId(tid.level, tid.index, TILE_WIDTH if width_now == TILE_WIDTH else width_now)
        data = self._full.get(source)
        if data is None:
            data = await self.raw(source.path)
            if source.width == TILE_WIDTH:
                self._full[source] = data
                if len(self._full) > _CACHE_TILES:
                    self._full.popitem(last=False)
        else:
            self._full.move_to_end(source)
        return data[: tid.width * HASH_SIZE]

    async def _tiles(self, ids: set[TileId], published: int) -> dict[TileId, bytes]:
        ordered = list(ids)
        datas = await asyncio.gather(*(self._tile(t, published) for t in ordered))
        return dict(zip(ordered, datas, strict=True))

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
        needed = tiles_needed(lambda f: inclusion_proof_from_tiles(index, size, f))
        tiles = await self._tiles(needed, published)
        return inclusion_proof_from_tiles(index, size, tiles.__getitem__)

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        published = await self._published_size(size2)
        needed = tiles_needed(lambda f: consistency_proof_from_tiles(size1, size2, f))
        tiles = await self._tiles(needed, published)
        return consistency_proof_from_tiles(size1, size2, tiles.__getitem__)
