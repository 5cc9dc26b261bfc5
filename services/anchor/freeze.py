"""Freezing a shard (SPEC §10, docs/shards.md): no more entries, a final checkpoint published and
anchored, the tenant index moved to the object store (frozen_index.py), the shard `frozen` in the
table for good. As CT logs shard by time: freeze the old shard once new ones take the writes.

`notar shard freeze I` only sets `freezing` in the shard table (`request_freeze`). The anchor that
owns shard I sees it (`Freezer.run`, its task) and takes the steps, each a function here, each
safe to take again after a crash (a restarted anchor finds its shard `freezing` and resumes):

1. `Eraser.tombstone_too`: from now on an erasure also writes the frozen index's tombstone, so an
   erasure that lands while the index is exported is not lost with the export;
2. `Sequencer.seal`: no more entries (ingest sends them to the other shards), every queued one
   sequenced and published: the published checkpoint is the final one (`final_checkpoint`);
3. `wait_anchored`: until every anchor kind (ANCHORS) stored a record of that checkpoint;
4. `frozen_index.export`: every row of RocksDB's tenant index to the store, then its manifest;
   then `frozen_scitt.export`: its SCITT entries and their receipts likewise (a lost receipt made
   again first), so that SCITT look-ups find them once the RocksDB is gone;
5. `tombstone_erasures`: a tombstone for every name of the erasure journal still in the files
   (rows erased between the export's read and step 1 of a restarted freeze);
6. `mark_frozen`: the table says `frozen`; then the anchor's `on_frozen` hook
   (services.anchor.frozen_shards `drop_when_frozen`) sends the shard's look-ups and erasures to
   the `FrozenIndex`, closes its RocksDB and deletes it (`drop_local_index`): its disk then holds
   only the shard it takes next;
7. `drop_backups`: the backups of the shard's RocksDB are deleted: the frozen index is the copy
   now, and a backup would keep rows that erasures in the frozen index remove.

The same task, in the anchor of the lowest active shard id, compacts the tombstones of every frozen
shard of the table every `compact_s` (`frozen_index.compact`): the bound on how long an erased
row's bytes stay in the store (a second compactor would only lose the manifest's conditional write).

For the anchor's metrics (services.anchor.metrics) each task keeps the table as it last read it
(`Freezer.table`) and its `Compactions`: passes that failed, when the last one succeeded, and
(while it is the compactor) the tombstones each frozen shard holds, counted every `COUNT_S`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.anchor import frozen_scitt
from services.anchor.chains import Target
from services.anchor.erasure import Eraser
from services.anchor.frozen_index import FrozenIndex, FrozenManifest, compact, export, tombstoned
from services.anchor.sequencer import Sequencer
from services.anchor.tenant_index import TenantIndex
from services.published import layout
from services.published.anchors import AnchorStore
from services.published.shards import Shard, load_table, update_table, with_state
from storage.base import Index, ObjectStore
from storage.errors import ConflictError, NotarError, StorageError

log = logging.getLogger("notar.anchor")
POLL_S = 5.0  # how often the table (and the anchor records) are read
COMPACT_S = 86_400.0  # FROZEN_COMPACT_S: how often frozen indexes drop their erased rows
COUNT_S = 300.0  # how often the compactor counts the tombstones waiting (one LIST per frozen shard)


def freezing(shards: Sequence[Shard], shard: int) -> tuple[Shard, ...]:
    """The table with `shard` freezing; ValueError (the reason, for people) when there is no such
    shard, it is frozen already, or it is the last active one (nothing could be notarized)."""
    found = next((s for s in shards if s.id == shard), None)
    if found is None:
        known = ", ".join(str(s.id) for s in shards) or "none: the table is empty"
        raise ValueError(f"there is no shard {shard} in the shard table (shards: {known})")
    if found.state == "frozen":
        raise ValueError(f"shard {shard} is frozen already")
    if found.writable and not any(s.writable for s in shards if s.id != shard):
        raise ValueError(
            f"shard {shard} is the only active shard: freezing it would stop every notarization; "
            "add a shard first (SHARDS, or one more anchor replica)"
        )
    return with_state(tuple(shards), shard, "freezing")


async def request_freeze(store: ObjectStore, shard: int) -> Shard:
    """Set `shard` freezing in the table (`notar shard freeze`); the shard as written. ValueError
    as `freezing` says."""
    table = await update_table(store, lambda shards: freezing(shards, shard))
    return next(s for s in table if s.id == shard)


async def final_checkpoint(store: ObjectStore, prefix: str, size: int) -> str:
    """The published checkpoint of the sealed log under `prefix`; NotarError when it is not of
    the final `size` (someone else publishes there?)."""
    try:
        note = (await store.get(layout.checkpoint_key(prefix))).decode("utf-8")
        published = Target.from_note(note).size
    except (UnicodeDecodeError, ValueError) as e:
        raise NotarError(f"{layout.checkpoint_key(prefix)} is not a checkpoint: {e}") from e
    if published != size:
        raise NotarError(f"the published checkpoint has size {published}, the sealed log {size}")
    return note


async def wait_anchored(
    store: ObjectStore, prefix: str, size: int, kinds: Sequence[str], *, poll_s: float = POLL_S
) -> None:
    """Return once every kind of `kinds` stored a record of the checkpoint of `size` (at once for
    an empty log: there is nothing to anchor)."""
    anchors = AnchorStore(store, prefix=prefix)
    while size and kinds:
        missing = [k for k in kinds if not await anchors.has(size, k)]
        if not missing:
            return
        log.info(
            "freezing %s: waiting for the anchors of tree size %d (%s)", prefix, size, ", ".join(missing)
        )
        await asyncio.sleep(poll_s)


async def tombstone_erasures(store: ObjectStore, prefix: str, frozen: FrozenIndex) -> int:
    """A tombstone for every name of the erasure journal whose rows are in the frozen files; how
    many were written."""
    written = 0
    async for key in store.list(layout.erasures(prefix)):
        name = key.rsplit("/", 1)[1]
        try:
            holds = await frozen.holds(bytes.fromhex(name))
        except ValueError:
            continue
        if holds:
            await store.put_if_absent(layout.frozen_tombstone_key(name, prefix), b"")
            written += 1
    return written


async def mark_frozen(store: ObjectStore, shard: int) -> None:
    await update_table(store, lambda shards: with_state(shards, shard, "frozen"))


async def drop_backups(store: ObjectStore, prefix: str) -> int:
    """Delete every object of the backups of the log under `prefix`; how many."""
    doomed = [key async for key in store.list(layout.backups(prefix))]
    for key in sorted(doomed, key=lambda k: not k.endswith(layout.BACKUP_MANIFEST)):  # manifests first
        await store.delete(key)
    return len(doomed)


def drop_local_index(path: Path) -> None:
    """Delete a frozen shard's RocksDB directory (closed first) once the table says frozen."""
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class ShardAnchor:
    """What freezing takes from the anchor of the shard: its store, sequencer, RocksDB index and
    eraser, the tenant index's rows, the anchor kinds (ANCHORS) its final checkpoint awaits, and
    how a SCITT receipt lost from RocksDB is made again (`Registrar.remake`)."""

    store: ObjectStore
    sequencer: Sequencer
    index: Index
    eraser: Eraser
    tenant_index: TenantIndex
    kinds: Sequence[str]
    remake: frozen_scitt.Remake


