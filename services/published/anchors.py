"""Anchored checkpoints in the object store, and their lookup for receipt upgrades (SPEC §4, §5).

Layout under the log's private prefix (``private/log/``; the keys are
``services.published.layout``'s, which says why they are not under the public ``log/``), every
object immutable:

- ``anchors/record/<size>/<kind>.json``: the anchor record of kind ``kind`` for the checkpoint
  of tree size ``size`` (20 decimal digits), as sorted-key JSON;
- ``anchors/checkpoint/<size>``: that checkpoint's signed note, written after its first record,
  so that its presence means "this size has at least one anchor".

Records of other kinds may still be added to an anchored size later (an EVM transaction waiting
for its confirmations). A receipt is upgraded to the anchored checkpoint that holds its entry and
carries the most kinds, the earliest of those (``best_for``): a kind that skipped the entry's first
anchored checkpoint, because it was busy or down, still reaches the receipt, on a later checkpoint.
The verify service needs only this module and an object store; no committer has to run there.
The anchor's committer writes through the same class (``put``), so reads and writes agree on keys.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from services.published import layout
from storage.base import ObjectStore
from storage.errors import ConflictError, NotFoundError

KIND_ORDER = ("local", "evm", "rfc3161")


@dataclass(frozen=True)
class AnchoredCheckpoint:
    """An anchored checkpoint: its tree size, its signed note and every record stored for it."""

    size: int
    note: str
    records: tuple[dict[str, Any], ...]


def _kind_rank(record: Mapping[str, Any]) -> tuple[int, str]:
    kind = str(record.get("type"))
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


class AnchorStore:
    """Reads and writes anchored checkpoints. The sorted list of anchored sizes, and of the sizes
    anchored by each kind, are cached and re-listed at most every ``refresh_s`` seconds, and only
    when a question cannot be answered from the cache (sizes and records only ever get added)."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        prefix: str = layout.LOG_PREFIX,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._clock, self._refresh_s = store, clock, refresh_s
        self._prefix = prefix
        self._sizes: list[int] = []
        self._kinds: dict[str, list[int]] = {}  # kind -> sizes with a record of that kind
        self._listed_at: float | None = None
        self._lock = asyncio.Lock()

    def checkpoint_key(self, size: int) -> str:
        return layout.anchor_checkpoint_key(size, self._prefix)

    def record_key(self, size: int, kind: str) -> str:
        return layout.anchor_record_key(size, kind, self._prefix)

    async def put(self, size: int, note: str, record: Mapping[str, Any]) -> None:
        """Store ``record`` for the checkpoint ``note`` of tree size ``size`` (durable on return).
        The first record stored for a size and kind stays; a later one is dropped."""
        body = orjson.dumps(dict(record), option=orjson.OPT_SORT_KEYS)
        # an earlier attempt may have stored its own final record for this size: it stands
        kind = str(record["type"])
        with contextlib.suppress(ConflictError):
            await self._store.put_if_absent(self.record_key(size, kind), body)
        await self.put_checkpoint(size, note)
        sizes = self._kinds.setdefault(kind, [])
        if not _holds(sizes, size):
            bisect.insort(sizes, size)

    async def put_checkpoint(self, size: int, note: str) -> None:
        """Mark ``size`` anchored with its note (after at least one record is stored)."""
        await self._store.put_if_absent(self.checkpoint_key(size), note.encode("utf-8"))
        if size not in self._sizes:
            bisect.insort(self._sizes, size)

    async def has(self, size: int, kind: str) -> bool:
        """Whether a record of ``kind`` is stored for ``size``."""
        try:
            await self._store.get(self.record_key(size, kind))
        except NotFoundError:
            return False
        return True

    async def sizes(self, *, refresh: bool = True) -> list[int]:
        """Every anchored tree size, ascending."""
        if refresh:
            await self._relist()
        return list(self._sizes)

    async def _relist(self) -> None:
        async with self._lock:
            base = layout.anchor_checkpoints(self._prefix)
            found = sorted({int(k[len(base) :]) async for k in self._store.list(base)} | set(self._sizes))
            kinds = {k: set(v) for k, v in self._kinds.items()}
            records = layout.anchor_records(self._prefix)
            async for key in self._store.list(records):
                size, _, name = key[len(records) :].partition("/")
                if size.isdigit() and name.endswith(".json"):
                    kinds.setdefault(name.removesuffix(".json"), set()).add(int(size))
            self._kinds = {k: sorted(v) for k, v in kinds.items()}
            self._sizes, self._listed_at = found, self._clock()

    def _stale(self) -> bool:
        return self._listed_at is None or self._clock() - self._listed_at >= self._refresh_s

    async def anchors_for(self, size: int) -> AnchoredCheckpoint | None:
        """The anchored checkpoint of exactly ``size`` with all its records, or None."""
        try:
            note = (await self._store.get(self.checkpoint_key(size))).decode("utf-8")
        except NotFoundError:
            return None
        base = layout.anchor_records_of(size, self._prefix)
        keys = sorted([k async for k in self._store.list(base)])
        records = [orjson.loads(await self._store.get(k)) for k in keys]
        return AnchoredCheckpoint(size, note, tuple(sorted(records, key=_kind_rank)))

    async def first_anchored(self, min_size: int) -> AnchoredCheckpoint | None:
        """The smallest anchored checkpoint of size ``>= min_size``, or None yet.

        To upgrade the receipt of the entry at index ``i`` ask for ``min_size = i + 1``: the
        earliest anchored tree that holds the entry proves the earliest time."""
        if (not self._sizes or self._sizes[-1] < min_size) and self._stale():
            await self._relist()
        pos = bisect.bisect_left(self._sizes, min_size)
        if pos == len(self._sizes):
            return None
        return await self.anchors_for(self._sizes[pos])

    async def latest(self) -> AnchoredCheckpoint | None:
        sizes = await self.sizes()
        return await self.anchors_for(sizes[-1]) if sizes else None

    def _richest(self, min_size: int) -> tuple[int, int] | None:
        return richest(min_size, self._sizes, self._kinds)

    def snapshot(self) -> tuple[list[int], dict[str, list[int]]]:
        """The cached anchored sizes, and the sizes anchored by each kind (``richest``'s input)."""
        return self._sizes, self._kinds

    async def refresh_if_stale(self) -> bool:
        """Re-list the anchored sizes when the cache is older than ``refresh_s``; whether it did."""
        if not self._stale():
            return False
        await self._relist()
        return True

    async def best_for(self, index: int) -> tuple[str, list[dict[str, Any]]] | None:
        """For the verify service's receipt upgrade: the anchored checkpoint holding entry
        ``index`` with the most anchor kinds, the earliest of those, as (signed note, anchor
        records); None while there is none. The entry's earliest anchored checkpoint when it
        carries every kind; else a later one that also carries the kinds it lacks (an EVM anchor
        busy with its confirmations, or down, when that earliest checkpoint was anchored)."""
        min_size = index + 1
        best = self._richest(min_size)
        if (best is None or best[1] < len(self._kinds)) and self._stale():
            await self._relist()
            best = self._richest(min_size)
        found = None if best is None else await self.anchors_for(best[0])
        return None if found is None else (found.note, list(found.records))


def richest(min_size: int, noted: list[int], kinds: Mapping[str, list[int]]) -> tuple[int, int] | None:
    """(size, number of kinds) of the checkpoint of size ``>= min_size`` among ``noted`` (sizes
    whose note is stored, ascending) held by the most ``kinds`` (kind -> ascending sizes), the
    earliest of those; None when there is none.

    The candidates are the earliest noted size and, per kind, the earliest size that kind holds:
    kinds join shared round targets, so the first checkpoint a kind holds after skipping some
    carries the other kinds too."""
    pos = bisect.bisect_left(noted, min_size)
    candidates = set(noted[pos : pos + 1])
    for sizes in kinds.values():
        at = bisect.bisect_left(sizes, min_size)
        if at < len(sizes) and _holds(noted, sizes[at]):  # with its checkpoint note
            candidates.add(sizes[at])
    ranked = [(sum(_holds(v, c) for v in kinds.values()), -c) for c in candidates]
    if not ranked:
        return None
    count, size = max(ranked)
    return -size, count


def _holds(sorted_sizes: list[int], size: int) -> bool:
    at = bisect.bisect_left(sorted_sizes, size)
    return at < len(sorted_sizes) and sorted_sizes[at] == size
