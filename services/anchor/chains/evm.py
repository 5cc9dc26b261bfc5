"""The `evm` backend: a NotarAnchor.anchor(originHash, treeSize, root) transaction per checkpoint,
or per aggregate of the shards' checkpoints (originHash = SHA-256(ORIGIN + "/aggregate"), SPEC §4).

The contract (contracts/NotarAnchor.sol, compiled artifact NotarAnchor.json beside this file)
emits ``Anchored``; the record ``{type, chain_id, contract, tx_hash, block_number, block_hash,
tree_size, root}`` is made only once the transaction's block is final (``evm_tx``) and the event
checks out (``merkle.anchors.evm.check_receipt``), the same check ``notar verify --online`` runs.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from merkle.aggregate import AnchorTarget
from merkle.anchors.evm import calldata, check_receipt
from merkle.checks import AnchorVerdict, Status
from services.anchor.chains import Anchorable, Anchored, AnchorError, target_from_context
from services.anchor.chains.evm_rpc import JsonRpc, RpcError, quantity
from services.anchor.chains.evm_tx import Journal, Transactor, TxFailed
from storage.errors import ConfigError

ARTIFACT = Path(__file__).with_name("NotarAnchor.json")


@cache
def artifact() -> dict[str, Any]:
    """The committed compiler output: abi, bytecode, compiler version and settings."""
    data: dict[str, Any] = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class EvmConfig:
    rpc: str
    key_file: Path
    contract: str | None
    confirmations: int = 1
    journal: Path | None = None
    poll_s: float = 1.0
    stuck_s: float = 120.0


def load_account(path: Path, setting: str = "EVM_KEY_FILE") -> LocalAccount:
    """The account of a file holding one hex private key (0x optional); refused when group or
    others may read it, as the log's signing keys are (services/anchor/keys.py)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except OSError as e:
        raise ConfigError(f"{setting}: cannot read {path}: {e.strerror}", setting=setting) from e
    if mode & 0o077:
        raise ConfigError(
            f"{setting}: key file {path} is readable by others; run chmod 600 {path}", setting=setting
        )
    try:
        key = bytes.fromhex(text.removeprefix("0x"))
        if len(key) != 32:
            raise ValueError("not 32 bytes")
        account: LocalAccount = Account.from_key(key)
    except ValueError as e:
        raise ConfigError(
            f"{setting}: {path} must hold a 32-byte hex private key ({e})", setting=setting
        ) from e
    return account


def check_address(value: str, setting: str = "EVM_CONTRACT") -> str:
    text = value.strip()
    if len(text) != 42 or not text.startswith("0x") or any(c not in string.hexdigits for c in text[2:]):
        raise ConfigError(
            f"{setting} must be a 0x-prefixed 20-byte hex address, got {value!r}", setting=setting
        )
    return text.lower()


def transactor(config: EvmConfig) -> Transactor:
    return Transactor(
        rpc=JsonRpc(config.rpc),
        account=load_account(config.key_file),
        journal=Journal(config.journal),
        confirmations=config.confirmations,
        poll_s=config.poll_s,
        stuck_s=config.stuck_s,
    )


