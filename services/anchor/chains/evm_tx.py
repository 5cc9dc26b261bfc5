"""Sending one EVM transaction to finality: local signing, fees, nonces, a journal, re-submission.

Signing is local with eth-account, whose secp256k1 runs on coincurve (libsecp256k1) when that is
installed, as here: no node holds the key, and the account is the only one to manage nonces.
At most one transaction is in flight. It is written to a journal (fsynced) *before* it is
broadcast, so a restart picks it up where it was: still pending, mined, or vanished (dropped from
the pool, or reorged out), in which case the very same signed bytes are broadcast again, or, if
its nonce was taken meanwhile, a new transaction is signed; so is one whose nonce is above the
account's count of mined transactions (the chain lost earlier ones: it would wait for ever). A new
nonce is the account's count of mined transactions, which fills any gap left by a dropped
transaction. Fees are EIP-1559 (legacy gasPrice on chains without a base fee), bumped by 12.5%
when a transaction stays pending too long.
A transaction counts only once its block has ``confirmations`` blocks (itself included) and is
still the canonical block at its height.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from services.anchor.chains import AnchorError
from services.anchor.chains.evm_rpc import JsonRpc, RpcError, quantity

DEFAULT_TIP = 10**9  # 1 gwei when the node cannot suggest a priority fee
BUMP = 1.125


class TxFailed(AnchorError):
    """The transaction was mined but reverted, or was refused for good (e.g. out of funds)."""


@dataclass
class Pending:
    nonce: int
    to: str | None
    data: str
    gas: int
    context: dict[str, Any]
    sent: list[dict[str, Any]] = field(default_factory=list)  # every signed version: hash, raw, fees
    since: float = 0.0


class Journal:
    """The in-flight transaction, in one JSON file replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: Pending | None = None

    def load(self) -> Pending | None:
        if self.path is None:
            return self._memory
        try:
            return Pending(**orjson.loads(self.path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as e:
            raise AnchorError(f"the EVM journal {self.path} is unreadable: {e}; inspect or remove it") from e

    def save(self, p: Pending) -> None:
        self._memory = p
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, orjson.dumps(asdict(p)))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def clear(self) -> None:
        self._memory = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class Transactor:
    def __init__(
        self,
        *,
        rpc: JsonRpc,
        account: LocalAccount,
        journal: Journal,
        confirmations: int = 1,
        poll_s: float = 1.0,
        stuck_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,  # for `since`: a wall-clock step fires no timer
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rpc, self.account, self.journal = rpc, account, journal
        self.confirmations, self._poll, self._stuck = confirmations, poll_s, stuck_s
        self._clock, self._sleep = clock, sleep
        self._chain_id: int | None = None

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = await self.rpc.chain_id()
        return self._chain_id

    async def _fees(self, bump_from: dict[str, Any] | None = None) -> dict[str, int]:
        latest = await self.rpc.block("latest")
        base = latest.get("baseFeePerGas") if latest else None
        if base is None:  # a chain without EIP-1559: legacy gas price
            price = quantity(await self.rpc.call("eth_gasPrice"))
            if bump_from:
                price = max(price, int(bump_from["gasPrice"] * BUMP) + 1)
            return {"gasPrice": price}
        try:
            tip = quantity(await self.rpc.call("eth_maxPriorityFeePerGas"))
        except RpcError as e:
            if e.code is None:
                raise
            tip = DEFAULT_TIP
        fee = 2 * quantity(base) + tip
        if bump_from:
            tip = max(tip, int(bump_from["maxPriorityFeePerGas"] * BUMP) + 1)
            fee = max(fee, int(bump_from["maxFeePerGas"] * BUMP) + 1, tip)
        return {"maxFeePerGas": fee, "maxPriorityFeePerGas": tip}

    async def _sign(self, p: Pending, fees: dict[str, int]) -> dict[str, Any]:
        tx: dict[str, Any] = {
            "chainId": await self.chain_id(),
            "nonce": p.nonce,
            "value": 0,
            "data": p.data,
            "gas": p.gas,
            **fees,
        }
        if "maxFeePerGas" in fees:
            tx["type"] = 2
        if p.to is not None:
            tx["to"] = to_checksum_address(p.to)  # eth-account refuses lower-case addresses
        signed = self.account.sign_transaction(tx)
        return {
            "hash": "0x" + signed.hash.hex().removeprefix("0x"),
            "raw": signed.raw_transaction.hex().removeprefix("0x"),
            **fees,
        }

    async def submit(self, to: str | None, data: bytes, context: dict[str, Any]) -> Pending:
        """Sign a new transaction, journal it, broadcast it."""
        call: dict[str, Any] = {"from": self.account.address, "data": "0x" + data.hex()}
        if to is not None:
            call["to"] = to
        gas = int(quantity(await self.rpc.call("eth_estimateGas", call)) * 1.25) + 1000
        nonce = await self.rpc.nonce(self.account.address, "latest")
        p = Pending(nonce, to, "0x" + data.hex(), gas, context, since=self._clock())
        p.sent.append(await self._sign(p, await self._fees()))
        self.journal.save(p)
        await self._broadcast(p)
        return p

    async def _broadcast(self, p: Pending) -> None:
        try:
            await self.rpc.send_raw(bytes.fromhex(p.sent[-1]["raw"]))
        except RpcError as e:
            text = e.node_message.lower()
            if e.code is None or "already known" in text or "already imported" in text:
                return  # maybe sent; the journal keeps it and the wait finds out
            if "insufficient funds" in text:
                self.journal.clear()
                raise TxFailed(f"the EVM account {self.account.address} has insufficient funds: {e}") from e
            if "nonce too low" in text:
                return  # taken meanwhile: the wait sees the nonce used and signs anew
            if "underpriced" in text:
                await self._replace(p)
                return
            self.journal.clear()
            raise TxFailed(f"the EVM node refused the transaction: {e}") from e

    async def _replace(self, p: Pending) -> None:
        p.sent.append(await self._sign(p, await self._fees(bump_from=p.sent[-1])))
        p.since = self._clock()
        self.journal.save(p)
        await self._broadcast(p)

    async def _mined(self, p: Pending) -> dict[str, Any] | None:
        for s in reversed(p.sent):
            r = await self.rpc.receipt(s["hash"])
            if r is not None and r.get("blockHash"):
                return r
        return None

    async def wait_final(self, p: Pending) -> dict[str, Any]:
        """The receipt of ``p`` once final; RpcError (journal kept) when the node fails,
        TxFailed (journal cleared) when the transaction reverted."""
        while True:
            receipt = await self._mined(p)
            if receipt is not None:
                if quantity(receipt.get("status")) != 1:
                    self.journal.clear()
                    raise TxFailed(f"transaction {receipt.get('transactionHash')} reverted")
                number = quantity(receipt["blockNumber"])
                if await self.rpc.block_number() - number + 1 >= self.confirmations and (
                    await self.rpc.block_hash(number) == str(receipt["blockHash"]).lower()
                ):
                    return receipt
            elif (count := await self.rpc.nonce(self.account.address, "latest")) < p.nonce:
                # Below its nonce is a gap only this account could fill: the chain lost mined
                # transactions of ours (a reorg deeper than the confirmations, a node that lost
                # blocks), and it would wait behind the gap for ever. Sign it anew at the gap.
                await self._sign_anew(p, count)
            elif any([await self.rpc.transaction(s["hash"]) for s in p.sent]):
                if p.since > self._clock():  # journaled on another boot (or in wall time): restart it
                    p.since = self._clock()
                if self._clock() - p.since > self._stuck:
                    await self._replace(p)
            elif count > p.nonce:
                if await self._mined(p) is not None:
                    continue  # mined between the two reads
                await self._sign_anew(p, count)  # vanished and its nonce taken by another transaction
            else:  # vanished (dropped, or reorged out): the same signed bytes once more
                await self._broadcast(p)
            await self._sleep(self._poll)

    async def _sign_anew(self, p: Pending, nonce: int) -> None:
        p.nonce = nonce
        p.sent, p.since = [], self._clock()
        p.sent.append(await self._sign(p, await self._fees()))
        self.journal.save(p)
        await self._broadcast(p)
