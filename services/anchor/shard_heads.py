"""What a committer anchors each round (SPEC §4, §10): its own log's latest checkpoint while it is
the only shard, else, for the aggregating anchor, one aggregate of the latest checkpoint of every
shard, and for the others nothing (the aggregate anchors their checkpoints).

The shards are read from the shard table (``services.published.shards``) at each round, so that a
shard added or frozen joins or leaves the next aggregate without a restart: every shard that is
``active`` or ``freezing`` (a freezing shard's final checkpoint must still be anchored), with a
published, non-empty checkpoint, ordered by shard id. A deployment without a table, or whose only
such shard is the committer's own log, anchors exactly as before shards: plain records, no
``aggregate``.

The aggregating anchor is the one of anchor ordinal 0: shard 0's (in one process, or pod 0 of the
StatefulSet), and after shard 0 was frozen the shard ordinal 0 claimed next, so that aggregation
outlives shard 0 as shards are frozen by time. Its key signs the local blocks; the EVM
``originHash`` names the deployment's ORIGIN (shard 0's origin) whichever shard aggregates, which
is what verifiers accept for every shard's receipt (``merkle.aggregate``).

The object store is not trusted to say what a tree head is: the committer's own checkpoint must be
signed by its log key (``latest_target``), another shard's by a log key of that shard's key history
in the store (``services.published.history``: its first keys and rotation statements) valid at that
size. A shard whose checkpoint does not verify is left out of the aggregate, loudly, rather than
having shard 0's anchors vouch for a root its log did not sign.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from merkle.note import NoteVerifier, open_note
from services.anchor.chains import AggregateTarget, Anchorable, ShardHead, Target
from services.published import layout
from services.published.history import read_history
from services.published.shards import Shard, load_table
from storage.base import ObjectStore
from storage.errors import NotFoundError, StorageError

log = logging.getLogger("notar.anchor.shards")
AGGREGATED = ("active", "freezing")
"""The states of the shards an aggregate holds: a frozen shard's last checkpoint is anchored."""

LogKeysOf = Callable[[Shard, int], Awaitable[Sequence[NoteVerifier]]]
"""The log keys that may sign a shard's checkpoint of a given size."""


async def latest_target(store: ObjectStore, prefix: str, log_key: NoteVerifier | None) -> Target | None:
    """The latest published checkpoint under ``prefix``, or None while there is none (or it is
    empty). ValueError when it is malformed or, given the log key, not signed by it."""
    where = layout.checkpoint_key(prefix)
    try:
        note = (await store.get(where)).decode("utf-8")
    except NotFoundError:
        return None
    target = Target.from_note(note)
    if log_key is not None and not open_note(note, [log_key]).ok:
        raise ValueError(
            f"{where} is not signed by this anchor's log key {log_key.name}: not used (written by "
            "someone else, or by a previous key before a rotation)"
        )
    return target if target.size > 0 else None


class ShardHeads:
    """The round's target of the committer of the log under ``prefix`` (shard 0's, ``log/``)."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        prefix: str = layout.LOG_PREFIX,
        log_key: NoteVerifier | None = None,
        keys_of: LogKeysOf | None = None,
    ) -> None:
        self._store, self._prefix, self._log_key = store, prefix, log_key
        self._keys_of = keys_of or self._stored_keys
        self.aggregated_elsewhere = False
        """Whether the last round found this log anchored by another anchor's aggregates."""

    async def latest(self) -> Anchorable | None:
        """The plain latest checkpoint of this log, or the aggregate of every shard's (module
        doc); None while there is nothing to anchor. ValueError when this log's own checkpoint
        is malformed or not signed by its key; StorageError when the table cannot be read."""
        table = await load_table(self._store)
        shards = [s for s in table if s.state in AGGREGATED]
        own = next((s for s in shards if s.prefix == self._prefix), None)
        self.aggregated_elsewhere = own is not None and len(shards) > 1 and own.ordinal != 0
        if own is None or len(shards) == 1:
            return await latest_target(self._store, self._prefix, self._log_key)
        if self.aggregated_elsewhere:
            return None  # the anchor of ordinal 0 anchors this shard in its aggregate
        heads = []
        for shard in shards:
            head = await self._head(shard)
            if head is not None:
                heads.append(ShardHead(shard.id, shard.prefix, head))
        if not heads:
            return None
        if len(heads) == 1 and heads[0].prefix == self._prefix:
            return heads[0].target  # the others have published nothing yet: a plain record
        return AggregateTarget.of(own.origin, heads, _base(table, own))

    async def _head(self, shard: Shard) -> Target | None:
        """The shard's latest checkpoint when it holds entries and is signed by its log key."""
        if shard.prefix == self._prefix:
            return await latest_target(self._store, self._prefix, self._log_key)
        try:
            target = await latest_target(self._store, shard.prefix, None)
            if target is None:
                return None
            keys = await self._keys_of(shard, target.size)
            if target.origin != shard.origin or not open_note(target.note, list(keys)).ok:
                raise ValueError(
                    f"{layout.checkpoint_key(shard.prefix)} is not a checkpoint of {shard.origin} "
                    "signed by a log key of its key history"
                )
        except (StorageError, ValueError) as e:
            log.warning("shard %d is left out of this round's aggregate: %s", shard.id, e)
            return None
        return target

    async def _stored_keys(self, shard: Shard, size: int) -> Sequence[NoteVerifier]:
        history = await read_history(self._store, shard.prefix)
        if history is None:
            raise ValueError(f"shard {shard.id} has no key history under {layout.history(shard.prefix)}")
        return history.log_keys_at(size)


def _base(table: Sequence[Shard], own: Shard) -> str:
    """The deployment's ORIGIN: shard 0's origin (its row stays in the table when frozen)."""
    zero = next((s for s in table if s.id == 0), None)
    if zero is not None:
        return zero.origin
    suffix = f"/{own.id}"
    return own.origin.removesuffix(suffix) if own.id > 0 else own.origin
