"""The `evm` anchor, pure part: the NotarAnchor call and event encoding, and the check of an
anchor record against JSON-RPC answers fetched by the caller (SPEC §4).

``anchor(bytes32 originHash, uint64 treeSize, bytes32 root)`` emits
``Anchored(bytes32 indexed originHash, uint64 treeSize, bytes32 root)`` with originHash =
SHA-256(origin); for an aggregate of checkpoints (SPEC §10), originHash = SHA-256(ORIGIN +
"/aggregate") and treeSize, root are the aggregate's. A record is ``{type, chain_id, contract,
tx_hash, block_number, block_hash, tree_size, root}`` (plus ``aggregate`` for an aggregate); hashes
and addresses are 0x-prefixed hex, numbers are JSON integers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from merkle.aggregate import AGGREGATE_SUFFIX, AnchorTarget
from merkle.checkpoint import Checkpoint

# keccak256("anchor(bytes32,uint64,bytes32)")[:4] and keccak256("Anchored(bytes32,uint64,bytes32)"),
# checked against a Keccak implementation in tests/merkle/test_anchor_evm.py.
ANCHOR_SELECTOR = bytes.fromhex("70c127c6")
ANCHORED_TOPIC = "0xbea4d11b910aad40d2df2a90d97a3329219b6389f85777c99daad7eb5fafd439"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


def origin_hash(origin: str) -> bytes:
    return hashlib.sha256(origin.encode("utf-8")).digest()


def aggregate_origin_hash(origin: str) -> bytes:
    """The ``originHash`` of an aggregate anchored by the log ``origin``: SHA-256(origin + "/aggregate")."""
    return origin_hash(origin + AGGREGATE_SUFFIX)


def calldata(origin_digest: bytes, tree_size: int, root: bytes) -> bytes:
    """The transaction data of ``anchor(originHash, treeSize, root)``."""
    return ANCHOR_SELECTOR + origin_digest + tree_size.to_bytes(32, "big") + root


def anchor_calldata(cp: Checkpoint) -> bytes:
    """The transaction data of ``anchor(originHash, treeSize, root)`` for ``cp``."""
    return calldata(origin_hash(cp.origin), cp.size, cp.root)


def event_data(cp: Checkpoint) -> bytes:
    """The non-indexed data of the ``Anchored`` event for ``cp``: treeSize, root."""
    return cp.size.to_bytes(32, "big") + cp.root


@dataclass(frozen=True)
class EvmRecord:
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    block_hash: str
    tree_size: int
    root: str


def parse_record(record: Mapping[str, Any]) -> EvmRecord:
    """The record's fields, lower-cased; ValueError naming the first one that is wrong."""
    for name in ("chain_id", "block_number", "tree_size"):
        v = record.get(name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"evm record {name} must be a non-negative integer")
    if not isinstance(record.get("contract"), str) or not _ADDRESS.fullmatch(record["contract"]):
        raise ValueError("evm record contract must be a 0x-prefixed 20-byte address")
    for name in ("tx_hash", "block_hash", "root"):
        if not isinstance(record.get(name), str) or not _HASH.fullmatch(record[name]):
            raise ValueError(f"evm record {name} must be 0x-prefixed 32-byte hex")
    return EvmRecord(
        record["chain_id"], record["contract"].lower(), record["tx_hash"].lower(),
        record["block_number"], record["block_hash"].lower(), record["tree_size"], record["root"].lower(),
    )


def _hex_int(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"expected a hex quantity, got {value!r}")
    return int(value, 16)


def _logs(tx_receipt: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The receipt's logs; ValueError unless a list of objects whose topics are lists (a node's
    answer is not trusted to be well formed)."""
    logs = tx_receipt.get("logs", [])
    if not isinstance(logs, list) or not all(
        isinstance(log, Mapping) and isinstance(log.get("topics", []), list) for log in logs
    ):
        raise ValueError("the transaction receipt's logs are not a list of log objects")
    return logs


def check_receipt(
    record: Mapping[str, Any],
    target: AnchorTarget,
    *,
    tx_receipt: Mapping[str, Any] | None,
    chain_id: int,
    head: int,
    canonical_hash: str | None,
    confirmations: int,
    contract: str | None = None,
) -> tuple[bool, str]:
    """Whether an evm record (its fields) holds on chain for ``target`` (the receipt's checkpoint,
    or the aggregate including it), given what the chain answered: ``tx_receipt``
    (eth_getTransactionReceipt of the record's tx, None if unknown), ``chain_id`` (eth_chainId),
    ``head`` (eth_blockNumber), ``canonical_hash`` (hash of the canonical block at the record's
    height), ``confirmations`` wanted, and ``contract`` when the verifier trusts one address only.

    The transaction must have succeeded, be sent to the contract and emit from it an ``Anchored``
    event with the target's origin hash (``AnchorTarget.evm_origin_hashes``), tree size and root,
    in the record's block, which is still canonical with ``confirmations`` blocks (itself included)."""
    r = parse_record(record)
    if (r.tree_size, r.root) != (target.size, "0x" + target.root.hex()):
        return False, "the record names another tree than the one it must commit to"
    if r.chain_id != chain_id:
        return False, f"the record is on chain {r.chain_id}, the RPC serves chain {chain_id}"
    if contract is not None and r.contract != contract.lower():
        return False, f"the record names contract {r.contract}, not the trusted {contract.lower()}"
    if tx_receipt is None:
        return False, f"transaction {r.tx_hash} is not on chain"
    if _hex_int(tx_receipt.get("status")) != 1:
        return False, f"transaction {r.tx_hash} failed"
    if str(tx_receipt.get("to") or "").lower() != r.contract:
        return False, f"transaction {r.tx_hash} was not sent to {r.contract}"
    number, block = _hex_int(tx_receipt.get("blockNumber")), str(tx_receipt.get("blockHash")).lower()
    if (number, block) != (r.block_number, r.block_hash):
        return False, f"transaction {r.tx_hash} is in block {number}, not the record's"
    if canonical_hash is None or canonical_hash.lower() != r.block_hash:
        return False, f"block {r.block_number} of the record is no longer on the canonical chain"
    topics = [[ANCHORED_TOPIC, "0x" + h.hex()] for h in target.evm_origin_hashes()]
    data = "0x" + (target.size.to_bytes(32, "big") + target.root).hex()
    found = any(
        str(log.get("address", "")).lower() == r.contract
        and [str(t).lower() for t in log.get("topics", [])] in topics
        and str(log.get("data", "")).lower() == data
        for log in _logs(tx_receipt)
    )
    if not found:
        return False, "no Anchored event with this origin hash, tree size and root"
    depth = head - r.block_number + 1
    if depth < confirmations:
        return False, f"block {r.block_number} has {max(depth, 0)} confirmations, {confirmations} needed"
    return True, f"anchored on chain {r.chain_id} in block {r.block_number} ({depth} confirmations)"
