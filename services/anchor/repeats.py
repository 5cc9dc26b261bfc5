"""REPEATS_MAX: how many times one tenant may notarize one digest (issue 15: 100,000 notarizations
of one digest made every look-up of it scan that many tenant-index rows).

The count of each (tenant, digest) is a row of the index beside the tenant index::

    key   = "n" || name      17 bytes (name: the tenant-index rows' keyed name, `TenantIndex`)
    value = u32be(count)

written in the same atomic, fsynced batch as the rows it counts (the sequencer's compare-and-swap),
so it survives a restart with them and a backup holds both. Erasure deletes it with the rows
(`erasure.Eraser`), so an erased digest may be notarized again.

A batch reads the counts of its distinct names in one multi-get. When no name's count plus the
batch's own repeats of it passes the cap (the usual case) it is admitted whole, in a few C loops;
otherwise its requests are admitted in order: a request that would take one of its names past
the cap is refused whole with `RepeatsCapped` (409) and nothing of it is written; the others are
written with their counts.

A count can only run ahead of the rows, never behind: an erasure that lands between a batch's read
and its write leaves the batch's count over the rows it wrote. So before refusing, the name's rows
are counted exactly (a prefix scan stopped after `cap + 1` rows) and the count is corrected:
refusals are rare, and only they pay for the scan.

Rows written before this count existed (an index from an earlier version) are not counted: the
cap counts from the upgrade on. REPEATS_MAX = 0 turns the cap off, and no count is kept then.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from merkle.digests import Digest, multihashes
from services.anchor import state
from services.anchor.tenant_index import NAME_SIZE, TENANT, TenantIndex, cut
from storage.base import Index
from storage.errors import RepeatsCapped

COUNT = state.REPEATS
_U32 = struct.Struct(">I")


class Request(Protocol):
    """A request waiting in a batch: one tenant's digests and the future its caller awaits."""

    @property
    def tenant(self) -> str: ...

    @property
    def digests(self) -> Sequence[Digest]: ...

    @property
    def future(self) -> asyncio.Future[Any]: ...


R = TypeVar("R", bound=Request)


@dataclass(frozen=True)
class Tally:
    """A batch's names as the cap reads them: every entry's tenant-index name in the requests'
    order; how often each comes; the distinct ones in order (their count rows are written in key
    order: RocksDB inserts a batch's keys faster so, see `TenantIndex.rows`)."""

    every: tuple[bytes, ...]
    totals: Counter[bytes]
    distinct: list[bytes]

    @classmethod
    def of(cls, names: bytes) -> Tally:
        every = cut(names, NAME_SIZE)
        totals = Counter(every)
        return cls(every, totals, sorted(totals))


def count_key(name: bytes) -> bytes:
    """The key of the count of a tenant-index name (16 bytes)."""
    return COUNT + name


