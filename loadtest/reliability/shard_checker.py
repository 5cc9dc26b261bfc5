"""The "nothing lost" checker over every shard of a deployment (SPEC §10, issue 17 item 8).

Each shard's log is audited on its own by ``checker.check`` — under its prefix, with its origin
and keys — and held to the acknowledged receipts that name its origin and the checkpoints of that
origin any client saw (0 lost, 0 duplicate indices per shard, no fork, no time reversal). Shard
0's keys are also trusted there, as the aggregated anchor records of every shard point to blocks
shard 0's anchor signs. Then what holds only across shards:

- every receipt names the origin of a shard in the table (none invented);
- the aggregate records of one anchoring agree: for each kind, aggregate size and root, one leaf
  per shard, distinct leaf indices below the size, in shard-id order (SPEC §4: leaves ordered by
  shard id); each aggregate's local record is a block of shard 0's local chain.

With one shard and no shard table (today's deployments) it is ``checker.check`` of shard 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from merkle import AnchorTarget
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.published import layout
from services.published.shards import Shard, load_table, shard_origin
from storage.base import ObjectStore
from storage.errors import NotFoundError

from .checker import EvmCheck, Verdict, check
from .workload import Acked


@dataclass
class ShardsVerdict:
    """Each shard's ``Verdict`` and what only holds across shards; ``ok`` when everything holds."""

    shards: dict[int, Verdict] = field(default_factory=dict)
    unknown_origin: list[str] = field(default_factory=list)  # receipts naming no shard of the table
    bad_aggregates: list[str] = field(default_factory=list)
    aggregates_checked: int = 0

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.shards.values()) and not (self.unknown_origin or self.bad_aggregates)

    def summary(self) -> dict[str, Any]:
        per = {sid: v.summary() for sid, v in sorted(self.shards.items())}
        return {
            "shards": len(self.shards),
            "acknowledged": sum(v.acknowledged for v in self.shards.values()),
            "lost": sum(len(v.lost) for v in self.shards.values()),
            "duplicate_indices": sum(len(v.duplicate_indices) for v in self.shards.values()),
            "unknown_origin": len(self.unknown_origin),
            "aggregates_checked": self.aggregates_checked,
            "bad_aggregates": len(self.bad_aggregates),
            "examples": (self.unknown_origin + self.bad_aggregates)[:5],
            "per_shard": per,
        }


def keys_by_origin(published: Mapping[str, Any]) -> dict[str, list[str]]:
    """[log key, clock key] of each origin `/v1/keys` lists (SPEC §6), those of its current
    period when keys were rotated."""
    found: dict[str, list[str]] = {}
    for log in published.get("logs", []):
        if log.get("until_size") is None or log["origin"] not in found:
            found[log["origin"]] = [log["log"], log["clock"]]
    return found


def note_origin(note: str) -> str:
    """The origin line of a checkpoint note."""
    return note.split("\n", 1)[0]


async def shards_of(store: ObjectStore, base: str) -> tuple[Shard, ...]:
    """The shard table; shard 0 alone when there is none (a deployment of one log)."""
    return await load_table(store) or (Shard(0, shard_origin(base, 0)),)


async def check_shards(
    store: ObjectStore,
    *,
    base: str,
    keys: Mapping[str, list[str]],
    acked: Iterable[Acked],
    checkpoints: Iterable[str],
    tsa_cas: Iterable[Any] = (),
    evm: EvmCheck | None = None,
) -> ShardsVerdict:
    """Audit every shard of the deployment of origin ``base`` in ``store`` and hold each to what
    its clients were given. ``keys``: [log key, clock key] per origin (``keys_by_origin``)."""
    shards = await shards_of(store, base)
    v = ShardsVerdict()
    by_origin: dict[str, list[Acked]] = defaultdict(list)
    for a in acked:
        by_origin[a.origin or base].append(a)
    notes: dict[str, list[str]] = defaultdict(list)
    for note in checkpoints:
        notes[note_origin(note)].append(note)
    known = {s.origin for s in shards}
    for origin in sorted(set(by_origin) - known):
        v.unknown_origin += [f"{a.digest}: names {origin!r}, no shard's" for a in by_origin[origin]]
    first = keys.get(shards[0].origin, [])
    for s in shards:
        if s.origin not in keys:
            v.bad_aggregates.append(f"shard {s.id}: /v1/keys does not list {s.origin!r}")
            continue
        v.shards[s.id] = await check(
            store,
            origin=s.origin,
            keys=[*keys[s.origin], *(first if s.id else [])],
            acked=by_origin.get(s.origin, []),
            checkpoints=notes.get(s.origin, []),
            prefix=s.prefix,
            tsa_cas=tsa_cas,
            evm=evm,
        )
    await _check_aggregates(store, shards, v)
    return v


async def _check_aggregates(store: ObjectStore, shards: tuple[Shard, ...], v: ShardsVerdict) -> None:
    # (kind, aggregate size, aggregate root) -> [(leaf index, shard id)]
    leaves: dict[tuple[str, int, bytes], list[tuple[int, int]]] = defaultdict(list)
    for s in shards:
        async for key in store.list(layout.anchor_records(s.prefix)):
            record = orjson.loads(await store.get(key))
            if "aggregate" not in record:
                continue
            size = int(key.split("/")[-2])
            try:
                note = (await store.get(layout.anchor_checkpoint_key(size, s.prefix))).decode()
                body = parse_note(note).text
                target = AnchorTarget.for_record(record, parse_checkpoint(body), body)
            except NotFoundError:
                continue  # an orphan record: the shard's own check counts it
            except ValueError as e:
                v.bad_aggregates.append(f"{key}: {e}")
                continue
            assert target.aggregate is not None
            leaves[(str(record.get("type")), target.size, target.root)].append((target.aggregate.index, s.id))
    chain: set[tuple[int, str]] = set()
    async for key in store.list(layout.local_chain(shards[0].prefix)):
        block = orjson.loads(await store.get(key))
        chain.add((int(block["tree_size"]), str(block["root"])))
    for (kind, size, root_hash), found in sorted(leaves.items()):
        v.aggregates_checked += 1
        what = f"{kind} aggregate of {size} ({root_hash.hex()[:16]}…)"
        by_index = sorted(found)
        if len({i for i, _ in found}) != len(found) or len({s for _, s in found}) != len(found):
            v.bad_aggregates.append(f"{what}: a leaf or a shard appears twice: {by_index}")
        elif [s for _, s in by_index] != sorted(s for _, s in by_index):
            v.bad_aggregates.append(f"{what}: leaves are not in shard-id order: {by_index}")
        if kind == "local" and (size, root_hash.hex()) not in chain:
            v.bad_aggregates.append(f"{what}: no block of shard 0's local chain holds it")
