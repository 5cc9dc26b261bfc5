"""The records of restores of the anchor's index from a backup (docs/backups.md): which entries of
the log lost their salts.

A backup holds the tenant index as it was when it was taken. An anchor that starts on a restored
index takes the published log as it is (services/anchor/recovery.py): the entries sequenced
after the backup keep their place in the log, but their salts were only in the lost index. It
records that range here, once, before it signs anything, and verify pods read it to say so when
a tenant asks for a receipt the service cannot issue any more: the one the client kept still
verifies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from services.published import layout
from storage.base import ObjectStore

CACHE_S = 60.0  # how long a verify pod keeps the records before it lists them again


@dataclass(frozen=True, slots=True)
class Restore:
    """The index restored from ``backup`` held ``entries`` entries; the log had ``size``: the
    salts of entries ``entries`` to ``size - 1`` are lost."""

    backup: str
    entries: int
    size: int
    time: int

    @property
    def lost(self) -> range:
        return range(self.entries, self.size)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"backup": self.backup, "entries": self.entries, "size": self.size, "time": self.time}
        )

    @classmethod
    def from_json(cls, data: bytes) -> Restore:
        """ValueError when ``data`` is not a restore record."""
        try:
            obj = orjson.loads(data)
            return cls(str(obj["backup"]), int(obj["entries"]), int(obj["size"]), int(obj["time"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a restore record: {e}") from e


async def record(store: ObjectStore, restore: Restore, prefix: str = layout.LOG_PREFIX) -> None:
    await store.put(layout.restore_key(restore.size, restore.entries, prefix), restore.to_json())


async def read_restores(store: ObjectStore, prefix: str = layout.LOG_PREFIX) -> list[Restore]:
    """Every restore of the log under ``prefix``, oldest first; unreadable records are skipped."""
    out = []
    async for key in store.list(layout.restores(prefix)):
        try:
            out.append(Restore.from_json(await store.get(key)))
        except ValueError:
            continue
    return sorted(out, key=lambda r: (r.size, r.entries))


class LostSalts:
    """The restores of one log, listed at most once per ``CACHE_S`` (a 404 path asks)."""

    def __init__(
        self,
        store: ObjectStore,
        prefix: str = layout.LOG_PREFIX,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._prefix, self._clock = store, prefix, clock
        self._read_at: float | None = None
        self._restores: list[Restore] = []

    async def restores(self) -> list[Restore]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= CACHE_S:
            self._restores = await read_restores(self._store, self._prefix)
            self._read_at = now
        return self._restores

    async def explain(self) -> str:
        """What a look-up that found nothing may mean beyond "never notarized": "" when the index
        was never restored."""
        lost = [r for r in await self.restores() if r.lost]
        if not lost:
            return ""
        ranges = ", ".join(f"{r.lost.start} to {r.lost.stop - 1} (backup {r.backup})" for r in lost)
        return (
            "; or it was notarized as one of the entries whose salts were lost with the anchor's "
            f"index, restored from a backup taken before them: entries {ranges}. The receipt the "
            "client kept still verifies; the service cannot issue it again"
        )
