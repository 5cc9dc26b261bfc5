"""SCITT registrations in the anchor (SPEC §12): each statement's entry sequenced once, its COSE
receipt signed at sequencing time by the log key and kept, and that first receipt handed back to
every later registration of the same statement.

- ``register(entry, wait_s)``: the kept receipt when the entry was registered before; otherwise the
  entry is sequenced (one task per entry: concurrent registrations of one statement share it, so
  it is logged once) and the receipt awaited up to ``wait_s``; None when it is not ready by then
  (the task goes on: ``receipt`` answers later).
- ``receipt(entry)``: the kept receipt, None while the entry is being sequenced, NotFoundError when
  the log has no such entry.

A receipt is made from what the sequencer hands back, at sequencing time: the batch's checkpoint,
opened under the log and clock keys, its tree head signed once for every receipt of the batch
(``merkle.cose.sign_tree_head``), and the entry's inclusion proof. It is kept in RocksDB
(``state.receipt_key``) once signed, unsynced: the entry's index was written, fsynced, with its
batch (``state.entry_key``), so a machine crash may lose a receipt but never the registration. A
lost receipt is made again from the published log (the inclusion proof at the latest published
checkpoint's size, that checkpoint's tree head signed by the current log key) and kept.

A statement registered in a shard that was frozen since is found in that shard's frozen SCITT
files (services.anchor.frozen_scitt, through `read_frozen`): its first receipt is still the one
handed back, and it is not logged again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from merkle.checkpoint import open_checkpoint
from merkle.cose import SignedTreeHead, receipt, sign_tree_head
from services.anchor import state
from services.anchor.keys import LogKeys
from services.anchor.sequencer import Sequencer
from services.published.reader import LogReader
from storage.base import Index
from storage.errors import NotFoundError, PushbackError, StorageError

_HEADS = 8  # signed tree heads kept: the batches whose receipts are being made
_FAILED = 10_000  # failed registrations remembered, so that a poll says why (then forgets)


class Registrar:
    def __init__(self, *, sequencer: Sequencer, index: Index, keys: LogKeys, reader: LogReader) -> None:
        self._seq, self._index, self._keys, self._reader = sequencer, index, keys, reader
        self._running: dict[bytes, asyncio.Task[bytes]] = {}
        self._failed: OrderedDict[bytes, BaseException] = OrderedDict()
        self._heads: OrderedDict[str, SignedTreeHead] = OrderedDict()
        self._frozen: Callable[[bytes], Awaitable[bytes | None]] | None = None

    def read_frozen(self, receipts: Callable[[bytes], Awaitable[bytes | None]]) -> None:
        """Look for the entries this log lacks in the frozen shards: `receipts` gives an entry's
        receipt from them, or None (services.anchor.frozen_shards `FrozenShards.scitt_receipt`)."""
        self._frozen = receipts

    async def register(self, entry: bytes, wait_s: float) -> bytes | None:
        """The entry's receipt, sequencing it first unless it was; None when not ready in ``wait_s``.
        Errors of the sequencer (PushbackError when it refuses entries for now) pass through."""
        task = self._running.get(entry)
        if task is None:
            kept = await self._kept(entry)
            if kept is not None:
                return kept
            task = self._running.get(entry)  # started while we read
            if task is None:
                refused = self._seq.refusal()
                if refused is not None:
                    raise refused
                self._failed.pop(entry, None)
                task = asyncio.create_task(self._sequence(entry), name="notar-scitt-entry")
                self._running[entry] = task
                task.add_done_callback(lambda t: self._done(entry, t))
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait_s)
        except TimeoutError:
            return None

    async def receipt(self, entry: bytes) -> bytes | None:
        """The kept receipt of ``entry``; None while it is being sequenced; NotFoundError, or the
        error of a registration of it that failed (said once: it may be submitted again)."""
        task = self._running.get(entry)
        if task is not None:
            return None
        failed = self._failed.pop(entry, None)
        if failed is not None:
            raise failed
        kept = await self._kept(entry)
        if kept is None:
            raise NotFoundError("no statement with this entry ID is registered in this log")
        return kept

    def _done(self, entry: bytes, task: asyncio.Task[bytes]) -> None:
        self._running.pop(entry, None)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._failed[entry] = error
            while len(self._failed) > _FAILED:
                self._failed.popitem(last=False)

    def running(self) -> int:
        """How many registrations are being sequenced."""
        return len(self._running)

    async def _kept(self, entry: bytes) -> bytes | None:
        """The kept receipt, made again when the entry is logged and its receipt was lost; else
        the receipt of a frozen shard that logged it."""
        kept = await self._index.get(state.receipt_key(entry))
        if kept is not None:
            return kept
        index = await self._seq.entry_index(entry)
        if index is not None:
            return await self.remake(entry, index)
        return None if self._frozen is None else await self._frozen(entry)

    async def _sequence(self, entry: bytes) -> bytes:
        (done,) = await self._seq.submit_entries([entry])
        made = receipt(self._head(done.checkpoint), done.index, done.inclusion, entry)
        with contextlib.suppress(StorageError):  # kept for later; made again if it is lost
            await self._index.write_batch({state.receipt_key(entry): made}, sync=False)
        return made

    def _head(self, note: str) -> SignedTreeHead:
        head = self._heads.get(note)
        if head is None:
            opened = open_checkpoint(
                note,
                origin=self._seq.origin,
                log_verifiers=[self._keys.log.verifier()],
                clock_verifiers=[self._keys.clock.verifier()],
            )
            head = self._heads[note] = sign_tree_head(opened, self._keys.log)
            while len(self._heads) > _HEADS:
                self._heads.popitem(last=False)
        return head

    async def remake(self, entry: bytes, index: int) -> bytes:
        """The receipt of the logged entry `entry` at `index`, made again from the published log
        (its kept one was lost) and kept; PushbackError while that entry is not published."""
        published = await self._reader.published(index + 1)
        if published is None:
            raise PushbackError(f"entry {index} is logged but not published yet", retry_after=1)
        note, cp = published
        proof = await self._reader.inclusion_proof(index, cp.size)
        made = receipt(self._head(note), index, proof, entry)
        await self._index.write_batch({state.receipt_key(entry): made}, sync=False)
        return made
