"""The time the clock key cosigns checkpoints at: the wall clock, never before a time already signed.

A tlog-cosignature/v1 time says "this tree head existed by then" (SPEC §3), so the checkpoints of
a growing log must not carry times that go back. The wall clock can step back: an NTP correction
after it ran ahead, a VM restored from a snapshot, an operator's `date -s`. Then checkpoints keep
the last signed time until the clock catches up: a later time than the clock says, which is still
true of the tree, where the clock's time would backdate it. Refusing to sign instead would stop
the log for as long as the clock is behind, hours perhaps; a warning and the
``notar_clock_behind_seconds`` gauge say it is happening.

The sequencer writes each time to RocksDB with the batch it signs, before any checkpoint carries
it, so a restart (kill -9 included) resumes from the latest time ever handed out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from merkle.cosignature import CosignatureVerifier
from merkle.note import parse_note
from services.anchor import state
from services.published import layout
from storage.base import Index, ObjectStore
from storage.errors import NotFoundError

log = logging.getLogger("notar.anchor")


class SigningTime:
    """``next()``: the time to cosign at now, never before one it handed out already (the
    sequencer draws a batch's time while the batch before, with its earlier time, is still being
    written); ``commit(t)`` once ``t`` is durably recorded."""

    def __init__(self, clock: Callable[[], float], floor: int = 0) -> None:
        self._clock = clock
        self.floor = floor
        self.behind_s = 0
        self._handed = 0

    def next(self) -> int:
        now = int(self._clock())
        self._handed = max(self._handed, self.floor)
        behind = self._handed - now
        if behind > 0 and self.behind_s == 0:
            log.warning(
                "the wall clock is %d s behind the last cosigned time %d: checkpoints keep that time "
                "until the clock catches up (cosigned times never go back)",
                behind,
                self._handed,
            )
        elif behind <= 0 and self.behind_s > 0:
            log.info("the wall clock caught up with the last cosigned time %d", self._handed)
        self.behind_s = max(0, behind)
        self._handed = max(now, self._handed)
        return self._handed

    def commit(self, t: int) -> None:
        self.floor = max(self.floor, t)


def note_time(note: bytes | None, clock_key: CosignatureVerifier) -> int:
    """The time of ``clock_key``'s cosignature on ``note`` when it verifies, else 0: a note
    that someone else wrote into the store cannot move this log's times."""
    if not note:
        return 0
    try:
        parsed = parse_note(note)
    except ValueError:
        return 0
    for sig in parsed.signatures:
        if (sig.name, sig.key_id) == (clock_key.name, clock_key.key_id):
            t = clock_key.verify_timestamp(parsed.text.encode(), sig.signature)
            return t or 0
    return 0


async def recorded_floor(
    index: Index, store: ObjectStore, prefix: str, clock_key: CosignatureVerifier
) -> int:
    """The latest time this log may already carry: the time kept in RocksDB, and those of the
    checkpoints kept there and in the store (anchors that wrote no time yet)."""
    raw = await index.get(state.SIGNED_TIME)
    floor = int.from_bytes(raw, "big") if raw else 0
    notes = [await index.get(state.CHECKPOINT)]
    with contextlib.suppress(NotFoundError):
        notes.append(await store.get(layout.checkpoint_key(prefix)))
    return max([floor, *(note_time(n, clock_key) for n in notes)])
