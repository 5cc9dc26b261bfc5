"""Chain cost of aggregated anchoring (issue 17 item 4): gas per anchor interval with K shards.

For each K, K shards' logs sit in one in-memory store (shard table, each shard's key history and
its signed checkpoint, as their anchors publish them); shard 0's real committer anchors them to a
real anvil (`tests.anvil`, the repository's NotarAnchor contract) once per interval, after every
shard's checkpoint grew. Each interval's transaction receipt gives its gas. K = 1 is a plain
record (no aggregate, as before shards); K > 1 one aggregate: one transaction whatever K, so the
cost per interval is flat, where one anchor per shard would cost K transactions. The local chain
and the RFC 3161 kind behave the same way (one block, one token per interval) and are counted in
tests/services/anchor; they cost no gas.

    .venv/bin/python -m loadtest.bench_aggregate_gas                  # K = 1, 2, 4, 8; 5 intervals
    .venv/bin/python -m loadtest.bench_aggregate_gas --shards 1 16 --intervals 3
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import platform
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor.chains.evm import EvmAnchor, deploy
from services.anchor.chains.evm_rpc import JsonRpc, quantity
from services.anchor.chains.evm_tx import Journal, Transactor
from services.anchor.committer import Committer
from services.common.components import CommitterConfig
from services.published import layout
from services.published.anchors import AnchorStore
from services.published.history import write_first
from services.published.shards import claim
from storage.memory import MemoryStore

BASE = "gas.notar.test/log"
KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")  # anvil's first


@dataclass
class Shard:
    prefix: str
    origin: str
    log: Signer
    clock: CosignatureSigner
    size: int = 0

    async def grow(self, store: MemoryStore, entries: int) -> None:
        """Publish a checkpoint `entries` larger (the root need not be a real tree's here)."""
        self.size += entries
        root = hashlib.sha256(f"{self.origin} {self.size}".encode()).digest()
        note = sign_checkpoint(Checkpoint(self.origin, self.size, root), self.log, self.clock, 1_700_000_000)
        await store.put(layout.checkpoint_key(self.prefix), note.encode())


async def shards_in(store: MemoryStore, k: int) -> list[Shard]:
    made = []
    for ordinal in range(k):
        row = await claim(store, BASE, ordinal)
        shard = Shard(row.prefix, row.origin, Signer.generate(row.origin),
                      CosignatureSigner.generate(row.origin + "/clock"))
        await write_first(store, shard.log.verifier(), shard.clock.verifier(), row.prefix)
        made.append(shard)
    return made


@dataclass
class Interval:
    transactions: int  # sent by the committer's account during the interval
    gas: int  # of the interval's anchor transaction


async def gas_per_interval(url: str, contract: str, k: int, intervals: int, work: Path) -> list[Interval]:
    """What each anchor interval cost on chain with `k` shards."""
    store = MemoryStore()
    shards = await shards_in(store, k)
    account: LocalAccount = Account.from_key(KEY)
    journal = Journal(work / f"journal-{k}.json")
    tx = Transactor(rpc=JsonRpc(url), account=account, journal=journal, poll_s=0.005)
    committer = Committer(
        store=store,
        backends=[EvmAnchor(tx=tx, contract=contract)],
        config=CommitterConfig(kinds=("evm",)),
        log_key=shards[0].log.verifier(),
    )
    out = []
    try:
        for interval in range(intervals):
            nonce = await tx.rpc.call("eth_getTransactionCount", account.address, "latest")
            for shard in shards:
                await shard.grow(store, 1_000 + 37 * interval)  # a busy interval: every shard grew
            if not await committer.run_once("evm"):
                raise AssertionError(f"K={k}: interval {interval} anchored nothing")
            found = await AnchorStore(store, prefix=shards[-1].prefix).latest()
            assert found is not None
            (record,) = found.records
            assert ("aggregate" in record) == (k > 1), record
            receipt = await tx.rpc.call("eth_getTransactionReceipt", record["tx_hash"])
            sent = await tx.rpc.call("eth_getTransactionCount", account.address, "latest")
            out.append(Interval(quantity(sent) - quantity(nonce), quantity(receipt["gasUsed"])))
    finally:
        await committer.close()
    return out


async def measure(ks: list[int], intervals: int) -> dict[int, list[Interval]]:
    from tests.anvil import Anvil

    node = Anvil()
    node.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            deployer = Transactor(rpc=JsonRpc(node.url), account=Account.from_key(KEY),
                                  journal=Journal(work / "deploy.json"), poll_s=0.005)
            contract = await deploy(deployer)
            await deployer.rpc.close()
            return {k: await gas_per_interval(node.url, contract, k, intervals, work) for k in ks}
    finally:
        node.stop()


def report(measured: dict[int, list[Interval]]) -> list[str]:
    one = min(measured)
    plain = statistics.median(i.gas / i.transactions for i in measured[one])
    lines = [
        "| shards K | transactions per interval | gas per interval (median) | min–max | "
        f"one anchor per shard instead (K × gas of K={one}) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for k, intervals in sorted(measured.items()):
        txs = sorted({i.transactions for i in intervals})
        gas = [i.gas for i in intervals]
        lines.append(
            f"| {k} | {'/'.join(map(str, txs))} | {statistics.median(gas):,.0f} | "
            f"{min(gas):,}–{max(gas):,} | {k * plain:,.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--intervals", type=int, default=5)
    ns = p.parse_args(argv)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; anvil on loopback")
    gas = asyncio.run(measure(ns.shards, ns.intervals))
    print("\n".join(report(gas)))


if __name__ == "__main__":
    main()
