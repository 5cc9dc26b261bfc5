"""The sequencer's queue of waiting requests, and when the next batch is cut from it.

Group commit: the sequencer asks for a batch (`Intake.cut`) as soon as it is free to prepare one,
and gets at once what is queued, up to BATCH_MAX entries: a lone entry waits for no timer, and
under load what arrives while a batch is prepared and written goes into the next one, so that
batches grow with the load. BATCH_MIN_MS (0 by default) holds a batch that long after its first
entry when asked (fewer, larger batches, or a queue kept full in tests), never longer than
BATCH_MS; a full batch is cut at once either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from services.anchor.batch import Group
from services.common.components import SequencerConfig
from storage.errors import NotarError


class Intake:
    """The requests waiting for a batch, in arrival order, and their entry count (`queued`)."""

    def __init__(self, config: SequencerConfig) -> None:
        self._max = config.batch_max
        self._hold_s = min(config.batch_min_ms, config.batch_ms) / 1000
        self._pending: deque[Group] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._stopped = False
        self.queued = 0

    def __bool__(self) -> bool:
        return bool(self._pending)

    def put(self, group: Group) -> None:
        self._pending.append(group)
        self.queued += group.size
        self._wake.set()

    def close(self) -> None:
        """Take no more waiting: `cut` hands out what is queued at once, then None."""
        self._closing = True
        self._wake.set()

    def stop(self, error: NotarError) -> None:
        """Give `error` to every waiting request; `cut` returns None from now on."""
        self._stopped = True
        while self._pending:
            g = self._pending.popleft()
            if not g.future.done():
                g.future.set_exception(error)
        self.queued = 0
        self._wake.set()

    async def cut(self) -> list[Group] | None:
        """The next batch's requests (module doc); None once stopped, or closing with nothing
        queued."""
        while True:
            if self._stopped:
                return None
            if not self._pending:
                if self._closing:
                    return None
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._pending[0].arrived + self._hold_s - time.monotonic()
            if self.queued < self._max and wait > 0 and not self._closing:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            return self._take()

    def _take(self) -> list[Group]:
        groups: list[Group] = []
        count = 0
        while self._pending and (not groups or count + self._pending[0].size <= self._max):
            g = self._pending.popleft()
            groups.append(g)
            count += g.size
        self.queued -= count
        return groups
