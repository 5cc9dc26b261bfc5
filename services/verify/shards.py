"""What the verify service reads of each shard (SPEC §10): its published log, its anchored
checkpoints, its restores and its anchor's tenant index, one `View` per shard, made once and
kept (its reader caches tiles).

`Views.all()` lists every shard the deployment has (in one process, those the anchor runs; in a
verify pod, the shard table's), by id; shard 0 is always first. With one shard there is one view,
of `ORIGIN` under `log/`, exactly as a single log always had it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from merkle.cosignature import signature_timestamp
from merkle.note import parse_note
from services.internal.directory import Shards
from services.model import Lookup
from services.published import layout
from services.published.anchors import AnchorStore
from services.published.reader import LogReader
from services.published.restores import LostSalts
from services.published.shards import Shard
from services.published.witnessed import Upgrades, WitnessedStore
from storage.base import ObjectStore
from storage.errors import NotFoundError, PushbackError

UNKNOWN_TIME = 2**63  # after every signed time: a checkpoint without a clock's cosignature sorts last


class AnchoredCheckpoints(Protocol):
    async def best_for(self, index: int) -> tuple[str, list[dict[str, Any]]] | None:
        """The anchored checkpoint containing entry `index` with the most anchor kinds, the
        earliest of those: (note, anchor records)."""
        ...


@dataclass(frozen=True)
class View:
    """One shard as verify reads it; `lookup` is None while no anchor serves the shard."""

    shard: Shard
    reader: LogReader
    anchored: AnchoredCheckpoints
    lost: LostSalts
    lookup: Lookup | None

    @property
    def origin(self) -> str:
        return self.shard.origin

    def looked_up(self) -> Lookup:
        if self.lookup is None:
            raise PushbackError(f"no anchor serves the shard {self.origin} right now", retry_after=1)
        return self.lookup


class Views:
    """The views of the shards `shards` lists, over `store`."""

    def __init__(self, store: ObjectStore, shards: Shards) -> None:
        self._store, self._shards = store, shards
        self._made: dict[int, View] = {}
        self._introductions: dict[int, str] = {}

    async def all(self) -> list[View]:
        views = []
        for link in await self._shards.links():
            made = self._made.get(link.shard.id)
            if made is None or made.shard != link.shard or made.lookup is not link.anchor:
                made = self._made[link.shard.id] = self._view(link.shard, link.anchor)
            views.append(made)
        return views

    def _view(self, shard: Shard, lookup: Lookup | None) -> View:
        held = self._made.get(shard.id)
        if held is not None:  # the state or the anchor changed: the reads stay
            return View(shard, held.reader, held.anchored, held.lost, lookup)
        store, prefix = self._store, shard.prefix
        return View(
            shard=shard,
            reader=LogReader(store, prefix=prefix, origin=shard.origin),
            anchored=Upgrades(AnchorStore(store, prefix=prefix), WitnessedStore(store, prefix=prefix)),
            lost=LostSalts(store, prefix),
            lookup=lookup,
        )

    async def introduction(self, view: View) -> str | None:
        """Shard i > 0's introduction by shard 0's log key (merkle.introduction), None while it
        has none; kept once read (it never changes)."""
        if view.shard.id == 0:
            return None
        held = self._introductions.get(view.shard.id)
        if held is None:
            try:
                held = (await self._store.get(layout.introduction_key(view.shard.prefix))).decode()
            except NotFoundError:
                return None
            self._introductions[view.shard.id] = held
        return held

    async def first(self) -> View:
        """Shard 0's view: the log `ORIGIN` under `log/`."""
        return (await self.all())[0]

    async def of_origin(self, origin: str | None) -> View:
        """The view of the shard of `origin` (None: shard 0); NotFoundError naming it when there
        is none."""
        views = await self.all()
        if origin is None:
            return views[0]
        for view in views:
            if view.origin == origin:
                return view
        raise NotFoundError(f"this service has no log {origin[:200]!r}")

    async def of_id(self, shard: int) -> View:
        for view in await self.all():
            if view.shard.id == shard:
                return view
        raise NotFoundError(f"this service has no shard {shard}")


def clock_time(note: str, origin: str) -> int:
    """The time the clock of `origin` signed `note` at (its cosignature's, unverified: the note is
    the service's own), UNKNOWN_TIME when it holds none. Orders a look-up's hit whose batch time
    is unknown by the checkpoint of its receipt (services.verify.app `_earliest`)."""
    for sig in parse_note(note).signatures:
        if sig.name == origin + "/clock":
            try:
                return signature_timestamp(sig.signature)
            except ValueError:
                break
    return UNKNOWN_TIME