class EvmAnchor:
    kind = "evm"

    def __init__(self, *, tx: Transactor, contract: str) -> None:
        self._tx, self.contract = tx, contract.lower()

    @classmethod
    def from_config(cls, config: EvmConfig) -> EvmAnchor:
        if not config.contract:
            raise ConfigError(
                "EVM_CONTRACT is required with ANCHORS=evm: run `notar anchor deploy`", setting="EVM_CONTRACT"
            )
        return cls(tx=transactor(config), contract=check_address(config.contract))

    @property
    def address(self) -> str:
        return str(self._tx.account.address)

    async def anchor(self, target: Anchorable) -> Anchored:
        """Anchor ``target``; if a transaction of an earlier run is still in flight, finish that
        one first and return its record (the committer anchors the newest checkpoint next)."""
        pending = self._tx.journal.load()
        if pending is None:
            await self._check_contract()
            data = calldata(target.origin_hash, target.size, target.root)
            pending = await self._tx.submit(self.contract, data, target.context())
        try:  # a deployment journaled under the same file holds no target
            done = target_from_context(pending.context)
        except ValueError as e:
            self._tx.journal.clear()
            raise AnchorError(f"the EVM journal held no anchor ({pending.context}); cleared it") from e
        receipt = await self._tx.wait_final(pending)
        record = {
            "type": self.kind,
            "chain_id": await self._tx.chain_id(),
            "contract": self.contract,
            "tx_hash": str(receipt["transactionHash"]).lower(),
            "block_number": quantity(receipt["blockNumber"]),
            "block_hash": str(receipt["blockHash"]).lower(),
            "tree_size": done.size,
            "root": "0x" + done.root.hex(),
        }
        verdict = await verify_online(
            record,
            done.verifiable(),
            rpc=self._tx.rpc,
            confirmations=self._tx.confirmations,
            contract=self.contract,
        )
        self._tx.journal.clear()
        if verdict.status is not Status.OK:
            raise AnchorError(f"the EVM anchor transaction does not hold: {verdict.detail}")
        return Anchored(done, record)

    async def _check_contract(self) -> None:
        """AnchorError, before anything is sent, when EVM_CONTRACT holds no code: a call to it
        would succeed, emit nothing and never make a record, however often it is paid for."""
        code = await self._tx.rpc.call("eth_getCode", self.contract, "latest")
        if not isinstance(code, str) or not code.removeprefix("0x").strip("0"):
            raise AnchorError(
                f"there is no contract at EVM_CONTRACT {self.contract} on chain {await self._tx.chain_id()} "
                "(a chain that was reset, or another chain?): deploy it with `notar anchor deploy`"
            )

    async def close(self) -> None:
        await self._tx.rpc.close()


async def verify_online(
    record: Mapping[str, Any],
    target: AnchorTarget,
    *,
    rpc: JsonRpc,
    confirmations: int,
    contract: str | None = None,
) -> AnchorVerdict:
    """Check an evm record (its fields) against the chain behind ``rpc`` for ``target``, the
    checkpoint or the aggregate including it (``merkle.anchors.evm.check_receipt``): the verdict
    an AnchorVerifier gives, with the block's time when the node states it. An RPC that cannot
    answer raises RpcError: that is not a verdict on the record."""
    try:
        tx_hash, number = str(record["tx_hash"]), int(record["block_number"])
    except (KeyError, TypeError, ValueError) as e:
        return AnchorVerdict(Status.FAILED, f"malformed evm record: {e}")
    receipt = await rpc.receipt(tx_hash)
    block = await rpc.block(number)
    try:
        ok, detail = check_receipt(
            record,
            target,
            tx_receipt=receipt,
            chain_id=await rpc.chain_id(),
            head=await rpc.block_number(),
            canonical_hash=str(block["hash"]).lower() if block and block.get("hash") else None,
            confirmations=confirmations,
            contract=contract,
        )
    except ValueError as e:
        return AnchorVerdict(Status.FAILED, f"malformed evm record or answer: {e}")
    if not ok:
        return AnchorVerdict(Status.FAILED, detail)
    stamp = block.get("timestamp") if block else None
    try:
        when = quantity(stamp) if stamp is not None else None
    except ValueError:
        when = None
    return AnchorVerdict(Status.OK, detail, time=when)


async def deploy(tx: Transactor) -> str:
    """Deploy NotarAnchor with the transactor's account; the contract address once final."""
    code = bytes.fromhex(artifact()["bytecode"].removeprefix("0x"))
    pending = await tx.submit(None, code, {"deploy": True})
    try:
        receipt = await tx.wait_final(pending)
    finally:
        tx.journal.clear()
    address = receipt.get("contractAddress")
    if not address:
        raise TxFailed("the deployment transaction created no contract")
    return str(address).lower()


__all__ = ["EvmAnchor", "EvmConfig", "RpcError", "deploy", "load_account", "verify_online"]
