"""The checker over K shards can fail: two shard logs (origins O and O/1 under `log/` and `log/1/`,
built with merkle/ as tests/reliability/test_checker.py builds one) in one store with their shard
table and one aggregated local anchoring by shard 0; then each broken cross-shard promise — a
receipt naming no shard, an entry lost from one shard, aggregate leaves out of shard order, an
aggregate record whose block is not on shard 0's chain — must be reported."""

from __future__ import annotations

import os
from dataclasses import replace

import orjson

from loadtest.reliability.shard_checker import ShardsVerdict, check_shards, keys_by_origin
from loadtest.reliability.workload import Acked
from merkle import make_entry, parse_digest, root
from merkle.aggregate import make_aggregate
from merkle.anchors.local import make_block
from merkle.checkpoint import Checkpoint
from services.published import layout
from services.published.shards import claim, shard_origin, shard_prefix
from storage.memory import MemoryStore
from tests.reliability.test_checker import SIZE, SUBJECT, Log

BASE = "shards.checker.notar.test/log"


async def deployment(*, order: tuple[int, ...] = (0, 1)) -> tuple[MemoryStore, list[Log]]:
    """Two shards published in one store, anchored once together (leaves in ``order``)."""
    logs = [Log(shard_origin(BASE, i), shard_prefix(i)) for i in (0, 1)]
    store = MemoryStore()
    for i, log in enumerate(logs):
        await log.store(store)
        await claim(store, BASE, i)
    checkpoints = [Checkpoint(log.origin, SIZE, root(log.leaves)) for log in logs]
    agg_root, proofs = make_aggregate([checkpoints[i] for i in order])
    aggregate = Checkpoint(logs[0].origin, 2, agg_root)  # a block's origin is the aggregating log's
    block = make_block(previous=None, time=1_800_000_000, checkpoint=aggregate, signer=logs[0].signer)
    await store.put(layout.local_block_key(0, logs[0].prefix), orjson.dumps(block))
    for leaf, i in enumerate(order):
        log = logs[i]
        await store.put(layout.anchor_checkpoint_key(SIZE, log.prefix), log.note.encode())
        record = {"type": "local", **block, "aggregate": proofs[leaf].to_obj()}
        await store.put(layout.anchor_record_key(SIZE, "local", log.prefix), orjson.dumps(record))
    return store, logs


def published(logs: list[Log]) -> dict[str, list[str]]:
    listed = [{"origin": g.origin, "log": g.keys[0], "clock": g.keys[1], "until_size": None} for g in logs]
    return keys_by_origin({"logs": listed})


async def checked(store: MemoryStore, logs: list[Log], acked: list[Acked] | None = None) -> ShardsVerdict:
    if acked is None:
        acked = [a for log in logs for a in log.acked]
    notes = [log.note for log in logs]
    return await check_shards(store, base=BASE, keys=published(logs), acked=acked, checkpoints=notes)


async def test_two_honest_shards_anchored_together_pass() -> None:
    store, logs = await deployment()
    v = await checked(store, logs)
    assert v.ok, v.summary()
    assert sorted(v.shards) == [0, 1] and v.summary()["acknowledged"] == 2 * SIZE
    assert v.aggregates_checked == 1
    assert all(s.anchors_checked == {"local": 1} for s in v.shards.values())


async def test_a_receipt_naming_no_shard_of_the_table_is_reported() -> None:
    store, logs = await deployment()
    stray = replace(logs[1].acked[0], origin=shard_origin(BASE, 7))
    v = await checked(store, logs, acked=[*logs[0].acked, stray])
    assert not v.ok and len(v.unknown_origin) == 1 and "/7" in v.unknown_origin[0]


async def test_an_entry_lost_from_one_shard_is_reported_for_that_shard() -> None:
    store, logs = await deployment()
    other = f"sha256:{os.urandom(32).hex()}"
    entry = make_entry(parse_digest(other), b"\x02" * 16, SUBJECT).hex()
    lost = replace(logs[1].acked[5], digest=other, entry=entry, salt="02" * 16)
    v = await checked(store, logs, acked=[*logs[0].acked, *logs[1].acked[:5], lost])
    assert not v.ok
    assert v.shards[0].ok and v.shards[1].lost and other in v.shards[1].lost[0]


async def test_aggregate_leaves_out_of_shard_order_are_reported() -> None:
    store, logs = await deployment(order=(1, 0))  # each record verifies on its own
    v = await checked(store, logs)
    assert all(s.ok for s in v.shards.values()), v.summary()
    assert not v.ok and any("shard-id order" in b for b in v.bad_aggregates)


async def test_an_aggregate_record_whose_block_is_not_on_shard_0s_chain_is_reported() -> None:
    store, logs = await deployment()
    await store.delete(layout.local_block_key(0, logs[0].prefix))
    v = await checked(store, logs)
    assert not v.ok and any("local chain" in b for b in v.bad_aggregates)


async def test_one_log_without_a_shard_table_is_shard_0() -> None:
    log = Log(BASE)
    v = await check_shards(
        await log.store(), base=BASE, keys=published([log]), acked=log.acked, checkpoints=[log.note]
    )
    assert v.ok and list(v.shards) == [0] and v.shards[0].acknowledged == SIZE
