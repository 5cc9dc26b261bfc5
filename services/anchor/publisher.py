"""Publication of the log to the object store: tiles and bundles, then the checkpoint; and the lease.

Tiles and bundles are immutable keys (put-if-absent: a retry of identical bytes succeeds, other
bytes are a conflict). The checkpoint is replaced only over the version this writer last wrote,
and the lease names the one anchor allowed to write the log: a second anchor cannot corrupt it.
Tiles, bundles and checkpoint carry the Cache-Control of `services.published.layout`; the lease
lives in the log's private prefix.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from merkle.tiles import Tile
from services.published import layout
from storage.base import ObjectStore
from storage.errors import ConflictError, NotFoundError, StorageError

log = logging.getLogger("notar.anchor")


class LeaseHeldError(ConflictError):
    """Another anchor holds the log's lease."""


@dataclass(frozen=True)
class Lease:
    holder: str
    until: float


class Publisher:
    """Writes tiles, bundles and checkpoints of one log under `prefix`, retrying transient failures."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._clock = clock
        self._checkpoint_version: str | None = None
        self._lease_version: str | None = None
        self.errors = 0

    async def _retry(self, what: str, call: Callable[[], object]) -> object:
        delay = 0.05
        while True:
            try:
                result = call()
                if asyncio.iscoroutine(result):
                    result = await result
                return result
            except StorageError as e:
                self.errors += 1
                log.warning("publishing %s failed, retrying: %s", what, e)
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not secrets
                delay = min(delay * 2, 2.0)

    async def put_tiles(self, tiles: Sequence[Tile]) -> None:
        """Write every tile and bundle (immutable) in one call of the store, which writes them at
        once (`ObjectStore.put_all_if_absent`), retried whole until all are durable. A round of a
        busy log is hundreds of files: the directory store gives each of its threads a share, and
        fsyncs each directory once per share. A call per file paid a thread hop and a directory
        fsync per file, and left the sequencer's event loop a callback per file: publication
        fell behind the sequencer."""
        if not tiles:
            return
        items = [(layout.tile_key(t.id, self._prefix), t.data) for t in tiles]
        what = tiles[0].id.path if len(tiles) == 1 else f"{len(tiles)} tiles from {tiles[0].id.path}"
        await self._retry(what, lambda: self._store.put_all_if_absent(items, cache_control=layout.IMMUTABLE))

    def adopt_checkpoint_version(self, version: str | None) -> None:
        self._checkpoint_version = version

    async def put_checkpoint(self, note: str) -> None:
        """Replace the checkpoint over the version this writer last saw; ConflictError if another won."""

        async def write() -> None:
            self._checkpoint_version = await self._store.put_if_version(
                layout.checkpoint_key(self._prefix),
                note.encode(),
                self._checkpoint_version,
                cache_control=layout.CHECKPOINT_CACHE,
            )

        await self._retry("checkpoint", write)

    async def acquire_lease(self, holder: str, ttl: float) -> None:
        """Take or renew the log's lease; LeaseHeldError when another holder's lease is live."""
        key = layout.lease_key(self._prefix)
        try:
            current = await self._store.get_versioned(key)
            lease = orjson.loads(current.data)
            other, until = str(lease["holder"]), float(lease["until"])
            version: str | None = current.version
        except NotFoundError:
            other, until, version = holder, 0.0, None
        except (ValueError, KeyError, TypeError) as e:
            raise StorageError(f"the lease object {key} is malformed: {e}", key=key) from e
        now = self._clock()
        if other != holder and until > now:
            raise LeaseHeldError(
                f"another anchor ({other}) holds the lease on {self._prefix or 'the log'} until "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))}: one writer per log",
                key=key,
            )
        body = orjson.dumps({"holder": holder, "until": now + ttl})
        self._lease_version = await self._store.put_if_version(key, body, version)

    async def renew_lease(self, holder: str, ttl: float) -> None:
        """Extend our lease over the version we wrote; ConflictError if someone else replaced it.

        A renewal that failed but was stored leaves a newer version of our own lease: adopt it."""
        key = layout.lease_key(self._prefix)
        body = orjson.dumps({"holder": holder, "until": self._clock() + ttl})
        try:
            self._lease_version = await self._store.put_if_version(key, body, self._lease_version)
        except ConflictError:
            current = await self._store.get_versioned(key)
            try:
                mine = orjson.loads(current.data).get("holder") == holder
            except (ValueError, AttributeError):
                mine = False
            if not mine:
                raise
            self._lease_version = await self._store.put_if_version(key, body, current.version)

    async def release_lease(self, holder: str, *, published: int | None = None) -> None:
        """Give the lease up. ``published``: the size of the log, when every checkpoint this
        anchor signed is published (it is the size the log stopped at: ``notar keys rotate``
        hands over there when it cannot read the anchor's RocksDB)."""
        lease: dict[str, object] = {"holder": holder, "until": 0}
        if published is not None:
            lease["published"] = published
        body = orjson.dumps(lease)
        try:
            await self._store.put_if_version(layout.lease_key(self._prefix), body, self._lease_version)
        except (StorageError, ConflictError) as e:
            log.warning("could not release the lease: %s", e)
