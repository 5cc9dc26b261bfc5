"""Shards (SPEC §10): the names of each shard's log and the shard table in the store.

A deployment runs `SHARDS` logs. Shard ids are never reused. Shard 0 keeps the deployment's
origin and the `log/` prefix forever, so a single-log deployment becomes sharded without renaming
anything; shard i > 0 has origin `<ORIGIN>/<i>`, its tiles under `log/<i>/` (`/log/<i>/` over
HTTP) and its private state under `private/log/<i>/` (every `services.published.layout` function
takes that prefix).

The shard table (`private/shards.json`, written only with `put_if_version`) lists every shard the
deployment ever had: its id, origin, state (`active`, `freezing`, `frozen`), the anchor ordinal that
owns it while it is not frozen (the StatefulSet ordinal in Kubernetes; in one process, the shard's
position), and the URL where that anchor's internal routes are reached (None in one process). An
ordinal owns at most one unfrozen shard; when its shard is frozen, the ordinal's next claim gets a
new id (`claimed`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import orjson

from services.published.layout import LOG_PREFIX, PRIVATE_PREFIX
from storage.base import ObjectStore
from storage.errors import ConflictError, CorruptedError, NotFoundError

SHARD_TABLE = PRIVATE_PREFIX + "shards.json"
STATES = ("active", "freezing", "frozen")
_TAIL = re.compile(r"/([1-9][0-9]{0,8})\Z")
MAX_TRIES = 20


def shard_origin(base: str, shard: int) -> str:
    """Shard 0's origin is the deployment's `ORIGIN`; shard i > 0's is `ORIGIN/i`."""
    return base if shard == 0 else f"{base}/{shard}"


def shard_prefix(shard: int) -> str:
    """Where a shard's log lives in the bucket: `log/` for shard 0, `log/<i>/` after."""
    return LOG_PREFIX if shard == 0 else f"{LOG_PREFIX}{shard}/"


def http_prefix(shard: int) -> str:
    """The verify service's routes of a shard's log: `/log/` for shard 0, `/log/<i>/` after."""
    return "/" + shard_prefix(shard)


def shard_of_origin(base: str, origin: str) -> int | None:
    """The shard id an origin names in the deployment of origin `base`, or None when none does."""
    if origin == base:
        return 0
    if origin.startswith(base):
        m = _TAIL.fullmatch(origin[len(base) :])
        if m:
            return int(m.group(1))
    return None


@dataclass(frozen=True)
class Shard:
    id: int
    origin: str
    state: str = "active"
    ordinal: int | None = None
    url: str | None = None

    @property
    def prefix(self) -> str:
        return shard_prefix(self.id)

    @property
    def writable(self) -> bool:
        return self.state == "active"

    def to_obj(self) -> dict[str, object]:
        return {
            "id": self.id,
            "origin": self.origin,
            "state": self.state,
            "ordinal": self.ordinal,
            "url": self.url,
        }


def _shard(obj: object) -> Shard:
    if not isinstance(obj, dict):
        raise ValueError("a shard is an object")
    sid, origin, state = obj.get("id"), obj.get("origin"), obj.get("state")
    ordinal, url = obj.get("ordinal"), obj.get("url")
    if not isinstance(sid, int) or isinstance(sid, bool) or sid < 0:
        raise ValueError("a shard's id is a non-negative integer")
    if not isinstance(origin, str) or state not in STATES:
        raise ValueError(f"shard {sid}: origin or state missing")
    if ordinal is not None and (not isinstance(ordinal, int) or isinstance(ordinal, bool) or ordinal < 0):
        raise ValueError(f"shard {sid}: ordinal is a non-negative integer or null")
    if url is not None and not isinstance(url, str):
        raise ValueError(f"shard {sid}: url is a string or null")
    return Shard(sid, origin, str(state), ordinal, url)


def parse_table(data: bytes) -> tuple[Shard, ...]:
    """The shards of a table's bytes, by id; CorruptedError naming what is wrong."""
    try:
        obj = orjson.loads(data)
        shards = tuple(sorted((_shard(s) for s in obj["shards"]), key=lambda s: s.id))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CorruptedError(f"{SHARD_TABLE}: {e}") from e
    if len({s.id for s in shards}) != len(shards):
        raise CorruptedError(f"{SHARD_TABLE}: a shard id is listed twice")
    return shards


def format_table(shards: Sequence[Shard]) -> bytes:
    return orjson.dumps(
        {"shards": [s.to_obj() for s in sorted(shards, key=lambda s: s.id)]}, option=orjson.OPT_INDENT_2
    )


async def load_table(store: ObjectStore) -> tuple[Shard, ...]:
    """Every shard the deployment ever had, by id; () before the first anchor started."""
    try:
        return parse_table(await store.get(SHARD_TABLE))
    except NotFoundError:
        return ()


async def update_table(
    store: ObjectStore, change: Callable[[tuple[Shard, ...]], tuple[Shard, ...]]
) -> tuple[Shard, ...]:
    """Apply `change` to the table with a conditional write, again on a concurrent change; the
    table written."""
    for _ in range(MAX_TRIES):
        try:
            current = await store.get_versioned(SHARD_TABLE)
            shards, version = parse_table(current.data), current.version
        except NotFoundError:
            shards, version = (), None
        new = change(shards)
        if new == shards:
            return shards
        try:
            await store.put_if_version(SHARD_TABLE, format_table(new), version)
            return new
        except ConflictError:
            continue
    raise ConflictError(f"{SHARD_TABLE} kept changing under {MAX_TRIES} tries")


def claimed(shards: tuple[Shard, ...], base: str, ordinal: int, url: str | None) -> tuple[Shard, ...]:
    """The table after `ordinal` claims its shard: the unfrozen one it owns (its URL updated), or a
    new active shard: id = the ordinal when that id was never used (so a new deployment's shards
    are its ordinals, whatever order its anchors start in), else one more than the largest id."""
    for s in shards:
        if s.ordinal == ordinal and s.state != "frozen":
            if s.url == url:
                return shards
            return tuple(replace(t, url=url) if t.id == s.id else t for t in shards)
    used = {s.id for s in shards}
    new_id = ordinal if ordinal not in used else max(used) + 1
    return (*shards, Shard(new_id, shard_origin(base, new_id), "active", ordinal, url))


async def claim(store: ObjectStore, base: str, ordinal: int, url: str | None = None) -> Shard:
    """The shard anchor `ordinal` owns, claimed in the table when it has none."""
    table = await update_table(store, lambda shards: claimed(shards, base, ordinal, url))
    return next(s for s in table if s.ordinal == ordinal and s.state != "frozen")


def with_state(shards: tuple[Shard, ...], shard: int, state: str) -> tuple[Shard, ...]:
    """The table with `shard` in `state`; ValueError when there is no such shard or the change goes
    backwards (frozen is final)."""
    if state not in STATES:
        raise ValueError(f"unknown shard state {state!r}")
    found = [s for s in shards if s.id == shard]
    if not found:
        raise ValueError(f"there is no shard {shard}")
    if STATES.index(state) < STATES.index(found[0].state):
        raise ValueError(f"shard {shard} is {found[0].state}; it cannot become {state}")
    return tuple(replace(s, state=state) if s.id == shard else s for s in shards)
