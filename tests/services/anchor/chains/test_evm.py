"""The evm backend against a real anvil: deploy, anchor, confirmations, an RPC outage with a
restart in the middle, a reorg, a dropped transaction, a taken nonce, a nonce gap, no funds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from eth_account import Account

from merkle.aggregate import AnchorTarget
from merkle.anchors.evm import ANCHORED_TOPIC, aggregate_origin_hash, calldata, origin_hash
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.checks import AnchorVerdict, Status
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor.chains import AggregateTarget, Anchorable, AnchorError, ShardHead, Target
from services.anchor.chains.evm import EvmAnchor, verify_online
from services.anchor.chains.evm_tx import Pending, TxFailed
from tests.anvil import KEY0, Anvil, TcpProxy
from tests.services.anchor.chains.conftest import ORIGIN, MakeTransactor

MakeTarget = Callable[[int], Target]


def at(target: Anchorable) -> AnchorTarget:
    """What an anchor of `target` commits to: its checkpoint, or seen from its first shard's."""
    return target.verifiable()


def held(verdict: AnchorVerdict) -> bool:
    return verdict.status is Status.OK


async def until(cond: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(20):
        while not await cond():
            await asyncio.sleep(0.05)


async def test_anchor_emits_the_event_and_verifies_online(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    evm = EvmAnchor(tx=make_tx(anvil.url), contract=contract)
    target = make_target(42)
    done = await evm.anchor(target)
    r = done.record
    assert done.target == target
    assert r["type"] == "evm" and r["chain_id"] == 31337 and r["contract"] == contract
    assert (r["tree_size"], r["root"]) == (42, "0x" + target.checkpoint.root.hex())
    receipt = await anvil.rpc("eth_getTransactionReceipt", r["tx_hash"])
    (log,) = receipt["logs"]
    assert log["topics"] == [ANCHORED_TOPIC, "0x" + origin_hash(target.checkpoint.origin).hex()]
    assert int(log["data"][2:66], 16) == 42 and log["data"][66:] == target.checkpoint.root.hex()
    rpc = make_tx(anvil.url).rpc
    verdict = await verify_online(r, at(target), rpc=rpc, confirmations=1, contract=contract)
    assert (verdict.status, verdict.detail) == (
        Status.OK, f"anchored on chain 31337 in block {r['block_number']} (1 confirmations)")
    block = await anvil.rpc("eth_getBlockByNumber", hex(r["block_number"]), False)
    assert verdict.time == int(block["timestamp"], 16), "the block's time is the anchor's"
    deep = await verify_online(r, at(target), rpc=rpc, confirmations=5)
    assert deep.status is Status.FAILED and "confirmations" in deep.detail
    other = at(make_target(43))
    assert not held(await verify_online(r, other, rpc=rpc, confirmations=1))
    assert not held(await verify_online({**r, "contract": "0x" + "11" * 20}, at(target), rpc=rpc,
                                    confirmations=1))
    assert not held(await verify_online({**r, "block_hash": "0x" + "22" * 32}, at(target), rpc=rpc,
                                    confirmations=1))
    assert not held(await verify_online({**r, "tx_hash": "0x" + "33" * 32}, at(target), rpc=rpc,
                                    confirmations=1))
    assert not held(await verify_online({**r, "chain_id": 1}, at(target), rpc=rpc, confirmations=1))
    assert not (tmp := make_tx(anvil.url)).journal.load(), f"journal left behind: {tmp.journal.path}"


async def test_no_record_before_the_confirmations(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    evm = EvmAnchor(tx=make_tx(anvil.url, confirmations=3), contract=contract)
    task = asyncio.create_task(evm.anchor(make_target(7)))
    await until(lambda: _mined(anvil, evm))
    await asyncio.sleep(0.3)
    assert not task.done(), "a record before its block had 3 confirmations"
    await anvil.mine(1)
    await asyncio.sleep(0.3)
    assert not task.done()
    await anvil.mine(1)
    done = await asyncio.wait_for(task, 10)
    assert await anvil.head() - done.record["block_number"] + 1 >= 3


async def _mined(anvil: Anvil, evm: EvmAnchor) -> bool:
    p = evm._tx.journal.load()
    return p is not None and await anvil.rpc("eth_getTransactionReceipt", p.sent[-1]["hash"]) is not None


async def test_rpc_outage_then_restart_finishes_the_same_transaction(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget, tmp_path: Path
) -> None:
    proxy = TcpProxy(anvil.port)
    await proxy.restore()
    journal = tmp_path / "evm.json"
    first = EvmAnchor(tx=make_tx(proxy.url, confirmations=2, journal=journal), contract=contract)
    task = asyncio.create_task(first.anchor(make_target(10)))
    await until(lambda: _mined(anvil, first))
    await proxy.cut()
    with pytest.raises(AnchorError, match="EVM RPC"):
        await asyncio.wait_for(task, 10)
    sent = first._tx.journal.load()
    assert sent is not None and sent.context["note"] == make_target(10).note
    with pytest.raises(AnchorError):  # still down: a clear error, no record
        await first.anchor(make_target(11))
    await proxy.restore()
    await anvil.mine(1)
    restarted = EvmAnchor(tx=make_tx(proxy.url, confirmations=2, journal=journal), contract=contract)
    done = await restarted.anchor(make_target(11))
    assert done.target.size == 10, "the transaction in flight is finished first"
    assert done.record["tx_hash"] == sent.sent[-1]["hash"]
    assert restarted._tx.journal.load() is None
    nonce = int(await anvil.rpc("eth_getTransactionCount", restarted.address, "latest"), 16)
    assert nonce == 2, "deploy + one anchor: nothing was sent twice"
    await proxy.cut()


async def test_reorged_out_transaction_is_sent_again(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    evm = EvmAnchor(tx=make_tx(anvil.url, confirmations=3), contract=contract)
    snapshot = await anvil.rpc("evm_snapshot")
    task = asyncio.create_task(evm.anchor(make_target(5)))
    await until(lambda: _mined(anvil, evm))
    p = evm._tx.journal.load()
    assert p is not None
    orphan = (await anvil.rpc("eth_getTransactionReceipt", p.sent[-1]["hash"]))["blockHash"]
    assert await anvil.rpc("evm_revert", snapshot)
    assert not task.done()
    await until(lambda: _mined(anvil, evm))  # re-sent and mined again (automine)
    await anvil.mine(2)
    done = await asyncio.wait_for(task, 10)
    assert done.record["block_hash"] != orphan
    rpc = make_tx(anvil.url).rpc
    assert held(await verify_online(done.record, at(done.target), rpc=rpc, confirmations=3))


async def test_anvil_reorg_replacing_the_block(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    evm = EvmAnchor(tx=make_tx(anvil.url, confirmations=4), contract=contract)
    task = asyncio.create_task(evm.anchor(make_target(6)))
    await until(lambda: _mined(anvil, evm))
    await anvil.mine(1)
    p = evm._tx.journal.load()
    assert p is not None
    before = (await anvil.rpc("eth_getTransactionReceipt", p.sent[-1]["hash"]))["blockHash"]
    await anvil.rpc("anvil_reorg", 2, [])  # the last two blocks replaced by empty ones
    await asyncio.sleep(0.3)
    assert not task.done()
    await until(lambda: _mined(anvil, evm))
    await anvil.mine(3)
    done = await asyncio.wait_for(task, 10)
    assert done.record["block_hash"] != before.lower()
    assert await anvil.rpc("eth_getBlockByNumber", hex(done.record["block_number"]), False)


async def test_a_reorg_deeper_than_the_confirmations_leaves_no_nonce_gap(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    """A final anchor reorged out together with the next one in flight: the one in flight is
    above a nonce gap that only this account can fill. Found by the anvil chaos scenarios: it
    waited in the pool for ever, and the EVM anchor never recovered."""
    evm = EvmAnchor(tx=make_tx(anvil.url, confirmations=2), contract=contract)
    snapshot = await anvil.rpc("evm_snapshot")
    count = int(await anvil.rpc("eth_getTransactionCount", evm.address, "latest"), 16)
    first = asyncio.create_task(evm.anchor(make_target(1)))
    await until(lambda: _mined(anvil, evm))
    await anvil.mine(1)
    await asyncio.wait_for(first, 10)
    second = asyncio.create_task(evm.anchor(make_target(2)))
    await until(lambda: _mined(anvil, evm))
    p = evm._tx.journal.load()
    assert p is not None and p.nonce == count + 1
    assert await anvil.rpc("evm_revert", snapshot)  # both gone: the one in flight is above a gap
    await until(lambda: _mined(anvil, evm))  # signed anew at the gap, mined (automine)
    await anvil.mine(2)
    done = await asyncio.wait_for(second, 10)
    assert done.target.size == 2
    tx = await anvil.rpc("eth_getTransactionByHash", done.record["tx_hash"])
    assert int(tx["nonce"], 16) == count
    rpc = make_tx(anvil.url).rpc
    assert held(await verify_online(done.record, at(done.target), rpc=rpc, confirmations=2))


async def test_no_contract_at_the_address_is_a_clear_error_and_nothing_is_sent(
    anvil: Anvil, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    """E.g. a chain restarted empty: a transaction to an address without code succeeds and emits
    nothing, so each retry paid for a transaction that could never make a record."""
    evm = EvmAnchor(tx=make_tx(anvil.url), contract="0x" + "5f" * 20)
    with pytest.raises(AnchorError, match=r"no contract at EVM_CONTRACT 0x5f5f.* on chain 31337"):
        await evm.anchor(make_target(1))
    assert await anvil.rpc("eth_getTransactionCount", evm.address, "latest") == "0x0"
    assert evm._tx.journal.load() is None


async def test_journaled_but_never_sent_is_broadcast_as_signed(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    tx = make_tx(anvil.url)
    evm = EvmAnchor(tx=tx, contract=contract)
    p = await _journal_only(tx, contract, make_target(3))
    done = await evm.anchor(make_target(4))
    assert done.target.size == 3 and done.record["tx_hash"] == p.sent[0]["hash"]


async def test_nonce_taken_meanwhile_signs_anew(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    tx = make_tx(anvil.url)
    evm = EvmAnchor(tx=tx, contract=contract)
    p = await _journal_only(tx, contract, make_target(3))
    other = Account.from_key(bytes.fromhex(KEY0)).sign_transaction({  # e.g. an operator's transfer
        "type": 2, "chainId": 31337, "nonce": p.nonce, "to": "0x" + "44" * 20, "value": 1, "gas": 21000,
        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
    await anvil.rpc("eth_sendRawTransaction", "0x" + other.raw_transaction.hex().removeprefix("0x"))
    done = await evm.anchor(make_target(4))
    assert done.target.size == 3 and done.record["tx_hash"] != p.sent[0]["hash"]
    assert held(await verify_online(done.record, at(done.target), rpc=tx.rpc, confirmations=1))


async def test_nonce_gap_is_filled(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    nonce = int(await anvil.rpc("eth_getTransactionCount", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                                "latest"), 16)
    future = Account.from_key(bytes.fromhex(KEY0)).sign_transaction({
        "type": 2, "chainId": 31337, "nonce": nonce + 1, "to": "0x" + "44" * 20, "value": 1,
        "gas": 21000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9})
    await anvil.rpc("eth_sendRawTransaction", "0x" + future.raw_transaction.hex().removeprefix("0x"))
    evm = EvmAnchor(tx=make_tx(anvil.url), contract=contract)
    done = await asyncio.wait_for(evm.anchor(make_target(8)), 20)
    assert int((await anvil.rpc("eth_getTransactionByHash", done.record["tx_hash"]))["nonce"], 16) == nonce


async def test_out_of_funds_is_a_clear_error_and_no_record(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget, tmp_path: Path
) -> None:
    tx = make_tx(anvil.url)
    tx.account = Account.create()
    evm = EvmAnchor(tx=tx, contract=contract)
    with pytest.raises(TxFailed, match="insufficient funds"):
        await evm.anchor(make_target(9))
    assert tx.journal.load() is None, "nothing left in flight"


async def test_an_aggregate_is_one_transaction_that_every_shard_verifies(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    """SPEC §4: anchor(SHA-256(ORIGIN + "/aggregate"), K, root), journaled as the shards'
    checkpoints, so that a restart finishes it as the aggregate it was."""
    shard = ORIGIN + "/1"
    cp = Checkpoint(shard, 5, bytes(range(32)))
    note = sign_checkpoint(cp, Signer.generate(shard), CosignatureSigner.generate(shard + "/clock"), 1)
    heads = [ShardHead(0, "log/", make_target(20)), ShardHead(1, "log/1/", Target.from_note(note))]
    aggregate = AggregateTarget.of(ORIGIN, heads[::-1])
    assert [h.shard for h in aggregate.heads] == [0, 1], "in shard order"
    tx = make_tx(anvil.url)
    p = await _journal_only(tx, contract, aggregate)
    done = await EvmAnchor(tx=make_tx(anvil.url), contract=contract).anchor(make_target(21))
    assert done.target == aggregate and done.record["tx_hash"] == p.sent[0]["hash"]
    assert (done.record["tree_size"], done.record["root"]) == (2, "0x" + aggregate.root.hex())
    (log,) = (await anvil.rpc("eth_getTransactionReceipt", done.record["tx_hash"]))["logs"]
    assert log["topics"] == [ANCHORED_TOPIC, "0x" + aggregate_origin_hash(ORIGIN).hex()]
    for head, proof in zip(aggregate.heads, aggregate.proofs, strict=True):
        target = AnchorTarget.of(head.target.checkpoint, head.target.body, proof)
        assert held(await verify_online(done.record, target, rpc=tx.rpc, confirmations=1))
    wrong = AnchorTarget.of(heads[0].target.checkpoint, heads[0].target.body, aggregate.proofs[1])
    assert not held(await verify_online(done.record, wrong, rpc=tx.rpc, confirmations=1))
    assert not held(await verify_online(done.record, at(make_target(20)), rpc=tx.rpc, confirmations=1))


async def _journal_only(tx: object, contract: str, target: Anchorable) -> Pending:
    """A transaction journaled but never broadcast: a crash between the two."""
    from services.anchor.chains.evm_tx import Transactor

    assert isinstance(tx, Transactor)
    nonce = await tx.rpc.nonce(tx.account.address)
    data = calldata(target.origin_hash, target.size, target.root)
    p = Pending(nonce, contract, "0x" + data.hex(), 100_000, target.context())
    p.sent.append(await tx._sign(p, await tx._fees()))
    tx.journal.save(p)
    return p


async def test_stuck_transaction_is_replaced_with_higher_fees(
    anvil: Anvil, contract: str, make_tx: MakeTransactor, make_target: MakeTarget
) -> None:
    await anvil.rpc("evm_setAutomine", False)
    evm = EvmAnchor(tx=make_tx(anvil.url, stuck_s=0.2), contract=contract)
    task = asyncio.create_task(evm.anchor(make_target(12)))

    async def replaced() -> bool:
        p = evm._tx.journal.load()
        return p is not None and len(p.sent) >= 2

    await until(replaced)
    p = evm._tx.journal.load()
    assert p is not None
    first, second = p.sent[0], p.sent[1]
    assert second["maxPriorityFeePerGas"] > first["maxPriorityFeePerGas"]
    assert second["maxFeePerGas"] > first["maxFeePerGas"]
    await anvil.mine(1)
    done = await asyncio.wait_for(task, 10)
    assert done.record["tx_hash"] in {s["hash"] for s in p.sent[1:]}
