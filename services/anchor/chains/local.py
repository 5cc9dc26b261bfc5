"""The `local` backend: notar's embedded hash chain of signed blocks (SPEC §4, merkle.anchors.local).

Blocks are immutable objects ``private/<prefix>anchors/local/<height, 20 digits>`` in the object
store (``services.published.layout.local_block_key``), beside the log they anchor, so an auditor
given a copy of the bucket can check the whole chain with ``merkle.anchors.local.verify_chain``. One
committer writes them (it runs under the log's lease); put-if-absent makes a second writer fail
rather than fork the chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from merkle.anchors.local import aggregate_block_origin, canonical_bytes, check_block, make_block
from merkle.checkpoint import Checkpoint
from merkle.note import NoteSigner
from services.anchor.chains import AggregateTarget, Anchorable, Anchored, AnchorError
from services.published import layout
from storage.base import ObjectStore
from storage.errors import ConflictError, NotFoundError, StorageError


class LocalChain:
    kind = "local"

    def __init__(
        self,
        *,
        store: ObjectStore,
        signer: NoteSigner,
        prefix: str = layout.LOG_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._signer, self._clock = store, signer, clock
        self._prefix, self._dir = prefix, layout.local_chain(prefix)
        self._head: dict[str, Any] | None = None
        self._loaded = False

    def key(self, height: int) -> str:
        return layout.local_block_key(height, self._prefix)

    async def _load_head(self) -> None:
        heights = [int(k[len(self._dir) :]) async for k in self._store.list(self._dir)]
        self._head = None
        if heights:
            raw = await self._store.get(self.key(max(heights)))
            self._head = orjson.loads(raw)
            check_block(self._head)
        self._loaded = True

    async def blocks(self) -> list[dict[str, Any]]:
        """The whole chain, block 0 first (for audits and tests)."""
        heights = sorted([int(k[len(self._dir) :]) async for k in self._store.list(self._dir)])
        return [orjson.loads(await self._store.get(self.key(h))) for h in heights]

    async def anchor(self, target: Anchorable) -> Anchored:
        """Append a block committing to ``target``, or return the head if it already does: for
        an aggregate, a block of the aggregating log's origin + ``/aggregate`` with the aggregate's
        size and root (``merkle.anchors.local.aggregate_block_origin``)."""
        origin = target.origin
        if isinstance(target, AggregateTarget):
            origin = aggregate_block_origin(origin)
        cp = Checkpoint(origin, target.size, target.root)
        try:
            if not self._loaded:
                await self._load_head()
            head = self._head
            if head is not None and (head["origin"], head["tree_size"], head["root"]) == (
                cp.origin,
                cp.size,
                cp.root.hex(),
            ):
                return Anchored(target, {"type": self.kind, **head})
            now = int(self._clock())
            if head is not None:
                now = max(now, int(head["time"]))  # the chain's time never goes back
            block = make_block(previous=head, time=now, checkpoint=cp, signer=self._signer)
            await self._store.put_if_absent(self.key(block["height"]), canonical_bytes(block))
        except (StorageError, ConflictError, NotFoundError, ValueError) as e:
            self._loaded = False  # re-read the head: the write may have landed, or another won
            raise AnchorError(f"the local chain under {self._dir} could not be extended: {e}") from e
        self._head = block
        return Anchored(target, {"type": self.kind, **block})

    async def close(self) -> None:
        return None
