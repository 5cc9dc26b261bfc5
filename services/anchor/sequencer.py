"""The sequencer: one writer per log, turning batches of digests into signed, published tree heads.

Per batch: draw the salts and a random permutation in one CSPRNG call → make the v2 entries (SPEC
§1: each a commitment to digest, salt and tenant) and place them at random indices, so that one
request's entries are no contiguous run → write the entries in index order, and the tenant index,
to RocksDB atomically with fsync → append them to the tile builder → sign the checkpoint (log key
and clock cosignature) → answer every waiting caller with its index, salt, inclusion proof and
checkpoint, in the caller's own order. Publication of tiles and checkpoint follows in order in the
background (`publication`): acknowledged entries are durable in RocksDB, and a restart
re-integrates whatever was not yet published (`recovery`).

Batches are group commits (`intake`): the next is cut as soon as the sequencer is free to prepare
it, and prepared (`batch.Preparer`, in a worker thread, or on the event loop when small:
`INLINE_MAX`) while the one before is written; writes and integrations (`integration.Tree`) stay
strictly in index order, and an entry is acknowledged only once its batch is fsynced and in a
signed checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from merkle.digests import ENTRY_SCITT, ENTRY_SIZE, Digest
from merkle.keyhistory import KeyHistory
from services.anchor import state
from services.anchor.batch import Batch, Flight, Group, Preparer, Retryable, fail_groups
from services.anchor.batch_times import find
from services.anchor.head import Head
from services.anchor.intake import Intake
from services.anchor.integration import Tree
from services.anchor.keys import LogKeys
from services.anchor.lease import LeaseKeeper
from services.anchor.logformat import check_log_format
from services.anchor.publication import Publication
from services.anchor.publisher import Publisher
from services.anchor.recovery import recover
from services.anchor.repeats import RepeatCap
from services.anchor.sequenced import SequencerConfig, SequencerSealed, SequencerStopped, Stats
from services.anchor.signing_time import SigningTime, recorded_floor
from services.anchor.tenant_index import TenantIndex
from services.common.telemetry import SequencerTelemetry
from services.model import Found, SequencedGroup, check_tenant
from storage.base import Index, ObjectStore
from storage.errors import NotarError, PushbackError, StorageError

log = logging.getLogger("notar.anchor")
T = TypeVar("T")

__all__ = [
    "Sequencer",
    "SequencerConfig",
    "SequencerStopped",
    "Stats",
]


INLINE_MAX = 128
"""The largest batch prepared and integrated on the event loop rather than in a worker thread.
A small batch's CPU work (~2 µs per entry to prepare, ~5 to integrate and the checkpoint's two
signatures: under a millisecond at this size) costs less than its hop to a thread and back: the
executor's wake-up and then, while the loop is busy, up to a GIL switch interval (5 ms) before
the thread may run. Measured against always hopping, single-digest requests: 0.98–1.12× the
requests/s at 128 connections (batches of ~33; three runs), 1.13× at 10 with p50 ~1 ms lower
(BENCHMARKS.md, "Small batches on the event loop"). Larger batches keep the loop free."""


async def _cpu(n: int, work: Callable[..., T], *args: object) -> T:
    """`work(*args)`, the CPU-only step of a batch of `n` entries: at once on the event loop for a
    small batch (`INLINE_MAX`), else in a worker thread."""
    if n <= INLINE_MAX:
        return work(*args)
    return await asyncio.to_thread(work, *args)


_NONE = SequencedGroup(indices=[], entries=[], salts=b"", tree_size=0, checkpoint="", proofs=[], nodes=[])
"""The result of submitting nothing."""


class Sequencer:
    def __init__(
        self,
        *,
        store: ObjectStore,
        index: Index,
        keys: LogKeys,
        config: SequencerConfig,
        tenant_index: TenantIndex,
        clock: Callable[[], float] = time.time,
        urandom: Callable[[int], bytes] = os.urandom,
        telemetry: SequencerTelemetry | None = None,
        history: KeyHistory | None = None,
    ) -> None:
        self._store, self._index, self._keys, self._cfg = store, index, keys, config
        self._history = history
        self._rows = tenant_index
        self._repeats = RepeatCap(index=index, tenant_index=tenant_index, cap=config.repeats_max)
        self._time = SigningTime(clock)
        self._preparer = Preparer(tenant_index, self._repeats, urandom, self._time)
        self._telemetry = telemetry or SequencerTelemetry()
        self._publisher = Publisher(store, prefix=config.prefix, clock=clock)
        self._intake = Intake(config)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._failed: BaseException | None = None
        self._holder = ""
        self._lease: LeaseKeeper | None = None
        self._sealed: str | None = None  # why no more entries are taken (a freezing shard: `seal`)
        self._unfinished = 0  # batches taken from the queue whose callers are not answered yet
        self._size = 0
        self._head = Head(index)
        self._tree = Tree(config.origin, keys)
        self._last_note = ""
        self.stats = Stats()
        self._publication = Publication(
            self._publisher, index, self._telemetry, self.stats,
            backlog=config.publish_backlog, on_conflict=self._fail,
        )

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Take the lease, refuse a log of another format (`logformat`), reconcile with the
        published log, publish what was missing, run."""
        holder = await self._index.get(state.HOLDER)
        if holder is None:
            holder = uuid.uuid4().hex.encode()
            await self._index.write_batch({state.HOLDER: holder}, sync=True)
        self._holder = holder.decode()
        self._lease = LeaseKeeper(self._publisher, self._holder, self._cfg.lease_ttl_s, on_lost=self._fail)
        await self._lease.acquire()
        try:
            await self._reconcile()
        except BaseException:
            await self._publisher.release_lease(self._holder)  # the next start need not wait for it
            raise
        self.stats.signed_size = self._size
        self._tasks = [
            asyncio.create_task(self._batch_loop(), name="notar-sequencer"),
            asyncio.create_task(self._publication.run(), name="notar-publisher"),
            asyncio.create_task(self._lease.run(), name="notar-lease"),
        ]

    async def _reconcile(self) -> None:
        """Refuse a log of another format, reconcile RocksDB with the published log, publish what
        was missing."""
        await check_log_format(self._store, self._index, prefix=self._cfg.prefix)
        rec = await recover(self._store, self._index, origin=self._cfg.origin, prefix=self._cfg.prefix)
        self._size = rec.size
        self._tree = Tree(self._cfg.origin, self._keys, rec.tiles, rec.bundles)
        self._head = Head(self._index, await self._index.get(state.HEAD))
        self._publication.unpublished = list(rec.batches)
        self._publisher.adopt_checkpoint_version(rec.checkpoint_version)
        self.stats.published_size = rec.published_size
        clock_key = self._keys.clock.verifier()
        self._time.commit(await recorded_floor(self._index, self._store, self._cfg.prefix, clock_key))
        if rec.must_sign(self._keys.log.verifier(), self._history):
            t = self._time.next()
            await self._index.write_batch({state.SIGNED_TIME: state.u64(t)}, sync=True)
            self._time.commit(t)
            note = self._tree.sign(self._size, t)
            await self._publisher.put_tiles(rec.republish)
            await self._publisher.put_checkpoint(note)
            await self._publication.published(self._size, note)
            log.info(
                "recovered log %s at size %d (published was %d)",
                self._cfg.origin,
                rec.size,
                rec.published_size,
            )

    async def close(self) -> None:
        """Stop accepting, sequence and publish everything queued, release the lease."""
        self._closing = True
        self._intake.close()
        if self._tasks:
            batcher, publisher, lease = self._tasks
            with contextlib.suppress(Exception):
                await batcher
            if self._failed is None:  # publish what is queued, unless the publisher died
                joined = asyncio.ensure_future(self._publication.drained())
                await asyncio.wait([joined, publisher], timeout=60, return_when=asyncio.FIRST_COMPLETED)
                joined.cancel()
            for t in (publisher, lease):
                t.cancel()
            await asyncio.gather(publisher, lease, return_exceptions=True)
            if self._failed is None:
                done = self.stats.published_size == self._size
                await self._publisher.release_lease(self._holder, published=self._size if done else None)
            self._tasks = []

    @property
    def origin(self) -> str:
        return self._cfg.origin

    @property
    def size(self) -> int:
        return self._size

    @property
    def queued(self) -> int:
        return self._intake.queued

    @property
    def spare(self) -> int:
        """Entries it would queue now before refusing for a full queue (the shards' load signal:
        services.ingest.spread); none once sealed (a freezing shard)."""
        return 0 if self._sealed is not None else max(self._cfg.queue_max - self._intake.queued, 0)

    @property
    def failed(self) -> BaseException | None:
        return self._failed

    @property
    def stopped(self) -> str | None:
        """Why the sequencer stopped for good, or None while it runs (or shuts down). Only a
        restart brings it back: it lost the log to another anchor, found RocksDB's head moved
        (both in `failed`), or one of its tasks ended. A store outage or a full disk is not this:
        entries are refused meanwhile (`refusing`, `unwritable`) and it resumes by itself."""
        if self._failed is not None:
            return str(self._failed) or type(self._failed).__name__
        if self._closing:
            return None
        for task in self._tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                return f"its task {task.get_name()} ended" + ("" if error is None else f": {error!r}")
        return None

    @property
    def lease(self) -> LeaseKeeper | None:
        """The keeper of this anchor's lease on the log, once `start` took it."""
        return self._lease

    @property
    def clock_behind_s(self) -> int:
        """How far the wall clock was behind the last cosigned time at the latest signature."""
        return self._time.behind_s

    # -- API ---------------------------------------------------------------------------------
    def refusal(self, count: int = 1) -> NotarError | None:
        """The error `submit` of `count` entries would raise before queuing them, or None. A front
        end asks with count 1 before it reads a request's body: under overload it refuses in
        microseconds what it would otherwise read, parse and refuse anyway."""
        if self._failed is not None:
            return SequencerStopped(f"the sequencer of {self._cfg.origin} stopped: {self._failed}")
        if self._closing:
            return SequencerStopped(f"the sequencer of {self._cfg.origin} is shutting down")
        if self._sealed is not None:
            return SequencerSealed(self._sealed)
        refused = self._refusal()
        if refused is not None:
            return refused
        queued = self._intake.queued
        if queued + count > self._cfg.queue_max:
            backlog_s = self._cfg.batch_ms / 1000 * (1 + queued / self._cfg.batch_max)
            return PushbackError(
                f"the sequencer has {queued} entries queued (limit {self._cfg.queue_max})",
                retry_after=max(1.0, round(backlog_s, 1)),
            )
        return None

    async def submit(
        self, tenant: str, digests: Sequence[Digest], *, compact: bool = False
    ) -> SequencedGroup:
        """Notarize `digests` as `tenant` (the entries' subject); returns once they are durable and
        in a signed checkpoint, their result in order: with `compact`, made with the nodes of
        their compact part (merkle.compact) instead of a proof per entry (either can be asked of
        it). ValueError for a tenant name that is not one (`check_tenant`)."""
        check_tenant(tenant)
        if not digests and self._failed is None and not self._closing:
            return _NONE
        refused = self.refusal(len(digests))
        if refused is not None:
            raise refused
        future: asyncio.Future[SequencedGroup] = asyncio.get_running_loop().create_future()
        self._intake.put(Group(tenant, digests, future, time.monotonic(), compact=compact))
        return await asyncio.shield(future)

    async def submit_entries(self, entries: Sequence[bytes]) -> SequencedGroup:
        """Sequence pre-made entries as they are (SCITT statements: type 0x03, 33 bytes): no salt
        (the result's `salts` are empty), no tenant row; each one's index is written under
        `state.entry_key` in its batch's durable write. Returns as `submit` does. ValueError for
        an entry of another shape."""
        for entry in entries:
            if len(entry) != ENTRY_SIZE or entry[0] != ENTRY_SCITT:
                raise ValueError(f"a pre-made entry is 33 bytes of type 0x03, not {bytes(entry[:1]).hex()!r}")
        if not entries and self._failed is None and not self._closing:
            return _NONE
        refused = self.refusal(len(entries))
        if refused is not None:
            raise refused
        future: asyncio.Future[SequencedGroup] = asyncio.get_running_loop().create_future()
        self._intake.put(Group("", (), future, time.monotonic(), made=entries))
        return await asyncio.shield(future)

    async def entry_index(self, entry: bytes) -> int | None:
        """The index of a pre-made entry (the first, when it was sequenced twice), or None."""
        found = await self._index.get(state.entry_key(entry))
        return None if found is None else int.from_bytes(found, "big")

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]:
        """Where `tenant` notarized `digest`, earliest first (`Lookup`, batch_times.find)."""
        return await find(self._index, self._rows, tenant, digest, limit=limit, after=after)

    async def seal(self, reason: str, *, poll_s: float = 0.05) -> int:
        """Take no more entries (`refusal` says `reason`, readiness is unchanged: look-ups go on),
        sequence and publish every one queued; the final tree size, once its checkpoint is the
        published one. SequencerStopped when the sequencer stopped meanwhile (a freezing shard's
        anchor: services.anchor.freeze)."""
        self._sealed = reason
        while self._intake or self._unfinished or self.stats.published_size != self._size:
            if self._failed is not None or self._closing:
                raise SequencerStopped(f"the sequencer of {self._cfg.origin} stopped before it was sealed")
            await asyncio.sleep(poll_s)
        return self._size

    # -- batching ----------------------------------------------------------------------------
    # Group commit (`intake`), two batches deep: batch N+1 is prepared (CSPRNG draw,
    # entries, rows, bundle: `Preparer`, `_cpu`) while batch N's fsynced write runs;
    # the writes (compare-and-swap of the head) and the integrations (tiles, signature, proofs)
    # go strictly in order, each batch in its own `Flight`.
    async def _batch_loop(self) -> None:
        ahead: Flight | None = None  # the last batch launched: being written or integrated
        while True:
            groups = await self._cut()
            if groups is None:
                break
            self._unfinished += 1
            try:
                flight = await self._launch(groups, ahead)
            except BaseException as e:
                self._unfinished -= 1
                fail_groups(groups, e)
                if isinstance(e, Retryable):
                    continue
                if self._failed is None:
                    self._fail(e)
                break
            if flight is None:  # every request was refused (REPEATS_MAX)
                self._unfinished -= 1
                continue
            ahead = flight
        if ahead is not None and ahead.task is not None:
            await asyncio.wait([ahead.task])  # each flight waits for the one before: all are done

    async def _cut(self) -> list[Group] | None:
        """The next batch's groups (`Intake.cut`) that may be sequenced now; None when the loop
        must end."""
        while True:
            groups = await self._intake.cut()
            refused = self._refusal()
            if groups is None or refused is None:
                return groups
            fail_groups(groups, refused)  # nothing of these was written: the callers may retry

    async def _launch(self, groups: list[Group], ahead: Flight | None) -> Flight | None:
        """Prepare the batch of `groups` to follow `ahead` (while `ahead` is being written), admit
        it under REPEATS_MAX, and start its flight once `ahead` is durable; None when no request
        was admitted.

        The batch is made as if the repeats cap admitted every request, in one step with what the
        cap reads: each digest's tenant-index name is computed once, for both, and the batch waits
        for one worker thread, not two. It is made again (its CSPRNG draw discarded, nothing of
        it was used) when the cap refused a request, or when `ahead`'s write failed: its indices
        followed `ahead`'s, and its counts counted `ahead`'s entries."""
        first = self._size if ahead is None else ahead.batch.end
        n = sum(g.size for g in groups)
        batch, tally = await _cpu(n, self._preparer.prepare_all, groups, first, self._last_note)
        counts: dict[bytes, bytes] | None = None
        if ahead is not None:
            with contextlib.suppress(StorageError):  # then `admit` reads again, below
                counts = await self._repeats.admit_whole(tally, ahead.counts)
            if not await asyncio.shield(ahead.written):
                counts = None
            if self._failed is not None:  # nothing more is written once the log stopped
                raise SequencerStopped(f"the sequencer of {self._cfg.origin} stopped: {self._failed}")
        if counts is None or batch.first != self._size:
            try:  # the requests that would pass REPEATS_MAX are refused (services.anchor.repeats)
                admitted, counts = await self._repeats.admit(groups, tally)
            except StorageError as e:
                raise Retryable(f"the repeat counts could not be read from RocksDB, retry: {e}") from e
            if not admitted:
                return None
            if len(admitted) < len(groups) or batch.first != self._size:
                groups = admitted
                n = sum(g.size for g in groups)
                batch, _ = await _cpu(n, self._preparer.prepare_all, groups, self._size, self._last_note)
        batch.puts.update(counts)
        flight = Flight(batch, groups, counts, asyncio.get_running_loop().create_future())
        flight.task = asyncio.create_task(self._fly(flight, ahead), name="notar-sequencer-batch")
        return flight

    async def _fly(self, flight: Flight, before: Flight | None) -> None:
        """Write a batch launched once the batch `before` was durable, then, once `before` is
        integrated, integrate it and answer its callers."""
        batch, groups = flight.batch, flight.groups
        try:
            with self._telemetry.batch(groups):
                try:
                    await self._head.advance(state.u64(batch.end), batch.puts)
                except BaseException:
                    flight.written.set_result(False)
                    raise
                self._time.commit(batch.timestamp)
                self._size = batch.end
                self._publication.unpublished.append((batch.first, len(batch.placed)))
                flight.written.set_result(True)
                if before is not None and before.task is not None:
                    await asyncio.wait([before.task])
                if self._failed is not None:  # durable, not signed: recovery integrates it
                    raise SequencerStopped(f"the sequencer stopped: {self._failed}")
                await self._answer(batch, groups)
        except BaseException as e:
            fail_groups(groups, e)
            if not isinstance(e, Retryable) and self._failed is None:
                self._fail(e)
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            self._unfinished -= 1

    async def _answer(self, batch: Batch, groups: list[Group]) -> None:
        """Integrate a durable batch, answer its callers, queue its publication."""
        changed, note, results = await _cpu(len(batch.placed), self._tree.integrate, batch, groups)
        self._last_note = note
        now = time.monotonic()
        for g, result in zip(groups, results, strict=True):
            if not g.future.done():
                g.future.set_result(result)
            self.stats.latencies.append(now - g.arrived)
        n = len(batch.placed)
        self.stats.sequenced += n
        self.stats.batches += 1
        self.stats.last_batch = n
        self.stats.signed_size = batch.end
        await self._publication.queue(changed, note, batch.end)

    def _fail(self, error: BaseException) -> None:
        log.critical("sequencer of %s stopped: %s", self._cfg.origin, error)
        self._failed = error
        self._intake.stop(SequencerStopped(f"the sequencer stopped: {error}"))

    def _refusal(self) -> PushbackError | None:
        """Why no entry can be acknowledged for now, as the error callers get (503 with
        Retry-After), or None. Nothing is queued behind either condition, so no caller waits on
        an object store that is away: the lease is lapsed (the store did not answer its renewals
        in time), or publication is a whole backlog of batches behind."""
        lapsed = self._lease.lapsed_s if self._lease is not None else None
        if lapsed is not None:
            return PushbackError(
                f"the log's lease in the object store is {lapsed:.0f} s overdue for renewal "
                "(is the store reachable?): no entries are acknowledged until it is renewed",
                retry_after=5,
            )
        behind = self._publication.behind
        if behind is not None:
            return PushbackError(
                f"publication to the object store is {behind} batches behind",
                retry_after=2,
            )
        return None

    @property
    def refusing(self) -> str | None:
        """Why new entries are refused for now (for readiness), or None."""
        refused = self._refusal()
        return None if refused is None else refused.message

    async def unwritable(self) -> str | None:
        """Why the last batch could not be written to RocksDB (a full disk...), or None once a
        write works again (`Head.unwritable`)."""
        return await self._head.unwritable(self._holder)