async def freeze(shard: Shard, anchor: ShardAnchor, *, poll_s: float = POLL_S) -> FrozenManifest:
    """Steps 1-7 of the module doc for the `freezing` shard `shard`, owned by `anchor`."""
    store = anchor.store
    anchor.eraser.tombstone_too(store)
    size = await anchor.sequencer.seal(
        f"shard {shard.id} ({shard.origin}) is freezing: it takes no more entries"
    )
    note = await final_checkpoint(store, shard.prefix, size)
    await wait_anchored(store, shard.prefix, size, anchor.kinds, poll_s=poll_s)
    manifest = await export(
        anchor.index, store, prefix=shard.prefix, origin=shard.origin, checkpoint=note, size=size
    )
    scitt = await frozen_scitt.export(
        anchor.index, store, anchor.remake, prefix=shard.prefix, origin=shard.origin, size=size
    )
    frozen = FrozenIndex(store, tenant_index=anchor.tenant_index, prefix=shard.prefix)
    erased = await tombstone_erasures(store, shard.prefix, frozen)
    await mark_frozen(store, shard.id)
    await drop_backups(store, shard.prefix)
    log.warning(
        "shard %d (%s) is frozen at tree size %d: %d tenant-index rows and %d SCITT "
        "registrations in the store, %d erased",
        shard.id,
        shard.origin,
        size,
        manifest.rows,
        scitt.rows,
        erased,
    )
    return manifest


