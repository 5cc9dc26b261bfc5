"""Checkpoints cosigned by witnesses, and the checkpoint a receipt is upgraded to (SPEC §5, §11).

The anchor's witness client stores each checkpoint a witness cosigned, as that witness's answer
merged into the log's note (the log's signatures and the witness's cosignature, checked before it
is stored), under ``private/log/witnessed/<size>/<witness>`` (``services.published.layout``):
immutable, the first one stored for a size and a witness stays. ``WitnessedStore.note`` merges
every witness's cosignature of one size into one note.

``Upgrades`` picks what ``GET /v1/receipts`` upgrades a receipt to, like
``AnchorStore.best_for`` but counting each witness as one more kind: among the anchored and the
witnessed checkpoints that hold the entry, the one with the most anchor kinds and witnesses, the
earliest of those; its note carries every witness cosignature stored for its size, and its anchor
records come with it. Witnesses cosign the committer's round targets, the very checkpoints it
anchors, so a receipt gets anchors and cosignatures on one checkpoint.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Callable
from typing import Any

from merkle.note import MAX_SIGNATURES, Signature, parse_note
from services.published import layout
from services.published.anchors import AnchorStore, richest
from storage.base import ObjectStore
from storage.errors import ConflictError, NotFoundError, StorageError

WITNESS_KIND = "witness:"  # witnesses' names among the kinds of ``richest``


class WitnessedStore:
    """Reads and writes witnessed checkpoints; the witnessed sizes are cached like
    ``AnchorStore``'s, re-listed at most every ``refresh_s`` seconds."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        prefix: str = layout.LOG_PREFIX,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._prefix, self._refresh_s, self._clock = store, prefix, refresh_s, clock
        self._by_witness: dict[str, list[int]] = {}
        self._sizes: list[int] = []
        self._listed_at: float | None = None
        self._lock = asyncio.Lock()

    async def put(self, size: int, witness: str, note: str) -> None:
        """Store ``note``, the checkpoint of ``size`` with the cosignature of ``witness`` (its
        ``layout.witness_id``); a note already stored for that size and witness stays."""
        with contextlib.suppress(ConflictError):
            await self._store.put_if_absent(layout.witnessed_key(size, witness, self._prefix), note.encode())
        for sizes in (self._by_witness.setdefault(witness, []), self._sizes):
            if size not in sizes:
                bisect.insort(sizes, size)

    async def note(self, size: int, base: str | None = None) -> str | None:
        """The checkpoint of ``size`` with every stored witness cosignature (added to ``base``,
        the same checkpoint, when given); None when none is stored and no ``base`` is given."""
        folder = f"{layout.witnessed(self._prefix)}{size:0{layout.SIZE_DIGITS}d}/"
        keys = sorted([k async for k in self._store.list(folder)])
        notes = [(await self._store.get(k)).decode("utf-8") for k in keys]
        if base is not None:
            notes.insert(0, base)
        if not notes:
            return None
        return merge_notes(notes)

    def snapshot(self) -> tuple[list[int], dict[str, list[int]]]:
        """The cached witnessed sizes, and the sizes each witness cosigned."""
        return self._sizes, self._by_witness

    async def refresh_if_stale(self) -> bool:
        if self._listed_at is not None and self._clock() - self._listed_at < self._refresh_s:
            return False
        async with self._lock:
            base = layout.witnessed(self._prefix)
            by: dict[str, set[int]] = {k: set(v) for k, v in self._by_witness.items()}
            async for key in self._store.list(base):
                size, _, witness = key[len(base) :].partition("/")
                if size.isdigit() and witness:
                    by.setdefault(witness, set()).add(int(size))
            self._by_witness = {k: sorted(v) for k, v in by.items()}
            self._sizes = sorted(set().union(*by.values())) if by else []
            self._listed_at = self._clock()
        return True


def merge_notes(notes: list[str]) -> str:
    """One note of the same checkpoint with the signature lines of ``notes``, one per key (the
    first seen: a checkpoint signed again after a restart carries another clock time), in the
    order first seen, at most the signed-note limit; ``ValueError`` if the texts differ."""
    parsed = [parse_note(n) for n in notes]
    if any(p.text != parsed[0].text for p in parsed):
        raise ValueError("the witnessed notes are not of one checkpoint")
    seen: dict[tuple[str, int], Signature] = {}
    for p in parsed:
        for sig in p.signatures:
            seen.setdefault((sig.name, sig.key_id), sig)
    lines = list(seen.values())[:MAX_SIGNATURES]
    return parsed[0].text + "\n" + "".join(s.line() for s in lines)


class Upgrades:
    """What a receipt of entry ``index`` is upgraded to (module doc): ``best_for`` answers
    ``(note, anchor records)`` or None while no checkpoint holding the entry is anchored or
    witnessed."""

    def __init__(self, anchors: AnchorStore, witnessed: WitnessedStore) -> None:
        self._anchors, self._witnessed = anchors, witnessed

    def _best(self, min_size: int) -> tuple[int, int] | None:
        anchored, kinds = self._anchors.snapshot()
        witnessed, witnesses = self._witnessed.snapshot()
        noted = sorted(set(anchored) | set(witnessed))
        every = {**kinds, **{WITNESS_KIND + w: sizes for w, sizes in witnesses.items()}}
        best = richest(min_size, noted, every)
        return None if best is None else (best[0], len(every) - best[1])

    async def best_for(self, index: int) -> tuple[str, list[dict[str, Any]]] | None:
        best = self._best(index + 1)
        if best is None or best[1] > 0:  # something may be missing from the caches: re-list
            stale = [await self._anchors.refresh_if_stale(), await self._witnessed.refresh_if_stale()]
            if any(stale):
                best = self._best(index + 1)
        if best is None:
            return None
        size = best[0]
        found = await self._anchors.anchors_for(size)
        base, records = (found.note, list(found.records)) if found is not None else (None, [])
        try:
            note = await self._witnessed.note(size, base)
        except ValueError as e:
            raise StorageError(f"the witnessed checkpoints of size {size} are not one checkpoint: {e}") from e
        except NotFoundError:
            note = base
        return None if note is None else (note, records)
