"""Where ingest and verify find a deployment's shards (SPEC §10): each shard's row of the table
with the anchor that serves it, as a `Submitter` and a `Lookup`.

In one process (`notar serve --shards K`) the anchor's app lists its running shards; ingest and
verify pods of split roles read the shard table (`private/shards.json`) and reach each shard's
anchor at the URL it advertised there (`TableShards`), reading the table again at most every
`refresh_s` so that a shard added or frozen is seen within that time. A frozen shard's look-ups
and erasures go to the anchor of the lowest active shard id with the frozen shard's origin: any
anchor reads a frozen index from the store (verify pods hold no index key to read it themselves),
and the frozen shard's own anchor may be gone, or serve another shard now. When that anchor fails
(unreachable, refusing, failing) the next active shard's anchor is asked (`FrozenReaders`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from merkle.digests import Digest
from services.internal.client import AnchorClient
from services.model import Digests, Found
from services.published.shards import Shard, load_table
from storage.base import ObjectStore
from storage.errors import NotarError, PushbackError, StorageError

REFRESH_S = 5.0


class ShardAnchor(Protocol):
    """A shard's anchor as ingest and verify reach it: services.model's Submitter and Lookup."""

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes: ...

    def refusal(self, count: int = 1) -> NotarError | None: ...

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]: ...

    async def forget(self, tenant: str, digest: Digest) -> int: ...


@dataclass(frozen=True)
class ShardLink:
    """A shard and the anchor that serves it (None while no anchor advertised a URL for it)."""

    shard: Shard
    anchor: ShardAnchor | None


class Shards(Protocol):
    async def links(self) -> Sequence[ShardLink]:
        """Every shard of the deployment, by id (frozen ones too: their look-ups still count)."""
        ...


class FixedShards:
    """The shards of one process, as the anchor's app lists them (`links` is called each time)."""

    def __init__(self, links: Callable[[], Sequence[ShardLink]]) -> None:
        self._links = links

    async def links(self) -> Sequence[ShardLink]:
        return self._links()


class TableShards:
    """The shards of the table in `store`, each anchor reached over HTTP at its URL."""

    def __init__(self, store: ObjectStore, *, refresh_s: float = REFRESH_S) -> None:
        self._store, self._refresh_s = store, refresh_s
        self._clients: dict[str, AnchorClient] = {}
        self._frozen_clients: dict[str, FrozenReaders] = {}  # share the sessions of `_clients`
        self._held: tuple[float, tuple[ShardLink, ...]] | None = None
        self._reading = asyncio.Lock()

    async def links(self) -> Sequence[ShardLink]:
        held = self._held
        if held is None or time.monotonic() - held[0] >= self._refresh_s:
            async with self._reading:
                held = self._held
                if held is None or time.monotonic() - held[0] >= self._refresh_s:
                    read_at = time.monotonic()
                    table = await load_table(self._store)
                    if not table:
                        raise PushbackError("no anchor has claimed a shard yet", retry_after=1)
                    readers = [s.url for s in sorted(table, key=lambda s: s.id) if s.writable and s.url]
                    links = tuple(
                        ShardLink(s, self._client(s.url) if s.state != "frozen" else self._frozen(readers, s))
                        for s in table
                    )
                    held = self._held = (read_at, links)
        return held[1]

    def _client(self, url: str | None) -> AnchorClient | None:
        if url is None:
            return None
        if url not in self._clients:
            self._clients[url] = AnchorClient(url)
        return self._clients[url]

    def _frozen(self, readers: Sequence[str], shard: Shard) -> FrozenReaders | None:
        """The anchors at `readers` asked about the frozen `shard`, in that order (None: no active
        shard's anchor)."""
        if not readers:
            return None
        key = f"{' '.join(readers)} {shard.origin}"
        if key not in self._frozen_clients:
            clients = [self._client(url) for url in readers]
            asked = [c.for_origin(shard.origin) for c in clients if c is not None]
            self._frozen_clients[key] = FrozenReaders(shard.origin, asked)
        return self._frozen_clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


class FrozenReaders:
    """A frozen shard's look-ups and erasures, asked of `readers` (active shards' anchors, each
    asking about the frozen shard's origin) in order: when one fails (unreachable, refusing or
    failing: StorageError, PushbackError) the next is asked, the last one's error passed on. Any
    anchor reads a frozen index from the store, so any of them answers alike. An erasure retried
    after an anchor wrote its tombstone and then failed counts none (it is erased already)."""

    def __init__(self, origin: str, readers: Sequence[AnchorClient]) -> None:
        self._origin, self._readers = origin, tuple(readers)

    def __repr__(self) -> str:
        return f"FrozenReaders({self._origin!r}, {len(self._readers)} anchors)"

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        raise PushbackError(f"the shard {self._origin} is frozen: it takes no entries", retry_after=1)

    def refusal(self, count: int = 1) -> NotarError | None:
        return PushbackError(f"the shard {self._origin} is frozen: it takes no entries", retry_after=1)

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]:
        for reader in self._readers[:-1]:
            try:
                return await reader.lookup(tenant, digest, limit=limit, after=after)
            except (StorageError, PushbackError):
                continue
        return await self._readers[-1].lookup(tenant, digest, limit=limit, after=after)

    async def forget(self, tenant: str, digest: Digest) -> int:
        for reader in self._readers[:-1]:
            try:
                return await reader.forget(tenant, digest)
            except (StorageError, PushbackError):
                continue
        return await self._readers[-1].forget(tenant, digest)

