"""Where ingest and verify find a deployment's shards (SPEC §10): each shard's row of the table
with the anchor that serves it, as a `Submitter` and a `Lookup`.

In one process (`notar serve --shards K`) the anchor's app lists its running shards; ingest and
verify pods of split roles read the shard table (`private/shards.json`) and reach each shard's
anchor at the URL it advertised there (`TableShards`), reading the table again at most every
`refresh_s` so that a shard added or frozen is seen within that time. A frozen shard's look-ups
and erasures go to the anchor of the lowest active shard id with the frozen shard's origin: any
anchor reads a frozen index from the store (verify pods hold no index key to read it themselves),
and the frozen shard's own anchor may be gone, or serve another shard now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from merkle.digests import Digest
from services.internal.client import AnchorClient
from services.model import Digests
from services.published.shards import Shard, load_table
from storage.base import ObjectStore
from storage.errors import NotarError, PushbackError

REFRESH_S = 5.0


class ShardAnchor(Protocol):
    """A shard's anchor as ingest and verify reach it: services.model's Submitter and Lookup."""

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes: ...

    def refusal(self, count: int = 1) -> NotarError | None: ...

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[tuple[int, bytes]]: ...

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
        self._frozen_clients: dict[str, AnchorClient] = {}  # share the sessions of `_clients`
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
                    reader = next((s.url for s in table if s.writable and s.url is not None), None)
                    links = tuple(
                        ShardLink(s, self._client(s.url) if s.state != "frozen" else self._frozen(reader, s))
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

    def _frozen(self, reader: str | None, shard: Shard) -> AnchorClient | None:
        """The anchor at `reader` asked about the frozen `shard` (None: no active shard's anchor)."""
        client = self._client(reader)
        if client is None:
            return None
        key = f"{reader} {shard.origin}"
        if key not in self._frozen_clients:
            self._frozen_clients[key] = client.for_origin(shard.origin)
        return self._frozen_clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
