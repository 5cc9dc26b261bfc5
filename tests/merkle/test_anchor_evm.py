"""The pure part of the evm anchor: encodings against a Keccak implementation, and the verdicts of
`check_receipt` on JSON-RPC answers."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eth_utils.crypto import keccak

from merkle import AnchorTarget, make_aggregate
from merkle.anchors.evm import (
    ANCHOR_SELECTOR,
    ANCHORED_TOPIC,
    aggregate_origin_hash,
    anchor_calldata,
    calldata,
    check_receipt,
    event_data,
    origin_hash,
    parse_record,
)
from merkle.checkpoint import Checkpoint

CP = Checkpoint("evm.notar.test/log", 1234, bytes(range(32)))
TARGET = AnchorTarget.of(CP, CP.format())
CONTRACT = "0x" + "ab" * 20
TX, BLOCK = "0x" + "cd" * 32, "0x" + "ef" * 32


def test_selector_and_topic_are_the_keccak_of_the_signatures() -> None:
    assert keccak(text="anchor(bytes32,uint64,bytes32)")[:4] == ANCHOR_SELECTOR
    assert "0x" + keccak(text="Anchored(bytes32,uint64,bytes32)").hex() == ANCHORED_TOPIC


def test_calldata_is_the_abi_encoding() -> None:
    data = anchor_calldata(CP)
    assert len(data) == 4 + 3 * 32
    assert data[4:36] == hashlib.sha256(b"evm.notar.test/log").digest() == origin_hash(CP.origin)
    assert int.from_bytes(data[36:68], "big") == 1234 and data[68:] == CP.root
    assert event_data(CP) == data[36:]
    assert calldata(origin_hash(CP.origin), CP.size, CP.root) == data
    assert aggregate_origin_hash("o/log") == hashlib.sha256(b"o/log/aggregate").digest()


def record(**change: Any) -> dict[str, Any]:
    return {"type": "evm", "chain_id": 5, "contract": CONTRACT, "tx_hash": TX, "block_number": 100,
            "block_hash": BLOCK, "tree_size": 1234, "root": "0x" + CP.root.hex(), **change}


def receipt(**change: Any) -> dict[str, Any]:
    log = {"address": CONTRACT, "topics": [ANCHORED_TOPIC, "0x" + origin_hash(CP.origin).hex()],
           "data": "0x" + event_data(CP).hex()}
    return {"status": "0x1", "to": CONTRACT.upper().replace("0X", "0x"), "blockNumber": hex(100),
            "blockHash": BLOCK, "transactionHash": TX, "logs": [log], **change}


def check(rec: dict[str, Any] | None = None, **answers: Any) -> tuple[bool, str]:
    kw: dict[str, Any] = {"tx_receipt": receipt(), "chain_id": 5, "head": 101, "canonical_hash": BLOCK,
                          "confirmations": 2, **answers}
    return check_receipt(rec or record(), TARGET, **kw)


def test_a_final_anchor_holds() -> None:
    assert check() == (True, "anchored on chain 5 in block 100 (2 confirmations)")
    assert check(contract=CONTRACT.upper().replace("0X", "0x"))[0]


@pytest.mark.parametrize(
    ("rec", "answers", "why"),
    [
        (record(tree_size=1), {}, "another tree"),
        (record(root="0x" + "00" * 32), {}, "another tree"),
        (None, {"chain_id": 1}, "on chain 5"),
        (None, {"contract": "0x" + "12" * 20}, "not the trusted"),
        (None, {"tx_receipt": None}, "not on chain"),
        (None, {"tx_receipt": receipt(status="0x0")}, "failed"),
        (None, {"tx_receipt": receipt(to="0x" + "12" * 20)}, "not sent to"),
        (None, {"tx_receipt": receipt(blockNumber=hex(99))}, "not the record's"),
        (None, {"canonical_hash": "0x" + "99" * 32}, "no longer on the canonical chain"),
        (None, {"canonical_hash": None}, "no longer on the canonical chain"),
        (None, {"tx_receipt": receipt(logs=[])}, "no Anchored event"),
        (None, {"tx_receipt": receipt(logs=[{**receipt()["logs"][0], "address": "0x" + "12" * 20}])},
         "no Anchored event"),
        (None, {"tx_receipt": receipt(logs=[{**receipt()["logs"][0], "topics": [ANCHORED_TOPIC, TX]}])},
         "no Anchored event"),
        (None, {"tx_receipt": receipt(logs=[{**receipt()["logs"][0], "data": "0x" + "00" * 64}])},
         "no Anchored event"),
        (None, {"head": 100}, "1 confirmations, 2 needed"),
    ],
)
def test_what_does_not_hold(rec: dict[str, Any] | None, answers: dict[str, Any], why: str) -> None:
    ok, detail = check(rec, **answers)
    assert not ok and why in detail


@pytest.mark.parametrize("field", ["chain_id", "contract", "tx_hash", "block_number", "block_hash", "root"])
def test_malformed_records_raise(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_record(record(**{field: "nope"}))


# An aggregate of the checkpoints of shards 0, 2 and 7 (SPEC §10), anchored by shard 0's log.
SHARDS = [Checkpoint(o, 10 + i, hashlib.sha256(o.encode()).digest()) for i, o in
          enumerate(["evm.notar.test/log", "evm.notar.test/log/2", "evm.notar.test/log/7"])]
AGG_ROOT, AGGREGATES = make_aggregate(SHARDS)


def aggregated(i: int, topic_origin: bytes) -> tuple[bool, str]:
    target = AnchorTarget.of(SHARDS[i], SHARDS[i].format(), AGGREGATES[i])
    rec = record(tree_size=3, root="0x" + AGG_ROOT.hex(), aggregate=AGGREGATES[i].to_obj())
    data = "0x" + (3).to_bytes(32, "big").hex() + AGG_ROOT.hex()
    log = {"address": CONTRACT, "topics": [ANCHORED_TOPIC, "0x" + topic_origin.hex()], "data": data}
    return check_receipt(rec, target, tx_receipt=receipt(logs=[log]), chain_id=5, head=101,
                         canonical_hash=BLOCK, confirmations=2)


@pytest.mark.parametrize("i", [0, 1, 2])
def test_an_aggregate_is_anchored_under_the_aggregating_origin(i: int) -> None:
    assert aggregated(i, aggregate_origin_hash("evm.notar.test/log")) == (
        True, "anchored on chain 5 in block 100 (2 confirmations)"
    )
    # the receipt's own origin hash, or its aggregate under another log, is not that event
    assert not aggregated(i, origin_hash(SHARDS[i].origin))[0]
    assert not aggregated(i, aggregate_origin_hash("other.test/log"))[0]
    if i:
        assert not aggregated(i, aggregate_origin_hash("evm.notar.test"))[0]


def test_an_aggregated_record_is_checked_against_the_aggregate_not_the_checkpoint() -> None:
    target = AnchorTarget.of(SHARDS[1], SHARDS[1].format(), AGGREGATES[1])
    rec = record(tree_size=SHARDS[1].size, root="0x" + SHARDS[1].root.hex())
    ok, why = check_receipt(rec, target, tx_receipt=receipt(), chain_id=5, head=101, canonical_hash=BLOCK,
                            confirmations=1)
    assert not ok and "another tree" in why


@pytest.mark.parametrize(
    ("origin", "bases"),
    [
        ("notar.example.org/log", ["notar.example.org/log"]),
        ("notar.example.org/log/3", ["notar.example.org/log/3", "notar.example.org/log"]),
        ("notar.example.org/12/log", ["notar.example.org/12/log"]),  # only a last /<digits> names a shard
        ("example/12/log/40", ["example/12/log/40", "example/12/log"]),
    ],
)
def test_aggregate_origin_hashes(origin: str, bases: list[str]) -> None:
    cp = Checkpoint(origin, 1, bytes(32))
    (agg,) = make_aggregate([cp])[1]
    got = AnchorTarget.of(cp, cp.format(), agg).evm_origin_hashes()
    assert got == tuple(aggregate_origin_hash(b) for b in bases)
    assert AnchorTarget.of(cp, cp.format()).evm_origin_hashes() == (origin_hash(origin),)
