"""The anchor's lease when the object store goes away or hangs: entries are refused with a
pushback (never acknowledged past the lease margin, never waiting on the store), the sequencer
does not stop for good, and it acknowledges again once the store is back; nothing is lost."""

from __future__ import annotations

import asyncio
import time

from services.anchor.keys import LogKeys
from services.anchor.sequencer import Sequencer
from storage.errors import PushbackError
from storage.memory import Faults, MemoryIndex, MemoryStore
from tests.services.anchor.conftest import MakeSequencer
from tests.services.anchor.test_sequencer import check_log, digests

BOUND_S = 10.0  # every wait below gives up after this long


class HangingStore(MemoryStore):
    """A store whose lease writes hang (no answer, no error) while ``hang`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = False

    async def put_if_version(
        self, key: str, data: bytes, version: str | None, *, cache_control: str | None = None
    ) -> str:
        while self.hang and key.endswith("lease"):
            await asyncio.sleep(0.01)
        return await super().put_if_version(key, data, version, cache_control=cache_control)


async def _submit_until_refused(seq: Sequencer, acked: dict[int, bytes], start: int) -> PushbackError:
    """Submit batches until one is refused; each answer comes without waiting on the store."""
    deadline = time.monotonic() + BOUND_S
    n = start
    while time.monotonic() < deadline:
        try:
            done = await asyncio.wait_for(seq.submit("acme", digests(n, 10)), 2.0)
        except PushbackError as e:
            assert e.retry_after >= 1
            return e
        acked.update({s.index: s.entry for s in done})
        n += 10
        await asyncio.sleep(0.01)
    raise AssertionError(f"entries were still acknowledged {BOUND_S:g} s into the outage")


async def _submit_until_accepted(seq: Sequencer, acked: dict[int, bytes], start: int) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        try:
            done = await asyncio.wait_for(seq.submit("acme", digests(start, 10)), 2.0)
        except PushbackError:
            await asyncio.sleep(0.05)
            continue
        acked.update({s.index: s.entry for s in done})
        return
    raise AssertionError(f"no entry acknowledged {BOUND_S:g} s after the store came back")


async def test_a_store_outage_past_the_lease_margin_refuses_then_resumes(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    faults = Faults()
    store, index = MemoryStore(faults=faults), MemoryIndex()
    seq = await make_sequencer(store, index, lease_ttl_s=0.6, publish_backlog=100_000)
    acked: dict[int, bytes] = {}
    await _submit_until_accepted(seq, acked, 0)
    faults.inject("*", "*", times=10**9)  # the store goes away: every call fails
    refused = await _submit_until_refused(seq, acked, 1000)
    assert "lease" in str(refused)
    assert seq.failed is None and seq.refusing is not None
    faults.clear()
    await _submit_until_accepted(seq, acked, 5000)
    assert seq.failed is None and seq.refusing is None
    assert seq.lease is not None and seq.lease.lapses >= 1  # notar_lease_lapses_total
    await seq.close()
    await (await make_sequencer(store, index)).close()
    await check_log(store, keys, acked, [])


async def test_a_lease_renewal_that_hangs_stops_acknowledgements_in_time(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    store, index = HangingStore(), MemoryIndex()
    seq = await make_sequencer(store, index, lease_ttl_s=0.6)
    acked: dict[int, bytes] = {}
    await _submit_until_accepted(seq, acked, 0)
    store.hang = True
    hung_at = time.monotonic()
    refused = await _submit_until_refused(seq, acked, 1000)
    # The last renewal that succeeded was sent before the hang: at most 2/3 of the lease later
    # (plus scheduling slack) no entry may be acknowledged any more.
    assert time.monotonic() - hung_at < 0.6 + 1.0
    assert "lease" in str(refused)
    store.hang = False
    await _submit_until_accepted(seq, acked, 5000)
    await seq.close()
    await check_log(store, keys, acked, [])


async def test_a_full_publication_backlog_pushes_back_instead_of_waiting(
    make_sequencer: MakeSequencer, keys: LogKeys
) -> None:
    faults = Faults()
    store, index = MemoryStore(faults=faults), MemoryIndex()
    seq = await make_sequencer(store, index, lease_ttl_s=60, publish_backlog=3)
    acked: dict[int, bytes] = {}
    faults.inject("put_if_absent", "log/tile/*", times=10**9)  # tiles cannot be published
    refused = await _submit_until_refused(seq, acked, 0)
    assert "behind" in str(refused)
    faults.clear()
    await _submit_until_accepted(seq, acked, 5000)
    await seq.close()
    await check_log(store, keys, acked, [])
