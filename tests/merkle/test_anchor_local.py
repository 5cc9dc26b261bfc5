"""The local anchor's blocks: canonical bytes, signatures, whole-chain verification, receipts."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from merkle import Anchor, AnchorTarget, AnchorVerdict, Status
from merkle.aggregate import make_aggregate
from merkle.anchors.local import (
    GENESIS_PREV,
    aggregate_block_origin,
    block_hash,
    canonical_bytes,
    local_anchor_verifier,
    make_block,
    signed_by,
    signing_bytes,
    verify_chain,
)
from merkle.checkpoint import Checkpoint
from merkle.note import Signer

ORIGIN = "local.notar.test/log"
KEY = Signer.generate(ORIGIN)
VKEY = KEY.verifier().to_key()


def cp(size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, hashlib.sha256(str(size).encode()).digest())


def chain(n: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for i in range(n):
        blocks.append(make_block(previous=blocks[-1] if blocks else None, time=1000 + i,
                                 checkpoint=cp(10 * (i + 1)), signer=KEY))
    return blocks


def test_canonical_bytes_are_sorted_compact_json() -> None:
    block = chain(1)[0]
    want = (
        '{"height":0,"origin":"local.notar.test/log","prev":"' + GENESIS_PREV + '","root":"'
        + cp(10).root.hex() + '","sig":"' + block["sig"] + '","time":1000,"tree_size":10}'
    )
    assert canonical_bytes(block) == want.encode()
    assert canonical_bytes(dict(reversed(list(block.items())))) == want.encode()
    assert signing_bytes(block) == b"notar.local-anchor.v1\n" + want.replace(
        ',"sig":"' + block["sig"] + '"', "").encode()
    assert block_hash(block) == hashlib.sha256(want.encode()).hexdigest()


def test_blocks_link_and_verify() -> None:
    blocks = chain(4)
    assert [b["height"] for b in blocks] == [0, 1, 2, 3]
    assert blocks[0]["prev"] == GENESIS_PREV
    assert all(blocks[i]["prev"] == block_hash(blocks[i - 1]) for i in range(1, 4))
    assert verify_chain(blocks, [VKEY]) == []
    assert signed_by(blocks[2], [VKEY]) == ORIGIN


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda bs: bs[2].update(tree_size=5), "block 2: no valid signature"),
        (lambda bs: bs[2].update(root="00" * 32), "block 2: no valid signature"),
        (lambda bs: bs.pop(1), "block 1: height is 2"),
        (lambda bs: bs.__setitem__(1, make_block(previous=bs[0], time=5, checkpoint=cp(20), signer=KEY)),
         "block 1: time goes back"),
        (lambda bs: bs.__setitem__(1, make_block(previous=bs[0], time=1001, checkpoint=cp(5), signer=KEY)),
         "block 1: tree of local.notar.test/log shrinks"),
        (lambda bs: bs.__setitem__(1, make_block(previous=None, time=1001, checkpoint=cp(20), signer=KEY)),
         "block 1: height is 0"),
        (lambda bs: bs[1].update(sig=Signer.generate(ORIGIN).sign(signing_bytes(bs[1])).hex()),
         "block 1: block sig must be"),
    ],
)
def test_a_changed_chain_fails(change: Any, problem: str) -> None:
    blocks = chain(4)
    change(blocks)
    problems = verify_chain(blocks, [VKEY])
    assert any(p.startswith(problem) for p in problems), problems


def test_a_rewritten_block_breaks_the_link_after_it() -> None:
    blocks = chain(3)
    blocks[1] = make_block(previous=blocks[0], time=1001, checkpoint=cp(21), signer=KEY)  # re-signed
    assert verify_chain(blocks, [VKEY]) == ["block 2: prev does not hash the block before it"]


def test_untrusted_key_fails() -> None:
    assert verify_chain(chain(2), [Signer.generate(ORIGIN).verifier().to_key()]) == [
        "block 0: no valid signature by a trusted log key",
        "block 1: no valid signature by a trusted log key",
    ]


def target(size: int) -> AnchorTarget:
    return AnchorTarget.of(cp(size), cp(size).format())


def test_anchor_verifier_for_receipts() -> None:
    block = chain(2)[1]
    verify = local_anchor_verifier([VKEY])
    anchor = Anchor.from_obj({"type": "local", **block})
    verdict = verify(anchor, target(20))
    assert verdict.status is Status.OK and verdict.time == 1001
    assert verdict.detail.startswith("block 1 of the local chain, signed by local.notar.test/log at 1970")
    assert verify(anchor, target(30)) == AnchorVerdict(Status.FAILED, "the block commits to another tree")
    assert verify(Anchor.from_obj({**anchor.fields(), "time": 7}), target(20)).status is Status.FAILED
    other_key = local_anchor_verifier([Signer.generate(ORIGIN).verifier().to_key()])
    assert other_key(anchor, target(20)).status is Status.FAILED
    with pytest.raises(ValueError, match="unknown block fields"):
        verify(Anchor.from_obj({**anchor.fields(), "extra": 1}), target(20))
    assert orjson.loads(canonical_bytes(block)) == block


def test_a_block_of_another_origin_commits_only_as_an_aggregate() -> None:
    other = Signer.generate("local.notar.test/log/3")
    theirs = Checkpoint(other.name, 20, cp(20).root)
    block = make_block(previous=None, time=5, checkpoint=theirs, signer=other)
    verify = local_anchor_verifier([VKEY, other.verifier().to_key()])
    verdict = verify(Anchor.from_obj({"type": "local", **block}), target(20))
    assert verdict.status is Status.FAILED and "of log 'local.notar.test/log/3'" in verdict.detail


def test_a_key_signs_only_blocks_of_its_own_name() -> None:
    impostor = Signer("other.test/log", KEY.seed)  # the same key material under another name
    block = make_block(previous=None, time=5, checkpoint=cp(20), signer=impostor)
    assert signed_by(block, [impostor.verifier().to_key()]) is None


def aggregate_block(previous: dict[str, Any] | None, time: int, size: int, origin: str) -> dict[str, Any]:
    """A block of an aggregate of `size` made-up checkpoints, named `origin`, signed by KEY."""
    root, _ = make_aggregate([Checkpoint(f"{ORIGIN}/{i}", 1, bytes(32)) for i in range(size)])
    return make_block(previous=previous, time=time, checkpoint=Checkpoint(origin, size, root), signer=KEY)


def test_aggregates_are_named_apart_so_a_chain_from_one_log_to_shards_audits_clean() -> None:
    """An aggregate's size counts shards: after the log's own tree of 20 it must not read as a
    shrink, and it may fall when a shard is frozen. The log's own tree still may not shrink."""
    blocks = chain(1)  # the log alone, tree of 10
    for time, size in ((1001, 3), (1002, 2)):
        blocks.append(aggregate_block(blocks[-1], time, size, aggregate_block_origin(ORIGIN)))
    blocks.append(make_block(previous=blocks[-1], time=1003, checkpoint=cp(30), signer=KEY))
    assert verify_chain(blocks, [VKEY]) == []
    assert signed_by(blocks[1], [VKEY]) == ORIGIN
    blocks.append(make_block(previous=blocks[-1], time=1004, checkpoint=cp(5), signer=KEY))
    assert verify_chain(blocks, [VKEY]) == ["block 4: tree of local.notar.test/log shrinks"]
    legacy = chain(1)  # blocks made before the suffix: the aggregate under the log's own name
    legacy.append(aggregate_block(legacy[-1], 1001, 3, ORIGIN))
    assert verify_chain(legacy, [VKEY]) == ["block 1: tree of local.notar.test/log shrinks"]


