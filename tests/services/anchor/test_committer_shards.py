"""Shard 0's committer over several shards' logs in one store (real sequencers, the real local
chain): one block per round for an aggregate of every shard's latest checkpoint, a record under
each shard's prefix carrying its path, receipts of every shard that verify with merkle; with one
shard, records as before shards; the table read each round (a shard added, frozen or freezing);
a shard whose checkpoint its keys did not sign left out; a restart that anchors nothing twice;
only the anchor of ordinal 0 aggregates, also once shard 0 is frozen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from merkle import verify_receipt
from merkle.anchors.evm import aggregate_origin_hash
from merkle.anchors.local import verify_chain
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor.chains import AggregateTarget, Anchorable, Anchored, Backend
from services.anchor.chains.local import LocalChain
from services.anchor.committer import Committer
from services.common.components import CommitterConfig
from services.published import layout
from services.published.anchors import AnchorStore
from services.published.shards import update_table, with_state
from storage.memory import MemoryStore
from tests.services.anchor.shard_logs import ShardLog, start_shards, stop_shards


def digests(tag: str, n: int) -> list[str]:
    return [f"blake3:{(tag.encode().hex() + f'{i:04x}').ljust(64, '0')}" for i in range(n)]


async def fill(shards: list[ShardLog], tag: str) -> None:
    """Two entries in every shard, published."""
    for log in shards:
        await log.notarize(digests(f"{tag}{log.shard.id}", 2))
        await log.published()


@pytest.fixture
async def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def shards(store: MemoryStore) -> AsyncIterator[list[ShardLog]]:
    logs = await start_shards(store, 3)
    yield logs
    await stop_shards(logs)


def committer(store: MemoryStore, log: ShardLog, *backends: Backend) -> Committer:
    """The committer of `log`'s anchor; by default with the local chain, which lives under `log/`
    whichever shard's anchor keeps it (services.anchor.committer.build_backends)."""
    chain = LocalChain(store=store, signer=log.keys.log)
    return Committer(
        store=store,
        backends=list(backends) or [chain],
        config=CommitterConfig(interval_s=3600, prefix=log.shard.prefix),
        log_key=log.keys.log.verifier(),
    )


async def blocks(store: MemoryStore) -> list[str]:
    return sorted([k async for k in store.list(layout.local_chain())])


async def test_one_aggregate_per_round_for_every_shard(store: MemoryStore, shards: list[ShardLog]) -> None:
    sequenced = [await log.notarize(digests(f"s{log.shard.id}", 3 + log.shard.id)) for log in shards]
    for log in shards:
        await log.published()
    c = committer(store, shards[0])
    assert await c.run_once("local")
    assert len(await blocks(store)) == 1, "one local block for all shards"
    assert not await c.run_once("local"), "no shard grew: nothing to anchor"
    zero_key = shards[0].keys.log.verifier().to_key()
    for log, receipts in zip(shards, sequenced, strict=True):
        for r in receipts:
            upgraded = await log.receipt(store, r)
            assert upgraded is not None and upgraded.tree_size == log.sequencer.size
            (record,) = upgraded.anchors
            member = record.fields()["aggregate"]
            assert (member["size"], member["index"]) == (3, log.shard.id)
            assert record.fields()["origin"] == shards[0].shard.origin + "/aggregate"
            assert record.fields()["tree_size"] == 3
            result = verify_receipt(upgraded, keys=[*log.verifier_keys, zero_key], digest=str(r.digest))
            assert result.valid, result.failed
            (check,) = [c for c in result.checks if c.name == "anchor 1 (local)"]
            assert "for an aggregate of 3 checkpoints" in check.detail
            if log.shard.id > 0:  # the block is shard 0's: without its key it is not trusted
                alone = verify_receipt(upgraded, keys=log.verifier_keys, digest=str(r.digest))
                assert [c.name for c in alone.failed] == ["anchor 1 (local)"]

    # only shard 2 grows: the next round anchors a new aggregate; the others keep their sizes
    sizes = [log.sequencer.size for log in shards]
    (late,) = await shards[2].notarize(digests("late", 1))
    await shards[2].published()
    assert await c.run_once("local")
    assert len(await blocks(store)) == 2
    for log, size in zip(shards, sizes, strict=True):
        anchored = await AnchorStore(store, prefix=log.shard.prefix).sizes()
        assert anchored == ([size] if log.shard.id < 2 else [size, size + 1])
    upgraded = await shards[2].receipt(store, late)
    assert upgraded is not None
    assert verify_receipt(upgraded, keys=[*shards[2].verifier_keys, zero_key], digest=str(late.digest)).valid


