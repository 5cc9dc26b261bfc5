"""CPython's switch interval, shortened while a sequencer's publication is behind.

A sequencer's process runs threads that hold the GIL for long stretches (its batches, their
integration, RocksDB's write: rocksdict holds the GIL through the memtable insert) beside the
threads that publish tiles to a directory store, which give the GIL up for each system call of
each file (open, write, fsync, link, unlink...) and must take it back after. A thread waiting for
the GIL gets it when the holder lets it go, or when the switch interval (5 ms by default) runs
out and the holder is made to. Under bulk load, publication waited up to that long per system
call, fell a whole backlog behind, and entries were refused with 503
(BENCHMARKS.md, "A shorter switch interval while publication is behind").

A 1 ms interval for good removed those refusals, but cost ~5 % of the throughput when publication
keeps up (the CPU-bound threads hand the GIL over more often). So it is shortened only while some
sequencer of the process has a backlog (`Backlog`): queued and in-flight batches of an eighth
of its `publish_backlog` or more (8 of 64); the interval the process had is restored once none
has.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

SHORT_S = 0.001


class SwitchInterval:
    """The process's switch interval: `SHORT_S` while any owner (a sequencer) says it is behind,
    else the interval found when the first one did."""

    def __init__(
        self,
        short_s: float = SHORT_S,
        *,
        get: Callable[[], float] = sys.getswitchinterval,
        set_to: Callable[[float], None] = sys.setswitchinterval,
    ) -> None:
        self._short, self._get, self._set = short_s, get, set_to
        self._behind: set[object] = set()
        self._normal: float | None = None

    def behind(self, owner: object, is_behind: bool) -> None:
        """Say whether `owner` is behind now; the interval follows."""
        was = bool(self._behind)
        if is_behind:
            self._behind.add(owner)
        else:
            self._behind.discard(owner)
        if self._behind and not was:
            self._normal = self._get()
            self._set(min(self._short, self._normal))
        elif was and not self._behind and self._normal is not None:
            self._set(self._normal)

    @property
    def shortened(self) -> bool:
        return bool(self._behind)


INTERVAL = SwitchInterval()
"""The process's: every sequencer in it reports to this one."""


class Backlog:
    """One sequencer's publication backlog as `INTERVAL` reads it: batches waiting in the queue
    and in the round being published; behind from `threshold` of them."""

    def __init__(self, backlog: int, interval: SwitchInterval = INTERVAL) -> None:
        self.threshold = max(1, backlog // 8)
        self._interval = interval
        self._publishing = 0

    def update(self, queued: int, publishing: int | None = None) -> None:
        """After a batch was queued (`queued` waiting), or as a round starts or ends
        (`publishing`: the batches it holds, 0 once it ended)."""
        if publishing is not None:
            self._publishing = publishing
        self._interval.behind(self, queued + self._publishing >= self.threshold)

    def close(self) -> None:
        self._publishing = 0
        self._interval.behind(self, False)