def test_an_aggregate_block_verifies_for_an_aggregate_only() -> None:
    mine, other = cp(20), Checkpoint(f"{ORIGIN}/1", 7, bytes(32))
    root, proofs = make_aggregate([mine, other])
    aggregate = AnchorTarget.of(mine, mine.format(), proofs[0])
    verify = local_anchor_verifier([VKEY])
    for origin in (aggregate_block_origin(ORIGIN), ORIGIN):  # today's blocks, and earlier ones
        block = make_block(previous=None, time=5, checkpoint=Checkpoint(origin, 2, root), signer=KEY)
        record = {"type": "local", **block, "aggregate": proofs[0].to_obj()}
        verdict = verify(Anchor.from_obj(record), aggregate)
        assert verdict.status is Status.OK, (origin, verdict)
        assert "for an aggregate of 2 checkpoints, signed by local.notar.test/log" in verdict.detail
    named_apart = Checkpoint(aggregate_block_origin(ORIGIN), 20, mine.root)
    fake = make_block(previous=None, time=5, checkpoint=named_apart, signer=KEY)
    verdict = verify(Anchor.from_obj({"type": "local", **fake}), target(20))
    assert verdict.status is Status.FAILED and "of log 'local.notar.test/log/aggregate'" in verdict.detail
    named = Signer(aggregate_block_origin(ORIGIN), KEY.seed)  # a key named like an aggregate
    block = make_block(previous=None, time=5, checkpoint=Checkpoint(named.name, 2, root), signer=named)
    assert signed_by(block, [named.verifier().to_key()]) is None