async def test_with_one_shard_records_are_as_before_shards() -> None:
    """The same log anchored without a table and with a table of that one shard: same objects,
    same record members, no `aggregate`."""
    made = []
    for with_table in (False, True):
        store = MemoryStore()
        (log,) = await start_shards(store, 1)
        if not with_table:
            await store.delete("private/shards.json")
        await log.notarize(digests("one", 4))
        await log.published()
        assert await committer(store, log).run_once("local")
        records = await AnchorStore(store).latest()
        assert records is not None
        made.append((sorted([k async for k in store.list("private/log/anchors/")]), records))
        await stop_shards([log])
    (plain_keys, plain), (table_keys, tabled) = made
    assert plain_keys == table_keys
    assert [sorted(r) for r in plain.records] == [sorted(r) for r in tabled.records]
    assert "aggregate" not in tabled.records[0] and tabled.records[0]["tree_size"] == 4


async def test_the_chain_audits_clean_from_one_log_to_aggregates_and_back_to_fewer(
    store: MemoryStore, shards: list[ShardLog]
) -> None:
    """Shard 0 anchored alone (its own tree of 20), then aggregates of 3 and, a shard frozen, of 2:
    an aggregate's size counts shards, so it is named apart and the chain never reads as shrinking
    (CI once found `block 1: tree of … shrinks` on exactly this)."""
    await shards[0].notarize(digests("alone", 20))
    await shards[0].published()
    c = committer(store, shards[0])
    assert await c.run_once("local")
    for log in shards[1:]:
        await log.notarize(digests(f"later{log.shard.id}", 2))
        await log.published()
    assert await c.run_once("local")
    await update_table(store, lambda t: with_state(t, 1, "frozen"))
    await shards[2].notarize(digests("grow", 1))
    await shards[2].published()
    assert await c.run_once("local")
    chain = await LocalChain(store=store, signer=shards[0].keys.log).blocks()
    origin = shards[0].shard.origin
    assert [(b["origin"], b["tree_size"]) for b in chain] == [
        (origin, 20), (origin + "/aggregate", 3), (origin + "/aggregate", 2)
    ]
    zero_key = shards[0].keys.log.verifier().to_key()
    assert verify_chain(chain, [zero_key]) == []
    assert verify_chain(chain, [shards[1].keys.log.verifier().to_key()]) == [
        f"block {i}: no valid signature by a trusted log key" for i in range(3)
    ], "an aggregate's block is signed by the aggregating log's key, not any shard's"


async def test_the_table_decides_which_shards_each_round_holds(
    store: MemoryStore, shards: list[ShardLog]
) -> None:
    await fill(shards, "t")
    c = committer(store, shards[0])
    await update_table(store, lambda t: with_state(t, 1, "frozen"))
    assert await c.run_once("local")
    assert await AnchorStore(store, prefix=shards[1].shard.prefix).sizes() == [], "frozen: left out"
    record = await AnchorStore(store, prefix=shards[2].shard.prefix).latest()
    assert record is not None and record.records[0]["aggregate"]["size"] == 2

    # a shard added while the committer runs joins the next round; a freezing one stays in
    (added,) = await start_shards(store, 1, first=3)
    try:
        await added.notarize(digests("new", 1))
        await added.published()
        await update_table(store, lambda t: with_state(t, 2, "freezing"))
        assert await c.run_once("local")
        assert len(await blocks(store)) == 2
        found = await AnchorStore(store, prefix=added.shard.prefix).latest()
        assert found is not None
        assert {k: found.records[0]["aggregate"][k] for k in ("size", "index")} == {"size": 3, "index": 2}
        for log in (shards[0], shards[2]):  # not grown: the record of the first round stands
            kept = await AnchorStore(store, prefix=log.shard.prefix).sizes()
            assert kept == [log.sequencer.size]
    finally:
        await stop_shards([added])