class RepeatCap:
    """The cap of one log's sequencer on the notarizations of each (tenant, digest) (module doc)."""

    def __init__(self, *, index: Index, tenant_index: TenantIndex, cap: int) -> None:
        self._index, self._rows, self.cap = index, tenant_index, cap

    async def admit(
        self, requests: Sequence[R], tally: Tally | None = None
    ) -> tuple[list[R], dict[bytes, bytes]]:
        """The requests of a batch that stay under the cap, in order, and the count rows to write
        with them; every other request's future gets `RepeatsCapped` (409) naming its first
        digest over the cap. StorageError when the counts cannot be read (nothing is refused or
        written then). `tally`: `tally` of the requests' names, when the caller has them (the
        sequencer, in the worker thread that makes its batch); computed here otherwise."""
        if not self.cap or not requests:
            return list(requests), {}
        if tally is None:  # CPU-bound: in a worker thread, as the sequencer's other steps
            tally = await asyncio.to_thread(self._tally_of, requests)
        counts, held = await self._counts(tally, {})
        if counts is not None:
            return list(requests), counts
        return await self._one_by_one(requests, tally.every, held)

    async def admit_whole(
        self, tally: Tally | None, ahead: Mapping[bytes, bytes]
    ) -> dict[bytes, bytes] | None:
        """The count rows of a batch whose `tally` passes the cap nowhere, counting over the stored
        counts those of `ahead` (the count rows of the batch being written before it, whose rows
        RocksDB does not hold yet); None when some name may pass it: then `admit` decides, once
        that batch is durable (it refuses, and corrects counts from the rows, which only RocksDB
        has). Refuses nothing. StorageError as `admit`."""
        if tally is None:
            return {}
        counts, _ = await self._counts(tally, ahead)
        return counts

    async def _counts(
        self, tally: Tally, ahead: Mapping[bytes, bytes]
    ) -> tuple[dict[bytes, bytes] | None, dict[bytes, int]]:
        """The count rows of a batch when no name passes the cap (the usual case: a multi-get and
        a few C loops), else None; and every distinct name's stored count."""
        totals, distinct = tally.totals, tally.distinct
        keys = cut(COUNT + COUNT.join(distinct), len(COUNT) + NAME_SIZE) if distinct else ()
        stored = await self._index.multi_get(keys)
        if ahead:
            stored = [ahead.get(k, v) for k, v in zip(keys, stored, strict=True)]
        if stored.count(None) == len(stored):  # the usual case: no name was notarized before
            held: dict[bytes, int] = {}
            counts = list(map(totals.__getitem__, distinct))
        else:
            held = {n: _U32.unpack(v)[0] for n, v in zip(distinct, stored, strict=True) if v is not None}
            counts = [held.get(n, 0) + totals[n] for n in distinct]
        if max(counts, default=0) <= self.cap:  # none passes it: the counts are written as they are
            values = cut(struct.pack(f">{len(counts)}I", *counts), _U32.size)
            return dict(zip(keys, values, strict=True)), held
        return None, {n: held.get(n, 0) for n in distinct}

    def tally(self, names: bytes) -> Tally | None:
        """`Tally` of a batch's names (`TenantIndex.names` of all its digests, in order), or None
        when the cap is off (nothing to count)."""
        return Tally.of(names) if self.cap else None

    def _tally_of(self, requests: Sequence[R]) -> Tally:
        tenants = [r.tenant for r in requests for _ in r.digests]
        return Tally.of(self._rows.names(tenants, multihashes([d for r in requests for d in r.digests])))

    async def _one_by_one(
        self, requests: Sequence[R], every: tuple[bytes, ...], held: dict[bytes, int]
    ) -> tuple[list[R], dict[bytes, bytes]]:
        """`admit` for a batch in which some name may pass the cap: request after request."""
        admitted: list[R] = []
        changed: set[bytes] = set()
        at = 0
        for request in requests:
            theirs = every[at : at + len(request.digests)]
            at += len(theirs)
            mine = Counter(theirs)
            over = await self._over(mine, held, changed)
            if over is None:
                for name, k in mine.items():
                    held[name] += k
                changed.update(mine)
                admitted.append(request)
            elif not request.future.done():
                request.future.set_exception(self._refusal(request, theirs.index(over)))
        return admitted, {count_key(n): _U32.pack(held[n]) for n in changed}

    async def _over(self, mine: Counter[bytes], held: dict[bytes, int], changed: set[bytes]) -> bytes | None:
        """The first name of a request that would go over the cap, after correcting from the rows
        any count that says so (module doc), or None."""
        for name, k in mine.items():
            if held[name] + k <= self.cap:
                continue
            if name not in changed:  # its count is the stored one: it may run ahead of the rows
                rows = [key async for key, _ in self._index.scan(TENANT + name, limit=self.cap + 1)]
                if len(rows) != held[name]:
                    held[name] = len(rows)
                    changed.add(name)  # the corrected count is written with the batch
            if held[name] + k > self.cap:
                return name
        return None

    def _refusal(self, request: Request, position: int) -> RepeatsCapped:
        digest = str(request.digests[position])
        return RepeatsCapped(
            f"tenant {request.tenant!r} has notarized {digest} as many times as REPEATS_MAX allows "
            f"({self.cap}); nothing of this request was notarized. Use a receipt it has already "
            f"(GET /v1/receipts/{digest}), or erase them (DELETE /v1/receipts/{digest}) to notarize it anew",
            digest=digest,
            cap=self.cap,
        )

