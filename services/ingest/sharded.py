"""Ingest's writes with several shards (SPEC §10): the spreader (services.ingest.spread) over the
writable shards that `Shards` lists (in one process the anchor's, in an ingest pod the shard
table's), told of each change of that list: a shard added starts taking entries, a frozen one
stops.
"""

from __future__ import annotations

from opentelemetry.metrics import Meter

from services.ingest.spread import Spread, SpreadConfig
from services.internal.directory import Shards
from services.model import Digests, Submitter
from storage.errors import NotarError, PushbackError


class ShardedSubmitter:
    """A `Submitter` over every writable shard of `shards` that has an anchor."""

    def __init__(
        self, shards: Shards, *, meter: Meter | None = None, config: SpreadConfig | None = None
    ) -> None:
        self._shards, self._meter, self._config = shards, meter, config
        self._spread: Spread | None = None
        self._seen: tuple[object, ...] = ()

    async def _current(self) -> Spread:
        links = await self._shards.links()
        seen = tuple((link.shard, id(link.anchor)) for link in links)
        if seen != self._seen or self._spread is None:
            writable: dict[int, Submitter] = {
                link.shard.id: link.anchor for link in links if link.shard.writable and link.anchor
            }
            if not writable:
                raise PushbackError("no shard takes entries right now", retry_after=1)
            if self._spread is None:
                self._spread = Spread(writable, meter=self._meter, config=self._config)
            else:
                self._spread.set_shards(writable)
            self._seen = seen
        return self._spread

    def refusal(self, count: int = 1) -> NotarError | None:
        return None if self._spread is None else self._spread.refusal(count)

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        return await (await self._current()).submit(tenant, digests, compact=compact)
