"""Aggregated anchors (SPEC §4, §10): one record for the checkpoints of several shards, each
receipt carrying the path from its checkpoint body to the aggregate root. Aggregates of 1, 2 and 5
checkpoints are built by hand (hashlib and the recursive RFC 9162 reference), not by merkle."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from typing import Any

import pytest

from merkle import (
    Aggregate,
    AnchorTarget,
    Checkpoint,
    Status,
    make_aggregate,
    parse_aggregate,
    verify_receipt,
)
from merkle.aggregate import aggregate_body, aggregate_leaf
from merkle.anchors.local import make_block
from tests.merkle.logs import ORIGIN, SIGNED_AT, Log, make_log
from tests.merkle.reference import ref_path, ref_root

SHARDS = {i: make_log(ORIGIN if i == 0 else f"{ORIGIN}/{i}", n=5 + i) for i in range(8)}


def body(log: Log) -> bytes:
    cp = log.checkpoint
    return f"{cp.origin}\n{cp.size}\n{base64.b64encode(cp.root).decode()}\n".encode()


def leaf(log: Log) -> bytes:
    return hashlib.sha256(b"\x00" + body(log)).digest()


def hand_built(shards: list[int]) -> tuple[bytes, list[dict[str, Any]]]:
    """The aggregate root over these shards' checkpoints, and each one's `aggregate` member."""
    leaves = [leaf(SHARDS[s]) for s in shards]
    k = len(leaves)
    return ref_root(leaves), [
        {"size": k, "index": i, "path": [p.hex() for p in ref_path(i, leaves)]} for i in range(k)
    ]


def aggregated_block(root: bytes, k: int, time: int = SIGNED_AT + 5) -> dict[str, Any]:
    """The local block of shard 0's anchor for an aggregate of k checkpoints."""
    return make_block(
        previous=None, time=time, checkpoint=Checkpoint(ORIGIN, k, root), signer=SHARDS[0].signer
    )


def keys_for(shard: int) -> list[str]:
    return [*SHARDS[shard].keys, SHARDS[0].signer.verifier().to_key()]  # shard 0's key signs the chain


CASES = [[0], [0, 3], [0, 1, 2, 5, 7]]


@pytest.mark.parametrize("shards", CASES, ids=lambda s: f"{len(s)} checkpoints")
def test_every_shard_receipt_verifies_against_the_aggregate(shards: list[int]) -> None:
    root, members = hand_built(shards)
    for i, s in enumerate(shards):
        record = {"type": "local", **aggregated_block(root, len(shards)), "aggregate": members[i]}
        receipt = SHARDS[s].receipt(index=2, anchors=[record])
        result = verify_receipt(receipt, keys=keys_for(s))
        assert result.valid, result.failed
        check = result.checks[-1]
        assert check.status is Status.OK and f"for an aggregate of {len(shards)} checkpoints" in check.detail


@pytest.mark.parametrize("shards", CASES, ids=lambda s: f"{len(s)} checkpoints")
def test_merkle_builds_the_same_aggregate(shards: list[int]) -> None:
    root, members = hand_built(shards)
    got_root, proofs = make_aggregate([SHARDS[s].checkpoint for s in shards])
    assert got_root == root and [p.to_obj() for p in proofs] == members
    for s, m in zip(shards, members, strict=True):
        agg = parse_aggregate(m)
        assert agg.root_for(SHARDS[s].checkpoint) == root
        target = AnchorTarget.of(SHARDS[s].checkpoint, SHARDS[s].note.split("\n\n")[0] + "\n", agg)
        assert (target.size, target.root, target.aggregate) == (len(shards), root, agg)
        assert target.stamped == f"notar.aggregate.v1\n{len(shards)}\n{base64.b64encode(root).decode()}\n"


def test_a_leaf_is_the_body_without_extension_lines() -> None:
    cp = SHARDS[2].checkpoint
    with_extension = Checkpoint(cp.origin, cp.size, cp.root, ("an extension",))
    assert aggregate_leaf(with_extension) == aggregate_leaf(cp) == body(SHARDS[2])
    assert aggregate_body(3, cp.root) == Checkpoint("notar.aggregate.v1", 3, cp.root).format()


FIVE = [0, 1, 2, 5, 7]
ROOT5, MEMBERS5 = hand_built(FIVE)


def _verify(shard_pos: int, aggregate: Any, block: dict[str, Any] | None = None) -> Any:
    record = {"type": "local", **(block or aggregated_block(ROOT5, 5)), "aggregate": aggregate}
    s = FIVE[shard_pos]
    return verify_receipt(SHARDS[s].receipt(index=2, anchors=[record]), keys=keys_for(s)).checks[-1]