@dataclass
class Compactions:
    """One freezer's compactions of the frozen shards' tombstones, as its metrics read them."""

    interval_s: float
    failures: int = 0  # passes that failed (each is tried again `poll_s` later)
    last_success: float | None = None  # Unix time of the last pass that completed
    compacting: bool = False  # this freezer is the deployment's compactor (lowest active shard)
    pending: dict[int, tuple[Shard, int]] = field(default_factory=dict)  # id -> (shard, tombstones)


class Freezer:
    """The anchor's task for freezing (its own shard, when the table says so) and for compacting
    the frozen shards' erasures; `run` is the hook in the anchor's start-up. The tasks of `stop`
    (the backups of the shard's RocksDB) are cancelled when the shard starts freezing."""

    def __init__(
        self,
        shard_id: int,
        anchor: ShardAnchor,
        *,
        on_frozen: Callable[[FrozenManifest], Awaitable[None]] | None = None,
        stop: Sequence[asyncio.Task[None]] = (),
        poll_s: float = POLL_S,
        compact_s: float = COMPACT_S,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._shard_id, self._anchor, self._store = shard_id, anchor, anchor.store
        self._on_frozen, self._stop = on_frozen, stop
        self._poll_s, self._compact_s = poll_s, compact_s
        self._clock, self._wall = clock or asyncio.get_running_loop().time, wall
        self._compacted_at: float | None = None
        self._counted_at: float | None = None
        self.frozen: FrozenManifest | None = None
        self.table: tuple[Shard, ...] = ()  # as last read
        self.compactions = Compactions(compact_s)

    async def step(self) -> None:
        """Read the table once: freeze this anchor's shard if it is freezing (take no entries if it
        is frozen: an anchor restarted on a frozen shard); compact the frozen shards' tombstones
        when a compaction is due."""
        table = self.table = tuple(await load_table(self._store))
        mine = next((s for s in table if s.id == self._shard_id), None)
        if mine is not None and mine.state != "active" and self.frozen is None:
            for task in self._stop:  # the backups: they would copy rows the frozen index may erase
                task.cancel()
            if mine.state == "freezing":
                self.frozen = await freeze(mine, self._anchor, poll_s=self._poll_s)
                if self._on_frozen is not None:
                    await self._on_frozen(self.frozen)
            else:
                await self._anchor.sequencer.seal(
                    f"shard {mine.id} ({mine.origin}) is frozen: it takes no entries"
                )
        now, active = self._clock(), [s.id for s in table if s.state == "active"]
        stats, frozen = self.compactions, [s for s in table if s.state == "frozen"]
        stats.compacting = bool(active) and min(active) == self._shard_id  # one compactor a deployment
        if not stats.compacting:
            stats.pending = {}
            return
        if self._counted_at is None or now - self._counted_at >= COUNT_S:
            stats.pending = {s.id: (s, len(await tombstoned(self._store, s.prefix))) for s in frozen}
            self._counted_at = now
        if self._compacted_at is None or now - self._compacted_at >= self._compact_s:
            try:
                for s in frozen:
                    await compact(self._store, prefix=s.prefix)
            except (StorageError, ConflictError, NotarError):
                stats.failures += 1
                raise
            self._compacted_at, self._counted_at, stats.last_success = now, None, self._wall()

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except (StorageError, ConflictError, NotarError) as e:
                log.warning(
                    "freezing or compacting frozen shards failed, again in %.0f s: %s", self._poll_s, e
                )
            await asyncio.sleep(self._poll_s)
