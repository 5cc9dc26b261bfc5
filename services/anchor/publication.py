"""A sequencer's publication: the tiles and checkpoint of each signed batch, written to the object
store in the background, in order, one round at a time (a round takes every batch queued while
the last one ran). It keeps the batches RocksDB holds until they are published (recovery re-reads
them), and its backlog: the sequencer refuses entries once it is full (`behind`), and the GIL's
switch interval follows it (`switching.Backlog`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry.trace import SpanContext

from merkle.tiles import Tile
from services.anchor import state
from services.anchor.publisher import Publisher
from services.anchor.sequenced import Stats
from services.anchor.switching import Backlog
from services.common.telemetry import SequencerTelemetry, current_span_context
from storage.base import Index
from storage.errors import ConflictError, StorageError


@dataclass
class _Job:
    tiles: list[Tile]
    note: str
    size: int
    span: SpanContext = field(default_factory=current_span_context)  # its batch's, for the publish span


class Publication:
    """The publication of one sequencer's log; `run` is its task. `unpublished`: the first index
    and size of each durable batch not yet published, which the sequencer adds to."""

    def __init__(
        self,
        publisher: Publisher,
        index: Index,
        telemetry: SequencerTelemetry,
        stats: Stats,
        *,
        backlog: int,
        on_conflict: Callable[[BaseException], None],
    ) -> None:
        self._publisher, self._index, self._telemetry, self._stats = publisher, index, telemetry, stats
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue(maxsize=backlog)
        self._backlog = Backlog(backlog)  # the GIL's switch interval follows it
        self._on_conflict = on_conflict
        self.unpublished: list[tuple[int, int]] = []

    @property
    def behind(self) -> int | None:
        """The batches waiting when the backlog is full (no entry may be acknowledged), else None."""
        return self._jobs.qsize() if self._jobs.full() else None

    async def queue(self, tiles: list[Tile], note: str, size: int) -> None:
        """Queue a signed batch's changed `tiles` and its checkpoint `note` of tree `size`."""
        await self._jobs.put(_Job(tiles, note, size))
        self._backlog.update(self._jobs.qsize())

    async def drained(self) -> None:
        """Once every batch queued is published (or its round given up)."""
        await self._jobs.join()

    async def run(self) -> None:
        """Publish until cancelled, or until another writer's objects stop the log (`on_conflict`)."""
        try:
            while True:
                jobs = [await self._jobs.get()]
                while not self._jobs.empty():
                    jobs.append(self._jobs.get_nowait())
                if not await self._round(jobs):
                    return
        finally:
            self._backlog.close()  # behind no more: stopped

    async def _round(self, jobs: list[_Job]) -> bool:
        """The tiles of `jobs`, then the last one's checkpoint; False when the log stopped."""
        self._backlog.update(0, len(jobs))
        span = self._telemetry.publishing([j.span for j in jobs], jobs[-1].size)
        try:
            await self._publisher.put_tiles([t for j in jobs for t in j.tiles])
            await self._publisher.put_checkpoint(jobs[-1].note)
            await self.published(jobs[-1].size, jobs[-1].note)
        except ConflictError as e:
            self._on_conflict(e)
            return False
        finally:
            span.end()
            for _ in jobs:
                self._jobs.task_done()
            self._backlog.update(self._jobs.qsize(), 0)
        return True

    async def published(self, size: int, note: str) -> None:
        """Drop the published batches; keep the published note, which recovery checks the store
        against (any note this anchor signed will do: a lost write leaves an earlier one)."""
        self._stats.published_size = size
        done = [b for b in self.unpublished if b[0] + b[1] <= size]
        self.unpublished = [b for b in self.unpublished if b[0] + b[1] > size]
        with contextlib.suppress(StorageError):  # kept batches are only re-read at start-up
            await self._index.write_batch(
                {state.CHECKPOINT: note.encode()}, [state.batch_key(f) for f, _ in done], sync=False
            )
