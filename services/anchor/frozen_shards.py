"""The frozen shards whose tenant index an anchor process reads from the object store (SPEC §10,
services.anchor.frozen_index): those it froze itself, those the shard table said were frozen when
it started, and those another anchor froze since, found in the table when asked for.

Only anchors read them: a frozen index is keyed and sealed under the index key, which verify pods
do not hold (services.common.index_key). In one process the shards' links reach them in process
(services.anchor.app `local_shards`); in split roles verify pods ask any active shard's anchor with
the frozen shard's `origin` (services.internal.wire). `drop_when_frozen` is the Freezer's
`on_frozen` hook: the shard's look-ups switch to the store, then its RocksDB goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from services.anchor.freeze import drop_local_index
from services.anchor.frozen_index import FrozenIndex, FrozenManifest
from services.anchor.shardset import ShardAnchor
from services.anchor.tenant_index import TenantIndex
from services.published.shards import Shard, load_table
from storage.base import ObjectStore


class FrozenShards:
    """Frozen shards by id, each with its `FrozenIndex` (kept: it caches the manifest and fences).
    A frozen shard stays frozen (the state is final), so a shard is added once and never goes."""

    def __init__(self, store: ObjectStore, index_key: bytes) -> None:
        self._store, self._key = store, index_key
        self._held: dict[int, tuple[Shard, FrozenIndex]] = {}

    def add(self, shard: Shard) -> FrozenIndex:
        """Hold `shard` (frozen) and its index; the index."""
        held = self._held.get(shard.id)
        if held is None:
            rows = TenantIndex(self._key, origin=shard.origin)
            index = FrozenIndex(self._store, tenant_index=rows, prefix=shard.prefix)
            held = self._held[shard.id] = (shard, index)
        return held[1]

    def get(self, shard: int) -> FrozenIndex | None:
        held = self._held.get(shard)
        return None if held is None else held[1]

    def shards(self) -> list[Shard]:
        """The frozen shards held, by id."""
        return [self._held[i][0] for i in sorted(self._held)]

    async def load(self) -> None:
        """Hold every shard the table says is frozen."""
        for shard in await load_table(self._store):
            if shard.state == "frozen":
                self.add(shard)

    async def of_origin(self, origin: str) -> FrozenIndex | None:
        """The index of the frozen shard of `origin`, the table read again when none is held; None
        when no shard of that origin is frozen."""
        found = self._find(origin)
        if found is None:
            await self.load()
            found = self._find(origin)
        return found

    def _find(self, origin: str) -> FrozenIndex | None:
        return next((index for shard, index in self._held.values() if shard.origin == origin), None)


def drop_when_frozen(
    frozen: FrozenShards, one: ShardAnchor, erasing: asyncio.Task[None], *, drop: bool = True
) -> Callable[[FrozenManifest], Awaitable[None]]:
    """Once `one` is frozen: its look-ups and erasures go to its frozen index, then (`drop`) its
    RocksDB is closed and deleted (what else used it is done: the sequencer is sealed, the backups
    stopped when it started freezing, its eraser is stopped here), so the disk holds only active
    shards. Not with SHARDS=1: that process runs shard 0 whatever the table says, sealed when
    frozen, and its start-up recovers the log from that RocksDB."""

    async def on_frozen(_: FrozenManifest) -> None:
        frozen.add(replace(one.shard, state="frozen"))
        if not drop:
            return
        erasing.cancel()
        await asyncio.gather(erasing, return_exceptions=True)
        await one.index.close()
        drop_local_index(one.config.store.index_path)

    return on_frozen
