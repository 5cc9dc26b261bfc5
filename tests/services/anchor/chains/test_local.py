"""The local backend: a chain of signed blocks in the object store that verifies as a whole,
survives restarts and store faults, and cannot be forked by a second writer."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from merkle.anchors.local import verify_chain
from merkle.note import Signer
from services.anchor.chains import AnchorError, Target
from services.anchor.chains.local import LocalChain
from storage.memory import MemoryStore

MakeTarget = Callable[[int], Target]


def chain(store: MemoryStore, signer: Signer, now: list[float] | None = None) -> LocalChain:
    clock = now or [1_700_000_000.0]
    return LocalChain(store=store, signer=signer, clock=lambda: clock[0])


async def test_blocks_form_a_verifiable_chain(log_signer: Signer, make_target: MakeTarget) -> None:
    store = MemoryStore()
    local = chain(store, log_signer)
    records = [(await local.anchor(make_target(n))).record for n in (3, 9, 27)]
    assert [r["height"] for r in records] == [0, 1, 2]
    assert all(r["type"] == "local" for r in records)
    blocks = await local.blocks()
    assert blocks == [{k: v for k, v in r.items() if k != "type"} for r in records]
    assert sorted(store.objects) == [f"private/log/anchors/local/{h:020d}" for h in range(3)]
    assert verify_chain(blocks, [log_signer.verifier().to_key()]) == []
    again = await local.anchor(make_target(27))
    assert again.record == records[-1] and len(store.objects) == 3, "the same checkpoint twice: no new block"


async def test_a_restart_continues_the_chain(log_signer: Signer, make_target: MakeTarget) -> None:
    store = MemoryStore()
    await chain(store, log_signer).anchor(make_target(1))
    later = chain(store, log_signer, [1_600_000_000.0])  # and a clock that went back
    record = (await later.anchor(make_target(2))).record
    assert record["height"] == 1 and record["time"] == 1_700_000_000
    assert verify_chain(await later.blocks(), [log_signer.verifier().to_key()]) == []


async def test_store_faults_leave_a_valid_chain(log_signer: Signer, make_target: MakeTarget) -> None:
    store = MemoryStore()
    local = chain(store, log_signer)
    await local.anchor(make_target(1))
    store.faults.inject("put_if_absent", stored=True)  # failed but stored
    with pytest.raises(AnchorError, match="could not be extended"):
        await local.anchor(make_target(2))
    store.faults.inject("put_if_absent", stored=False)  # failed and not stored
    with pytest.raises(AnchorError):
        await local.anchor(make_target(3))
    assert (await local.anchor(make_target(3))).record["height"] == 2
    assert verify_chain(await local.blocks(), [log_signer.verifier().to_key()]) == []


async def test_a_second_writer_cannot_fork_the_chain(log_signer: Signer, make_target: MakeTarget) -> None:
    store = MemoryStore()
    a, b = chain(store, log_signer), chain(store, log_signer, [1_700_000_001.0])
    await a.anchor(make_target(1))
    await b.anchor(make_target(2))  # b reads the head written by a
    with pytest.raises(AnchorError):
        await a.anchor(make_target(3))  # a's head is stale: its block 1 would fork
    blocks = await a.blocks()
    assert [orjson.loads(store.objects[k])["tree_size"] for k in sorted(store.objects)] == [1, 2]
    assert verify_chain(blocks, [log_signer.verifier().to_key()]) == []