async def test_a_checkpoint_its_shard_did_not_sign_is_left_out(
    store: MemoryStore, shards: list[ShardLog]
) -> None:
    await fill(shards, "f")
    await stop_shards(shards[1:])
    forger = Signer.generate(shards[1].shard.origin)  # right name, not the shard's key
    forged = Checkpoint(shards[1].shard.origin, 99, bytes(32))
    note = sign_checkpoint(forged, forger, CosignatureSigner.generate(forged.origin + "/clock"), 1)
    await store.put(layout.checkpoint_key(shards[1].shard.prefix), note.encode())
    assert await committer(store, shards[0]).run_once("local")
    assert await AnchorStore(store, prefix=shards[1].shard.prefix).sizes() == []
    found = await AnchorStore(store, prefix=shards[2].shard.prefix).latest()
    assert found is not None
    member = found.records[0]["aggregate"]
    assert (member["size"], member["index"]) == (2, 1), "shards 0 and 2 alone"


class Counting:
    """A local chain that counts what it is asked to anchor."""

    def __init__(self, chain: LocalChain) -> None:
        self.kind, self._chain, self.calls = "local", chain, 0

    async def anchor(self, target: Anchorable) -> Anchored:
        self.calls += 1
        return await self._chain.anchor(target)

    async def close(self) -> None:
        return None


async def test_a_restart_anchors_nothing_twice(store: MemoryStore, shards: list[ShardLog]) -> None:
    await fill(shards, "r")
    assert await committer(store, shards[0]).run_once("local")
    again = Counting(LocalChain(store=store, signer=shards[0].keys.log))
    restarted = committer(store, shards[0], again)
    await restarted.start()
    await asyncio.sleep(0.1)  # its first round ran
    assert again.calls == 0 and len(await blocks(store)) == 1
    own = await restarted.round_target()  # what the witness client has cosigned: shard 0's own
    assert own is not None and (own.origin, own.size) == (shards[0].shard.origin, shards[0].sequencer.size)
    assert restarted.status["local"].anchored_size == shards[0].sequencer.size
    await shards[1].notarize(digests("after", 1))
    await shards[1].published()
    assert await restarted.run_once("local") and again.calls == 1
    await restarted.close()
    st = restarted.status["local"]
    assert st.shards == {log.shard.prefix: log.sequencer.size for log in shards}
    assert st.records == 1, "one record, stored in every shard"


async def test_only_the_anchor_of_ordinal_0_aggregates(store: MemoryStore, shards: list[ShardLog]) -> None:
    """Another shard's committer (an anchor pod of split roles) anchors nothing while the table
    lists other shards: the aggregate anchors its checkpoints (one EVM account, one local chain);
    it shows what the aggregate anchored of its log."""
    await fill(shards, "o")
    c = committer(store, shards[1])
    assert await c.latest() is None and not await c.run_once("local")
    assert [k async for k in store.list("private/") if "/anchors/" in k] == []
    # its status (metrics, readyz) follows what the aggregating anchor stored for its log
    assert await committer(store, shards[0]).run_once("local")
    await c.start()
    await asyncio.sleep(0.1)  # its first round ran
    await c.close()
    assert c.status["local"].anchored_size == shards[1].sequencer.size and c.status["local"].records == 0


async def test_aggregation_outlives_shard_0(store: MemoryStore, shards: list[ShardLog]) -> None:
    """Shards frozen by time: once shard 0 is frozen, the shard that ordinal 0 claims next
    aggregates; its key signs the blocks, the EVM origin hash still names the deployment's ORIGIN."""
    await fill(shards, "z")
    await update_table(store, lambda t: with_state(t, 0, "frozen"))
    (new,) = await start_shards(store, 1, first=0)  # ordinal 0 claims a new shard
    try:
        assert new.shard.id == 3 and new.shard.ordinal == 0
        await new.notarize(digests("z3", 1))
        await new.published()
        c = committer(store, new)
        target = await c.latest()
        assert isinstance(target, AggregateTarget)
        assert [h.shard for h in target.heads] == [1, 2, 3]
        assert (target.origin, target.base) == (new.shard.origin, shards[0].shard.origin)
        assert target.origin_hash == aggregate_origin_hash(shards[0].shard.origin)
        assert await c.run_once("local")
        for log in (shards[1], shards[2], new):
            found = await AnchorStore(store, prefix=log.shard.prefix).latest()
            assert found is not None and found.records[0]["origin"] == new.shard.origin + "/aggregate"
        (sequenced,) = await shards[2].notarize(digests("z2-late", 1))
        await shards[2].published()
        assert await c.run_once("local")
        upgraded = await shards[2].receipt(store, sequenced)
        assert upgraded is not None
        keys = [*shards[2].verifier_keys, new.keys.log.verifier().to_key()]
        assert verify_receipt(upgraded, keys=keys, digest=str(sequenced.digest)).valid
    finally:
        await stop_shards([new])
