"""Spreading one request's digests over the writable shards (SPEC §10), the simple way: cut into
contiguous parts, as even as can be, one per shard that does not refuse them now, submitted
concurrently and joined back in the request's order. Each request starts one shard further on, so
that requests of one digest (documents, SCITT-sized calls) are spread too.

A stand-in with the interface of the load-aware spreader (services/ingest/spread.py, issue 17
item 2), which replaces it: a `Submitter` built over `Shards`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from services.internal.directory import ShardLink, Shards
from services.internal.wire import join_answers
from services.model import Digests
from storage.errors import NotarError, PushbackError


def parts(digests: Digests, count: int) -> list[Digests]:
    """`digests` cut into `count` contiguous parts (sizes differ by at most one; none empty)."""
    n = len(digests)
    count = max(1, min(count, n))
    bounds = [n * i // count for i in range(count + 1)]
    return [
        Digests(digests.texts[a:b], digests.values[32 * a : 32 * b])
        for a, b in itertools.pairwise(bounds)
    ]


class EvenSplit:
    """A `Submitter` over every writable shard of `shards` with an anchor."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards
        self._known: Sequence[ShardLink] = ()
        self._turn = 0

    async def _writable(self) -> list[ShardLink]:
        self._known = await self._shards.links()
        return [link for link in self._known if link.shard.writable and link.anchor is not None]

    def refusal(self, count: int = 1) -> NotarError | None:
        """A refusal only when every writable shard seen last would refuse its share."""
        writable = [link for link in self._known if link.shard.writable and link.anchor is not None]
        if not writable:
            return None  # not read yet: `submit` says
        share = -(-count // len(writable))
        refusals = [link.anchor.refusal(share) for link in writable if link.anchor is not None]
        return None if any(r is None for r in refusals) else refusals[0]

    async def submit(self, tenant: str, digests: Digests) -> bytes:
        writable = await self._writable()
        share = -(-len(digests) // max(1, len(writable)))
        taking = [link.anchor for link in writable if link.anchor and link.anchor.refusal(share) is None]
        if not taking:
            raise PushbackError("no shard takes entries right now", retry_after=1)
        self._turn = turn = (self._turn + 1) % len(taking)
        taking = taking[turn:] + taking[:turn]
        cut = parts(digests, len(taking))
        sent = (a.submit(tenant, part) for a, part in zip(taking, cut, strict=False))
        answers = await asyncio.gather(*sent)
        return join_answers(answers)
