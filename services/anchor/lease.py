"""This anchor's lease on its log, kept alive while the sequencer runs.

The lease (publisher.py) names the one anchor allowed to write the log, for ``ttl`` seconds from
each renewal. The keeper renews it every third of that; entries may be acknowledged only while
the last renewal that succeeded was *sent* less than two thirds of ``ttl`` ago, which leaves a
third of the lease as margin against clock skew and slow writes. When the object store is
unreachable for longer the lease is ``lapsed``: the sequencer refuses new entries (503 with
Retry-After) but keeps everything it acknowledged, and the keeper goes on trying; the first
renewal that succeeds ends the lapse. Renewal is a write over the version this anchor last
wrote, so it fails with ConflictError if another anchor took the log meanwhile: that, and only
that, is final (``on_lost``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from services.anchor.publisher import Publisher
from storage.errors import ConflictError

log = logging.getLogger("notar.anchor")


class LeaseKeeper:
    def __init__(
        self,
        publisher: Publisher,
        holder: str,
        ttl: float,
        *,
        on_lost: Callable[[BaseException], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publisher, self._holder, self._ttl = publisher, holder, ttl
        self._on_lost, self._monotonic = on_lost, monotonic
        self._valid_until = 0.0  # monotonic: entries may be acknowledged before this instant
        self.acquired_at: float | None = None  # Unix time this process took the lease (metrics)
        self.lapses = 0  # times the lease was renewed after going overdue (metrics: flapping)

    @property
    def lapsed_s(self) -> float | None:
        """For how long entries have not been allowed (seconds), or None while they are."""
        late = self._monotonic() - self._valid_until
        return late if late >= 0 else None

    async def acquire(self) -> None:
        """Take the lease (LeaseHeldError when another anchor's is live)."""
        sent = self._monotonic()
        await self._publisher.acquire_lease(self._holder, self._ttl)
        self._valid_until = sent + self._ttl * 2 / 3
        self.acquired_at = time.time()

    async def run(self) -> None:
        """Renew every third of the lease, retry failures quickly, until cancelled or lost. Each
        renewal is bounded in time, so that a store that hangs is retried like one that fails."""
        period = self._ttl / 3
        delay = period if self.lapsed_s is None else 0.0  # a long recovery may have used it up
        while True:
            await asyncio.sleep(delay)
            sent = self._monotonic()
            lapsed = self.lapsed_s
            try:
                await asyncio.wait_for(self._publisher.renew_lease(self._holder, self._ttl), period)
            except ConflictError as e:
                self._on_lost(e)
                return
            except Exception as e:  # StorageError, TimeoutError: the store is away or slow
                reason = str(e) or f"no answer in {period:g} s"
                if lapsed is None and self.lapsed_s is not None:
                    log.error("lease not renewed in time, acknowledging no entries until it is: %s", reason)
                else:
                    log.warning("lease renewal failed: %s", reason)
                delay = min(period / 4, 0.5)
                continue
            self._valid_until = sent + self._ttl * 2 / 3
            delay = period
            if lapsed is not None:
                self.lapses += 1
                log.warning("lease renewed after a lapse of %.1f s: acknowledging entries again", lapsed)
