"""RocksDB's head of the log (`state.HEAD`: its size) and the one way the sequencer moves it: a
batch's compare-and-swap, fsynced. A failed write is re-read and classified: applied (success),
not applied (the callers may retry: `Retryable`), or moved by someone else (the log stops)."""

from __future__ import annotations

from services.anchor import state
from services.anchor.batch import Retryable
from services.anchor.recovery import RecoveryError
from storage.base import Index
from storage.errors import StorageError


class Head:
    """The head as this sequencer last wrote it, and why the last write failed (`error`, until
    one works)."""

    def __init__(self, index: Index, value: bytes | None = None) -> None:
        self._index = index
        self.value = value
        self.error: str | None = None

    async def advance(self, new_head: bytes, puts: dict[bytes, bytes]) -> None:
        """Compare-and-swap the head to `new_head` with the batch's `puts`, fsynced. A failed
        write is re-read: applied means success, not applied means the callers may retry,
        anything else stops the log (RecoveryError)."""
        try:
            ok = await self._index.compare_and_swap(state.HEAD, self.value, new_head, puts=puts, sync=True)
        except StorageError as e:
            self.error = str(e)
            try:
                now = await self._index.get(state.HEAD)
            except StorageError:
                # Unknown (the index is being reopened): if the batch did land after all, the
                # next compare-and-swap finds the head moved and stops the log; nothing is lost.
                now = self.value
            if now == new_head:
                ok = True
            elif now == self.value:
                raise Retryable(f"the batch could not be written to RocksDB, retry: {e}") from e
            else:
                raise RecoveryError(
                    f"RocksDB's head moved under the sequencer after a failed write: {e}"
                ) from e
        if not ok:
            raise RecoveryError("RocksDB's head changed under the sequencer: a second writer on this index?")
        self.value = new_head
        self.error = None

    async def unwritable(self, holder: str) -> str | None:
        """Why the last write failed (a full disk...), or None once a write works again. Tries an
        fsynced write of the `holder` id (unchanged) to find out, so that readiness recovers by
        itself even when no entries come in."""
        if self.error is None:
            return None
        try:
            await self._index.write_batch({state.HOLDER: holder.encode()}, sync=True)
        except StorageError as e:
            return f"RocksDB cannot be written: {e}"
        self.error = None
        return None