def _flip(h: str) -> str:
    return ("1" if h[0] != "1" else "2") + h[1:]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda m: {**m, "index": 1}, "does not commit"),  # index 0 and 1 share a path length
        (lambda m: {**m, "path": [_flip(m["path"][0]), *m["path"][1:]]}, "does not commit"),
        (lambda m: {**m, "path": m["path"][:-1]}, "malformed aggregate: aggregate.path does not fit"),
        (
            lambda m: {**m, "path": [*m["path"], m["path"][0]]},
            "malformed aggregate: aggregate.path does not fit",
        ),
        (lambda m: {**m, "size": 6}, "does not commit"),
        (lambda m: {**m, "size": 0}, "malformed aggregate: aggregate.size"),
        (lambda m: {**m, "size": True}, "malformed aggregate: aggregate.size"),
        (lambda m: {**m, "index": 5}, "malformed aggregate: aggregate.index 5 is outside"),
        (lambda m: {**m, "index": -1}, "malformed aggregate: aggregate.index"),
        (lambda m: {**m, "path": "00" * 32}, "malformed aggregate: aggregate.path must be a list"),
        (lambda m: {**m, "path": [m["path"][0].upper()]}, r"malformed aggregate: aggregate.path\[0\]"),
        (lambda m: {**m, "extra": 1}, "malformed aggregate: aggregate has an unknown member 'extra'"),
        (lambda m: [m], "malformed aggregate: aggregate must be an object"),
        (lambda m: {k: v for k, v in m.items() if k != "path"}, "malformed aggregate"),
    ],
)
def test_a_wrong_or_malformed_aggregate_fails_the_anchor(change: Any, why: str) -> None:
    check = _verify(0, change(copy.deepcopy(MEMBERS5[0])))
    assert check.status is Status.FAILED and re.search(why, check.detail), check.detail


def test_a_proof_for_another_shard_fails() -> None:
    assert _verify(2, MEMBERS5[2]).status is Status.OK
    assert _verify(2, MEMBERS5[3]).status is Status.FAILED


def test_the_block_must_be_for_the_aggregate_and_signed_by_a_trusted_key() -> None:
    # a block for the checkpoint itself does not match an aggregated record
    s = SHARDS[FIVE[1]]
    own = make_block(previous=None, time=SIGNED_AT, checkpoint=s.checkpoint, signer=s.signer)
    assert "does not commit" in _verify(1, MEMBERS5[1], own).detail
    # an aggregate block signed by a key the verifier does not trust
    record = {"type": "local", **aggregated_block(ROOT5, 5), "aggregate": MEMBERS5[1]}
    result = verify_receipt(s.receipt(index=2, anchors=[record]), keys=s.keys)
    assert (
        result.checks[-1].status is Status.FAILED
        and "not signed by a trusted key" in result.checks[-1].detail
    )


def test_an_aggregate_anchor_time_is_held_to_the_signed_time() -> None:
    assert _verify(0, MEMBERS5[0], aggregated_block(ROOT5, 5, time=SIGNED_AT - 301)).status is Status.FAILED
    assert _verify(0, MEMBERS5[0], aggregated_block(ROOT5, 5, time=SIGNED_AT - 300)).status is Status.OK


def test_aggregates_of_kinds_without_a_verifier_are_still_matched() -> None:
    s = SHARDS[FIVE[3]]
    evm = {"type": "evm", "tree_size": 5, "root": "0x" + ROOT5.hex(), "aggregate": MEMBERS5[3]}
    result = verify_receipt(s.receipt(index=2, anchors=[evm]), keys=s.keys)
    assert result.checks[-1].status is Status.NOT_CHECKED and result.valid
    wrong = {**evm, "aggregate": MEMBERS5[2]}
    result = verify_receipt(s.receipt(index=2, anchors=[wrong]), keys=s.keys)
    assert result.checks[-1].status is Status.FAILED and not result.valid
    broken = {**evm, "aggregate": {"size": 5}}
    assert (
        verify_receipt(s.receipt(index=2, anchors=[broken]), keys=s.keys).checks[-1].status is Status.FAILED
    )


def test_parse_aggregate_round_trips() -> None:
    agg = parse_aggregate(MEMBERS5[4])
    assert isinstance(agg, Aggregate) and agg.to_obj() == MEMBERS5[4]
    with pytest.raises(ValueError, match="at least one"):
        make_aggregate([])
    with pytest.raises(ValueError, match="at most 64"):
        parse_aggregate({"size": 2, "index": 0, "path": ["00" * 32] * 65})
