"""REPEATS_MAX (services.anchor.repeats): a tenant notarizes one digest at most `cap` times; a
request that would go past it is refused whole, nothing of it written; the count is durable with
the rows, survives a restart of the anchor on its RocksDB, and erasure sets it back to 0."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from merkle.digests import Digest, parse_digest
from services.anchor import state
from services.anchor.erasure import Eraser
from services.anchor.repeats import RepeatCap, count_key
from services.anchor.sequencer import Sequencer
from storage.errors import RepeatsCapped
from storage.memory import MemoryIndex, MemoryStore
from storage.rocks import RocksIndex
from tests.services.anchor.conftest import MakeSequencer, tenant_index


def fresh() -> Digest:
    return parse_digest("blake3:" + os.urandom(32).hex())


async def found(seq: Sequencer, tenant: str, digest: Digest) -> int:
    return len(await seq.lookup(tenant, digest))


async def test_the_cap_refuses_the_request_that_would_pass_it(make_sequencer: MakeSequencer) -> None:
    seq = await make_sequencer(repeats_max=3)
    d = fresh()
    await seq.submit("acme", [d, d])
    await seq.submit("acme", [d])
    with pytest.raises(RepeatsCapped) as refused:
        await seq.submit("acme", [d])
    assert refused.value.status == 409 and refused.value.kind == "too-many-repeats"
    assert refused.value.extra == {"digest": str(d), "cap": 3}
    assert str(d) in refused.value.message and "3" in refused.value.message
    assert await found(seq, "acme", d) == 3
    # another tenant's notarizations of the same digest are its own
    await seq.submit("globex", [d, d, d])
    assert await found(seq, "globex", d) == 3


async def test_a_bulk_request_is_refused_whole(make_sequencer: MakeSequencer) -> None:
    seq = await make_sequencer(repeats_max=2)
    d, other = fresh(), fresh()
    await seq.submit("acme", [d])
    size = seq.size
    with pytest.raises(RepeatsCapped) as refused:
        await seq.submit("acme", [other, d, d])  # d would be notarized 3 times
    assert refused.value.extra["digest"] == str(d)
    assert seq.size == size, "nothing of the refused request entered the log"
    assert await found(seq, "acme", other) == 0 and await found(seq, "acme", d) == 1
    await seq.submit("acme", [other, d])  # within the cap: all of it
    assert await found(seq, "acme", other) == 1 and await found(seq, "acme", d) == 2


async def test_requests_of_one_batch_are_counted_in_order(make_sequencer: MakeSequencer) -> None:
    seq = await make_sequencer(repeats_max=3, batch_ms=200, batch_min_ms=200)
    d, other = fresh(), fresh()
    await seq.submit("acme", [d])
    # one batch: the first two fit, the third would be the fourth notarization of d
    results = await asyncio.gather(
        seq.submit("acme", [d]),
        seq.submit("acme", [other]),
        seq.submit("acme", [d]),
        seq.submit("acme", [d, other]),
        return_exceptions=True,
    )
    assert [isinstance(r, RepeatsCapped) for r in results] == [False, False, False, True]
    assert await found(seq, "acme", d) == 3 and await found(seq, "acme", other) == 1


async def test_the_count_is_written_with_the_rows_and_zero_turns_the_cap_off(
    make_sequencer: MakeSequencer,
) -> None:
    index = MemoryIndex()
    seq = await make_sequencer(index=index, repeats_max=5)
    d = fresh()
    await seq.submit("acme", [d, d])
    name = tenant_index().prefix("acme", d.multihash)[1:]
    assert await index.get(count_key(name)) == (2).to_bytes(4, "big")

    off = MemoryIndex()
    uncapped = await make_sequencer(index=off, repeats_max=0)
    await uncapped.submit("acme", [d] * 7)
    assert await found(uncapped, "acme", d) == 7
    assert [k async for k, _ in off.scan(state.REPEATS)] == [], "no count is kept with no cap"


async def test_a_count_ahead_of_the_rows_is_corrected_not_obeyed(make_sequencer: MakeSequencer) -> None:
    """An erasure that lands between a batch's read of a count and its write leaves the count
    over the rows: before refusing, the rows are counted."""
    index = MemoryIndex()
    seq = await make_sequencer(index=index, repeats_max=2)
    d = fresh()
    await seq.submit("acme", [d])
    name = tenant_index().prefix("acme", d.multihash)[1:]
    await index.write_batch({count_key(name): (2).to_bytes(4, "big")})  # one row, a count of 2
    await seq.submit("acme", [d])
    assert await index.get(count_key(name)) == (2).to_bytes(4, "big")
    with pytest.raises(RepeatsCapped):
        await seq.submit("acme", [d])


async def test_erasure_sets_the_count_back(make_sequencer: MakeSequencer) -> None:
    index = MemoryIndex()
    seq = await make_sequencer(index=index, repeats_max=2)
    eraser = Eraser(index=index, tenant_index=tenant_index())
    d = fresh()
    await seq.submit("acme", [d, d])
    with pytest.raises(RepeatsCapped):
        await seq.submit("acme", [d])
    assert await eraser.forget("acme", d.multihash, wait_s=0) == 2
    name = tenant_index().prefix("acme", d.multihash)[1:]
    assert await index.get(count_key(name)) is None
    await seq.submit("acme", [d, d])  # the tenant may notarize it anew, up to the cap
    with pytest.raises(RepeatsCapped):
        await seq.submit("acme", [d])


async def test_the_count_survives_a_restart(make_sequencer: MakeSequencer, tmp_path: Path) -> None:
    store, d = MemoryStore(), fresh()
    index = RocksIndex.open(tmp_path / "index")
    seq = await make_sequencer(store, index, repeats_max=2)
    await seq.submit("acme", [d, d])
    await seq.close()
    await index.close()

    reopened = RocksIndex.open(tmp_path / "index")
    try:
        again = await make_sequencer(store, reopened, repeats_max=2)
        with pytest.raises(RepeatsCapped):
            await again.submit("acme", [d])
        await again.submit("acme", [fresh()])  # the restarted anchor works otherwise
        assert await found(again, "acme", d) == 2
        await again.close()
    finally:
        await reopened.close()


async def test_requests_without_digests_pass_through() -> None:
    """A request of no digests (the pre-made entries of a SCITT statement carry none) is admitted
    as it is, alone in its batch or not, and counts nothing."""

    class Bare:
        def __init__(self, tenant: str, digests: list[Digest]) -> None:
            self.tenant, self.digests = tenant, digests
            self.future: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    index = MemoryIndex()
    cap = RepeatCap(index=index, tenant_index=tenant_index(), cap=2)
    bare = Bare("", [])
    assert await cap.admit([bare]) == ([bare], {})
    d = fresh()
    full = Bare("acme", [d, d, d])
    admitted, puts = await cap.admit([bare, full])
    assert admitted == [bare] and puts == {} and isinstance(full.future.exception(), RepeatsCapped)
