"""The frozen shards whose tenant index an anchor process reads from the object store (SPEC §10,
services.anchor.frozen_index): those it froze itself, those the shard table said were frozen when
it started, and those another anchor froze since, found in the table when asked for.

Only anchors read them: a frozen index is keyed and sealed under the index key, which verify pods
do not hold (services.common.index_key). In one process the shards' links reach them in process
(services.anchor.app `local_shards`); in split roles verify pods ask any active shard's anchor with
the frozen shard's `origin` (services.internal.wire). `drop_when_frozen` is the Freezer's
`on_frozen` hook: the shard's look-ups switch to the store, then its RocksDB goes.

Their SCITT registrations are read there too (services.anchor.frozen_scitt): `scitt_receipt` is
what the anchor's registrar asks for an entry its own log lacks (`Registrar.read_frozen`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from services.anchor.freeze import drop_local_index
from services.anchor.frozen_index import FrozenIndex, FrozenManifest
from services.anchor.frozen_scitt import FrozenScitt
from services.anchor.shardset import ShardAnchor
from services.anchor.tenant_index import TenantIndex
from services.published.shards import Shard, load_table
from storage.base import ObjectStore

REFRESH_S = 5.0  # a SCITT look-up that finds nothing reads the table again at most this often


class FrozenShards:
    """Frozen shards by id, each with its `FrozenIndex` (kept: it caches the manifest and fences).
    A frozen shard stays frozen (the state is final), so a shard is added once and never goes."""

    def __init__(self, store: ObjectStore, index_key: bytes, *, refresh_s: float = REFRESH_S) -> None:
        self._store, self._key, self._refresh_s = store, index_key, refresh_s
        self._held: dict[int, tuple[Shard, FrozenIndex]] = {}
        self._scitt: dict[int, FrozenScitt] = {}
        self._loaded_at: float | None = None

    def add(self, shard: Shard) -> FrozenIndex:
        """Hold `shard` (frozen) and its index; the index."""
        held = self._held.get(shard.id)
        if held is None:
            rows = TenantIndex(self._key, origin=shard.origin)
            index = FrozenIndex(self._store, tenant_index=rows, prefix=shard.prefix)
            held = self._held[shard.id] = (shard, index)
            self._scitt[shard.id] = FrozenScitt(self._store, prefix=shard.prefix)
        return held[1]

    def get(self, shard: int) -> FrozenIndex | None:
        held = self._held.get(shard)
        return None if held is None else held[1]

    def shards(self) -> list[Shard]:
        """The frozen shards held, by id."""
        return [self._held[i][0] for i in sorted(self._held)]

    async def load(self) -> None:
        """Hold every shard the table says is frozen."""
        self._loaded_at = time.monotonic()
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

    async def scitt_receipt(self, entry: bytes) -> bytes | None:
        """The receipt of the SCITT entry `entry` in the frozen shard that logged it (the lowest
        id, were there two); None when none did. The table is read again, at most every
        `refresh_s`, when none held did: a shard another anchor froze since."""
        for reload in (False, True):
            if reload:
                if self._loaded_at is not None and time.monotonic() - self._loaded_at < self._refresh_s:
                    return None
                await self.load()
            for shard in sorted(self._scitt):
                found = await self._scitt[shard].receipt(entry)
                if found is not None:
                    return found
        return None

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
