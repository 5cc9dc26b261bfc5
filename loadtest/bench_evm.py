"""EVM anchor benchmark: local transaction signing per secp256k1 backend, and whole anchors per
second against a real anvil (sign, journal with fsync, broadcast, wait for the receipt).

Signing rates are medians over rounds, backends interleaved within each round. The anvil figure
is sequential on purpose: the committer has one anchor transaction in flight at a time.

    .venv/bin/python -m loadtest.bench_evm                # 2,000 signatures x 5 rounds, 200 anchors
    .venv/bin/python -m loadtest.bench_evm --quick        # 200 x 3, 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_keys.backends.native.main import NativeECCBackend
from eth_keys.datatypes import PrivateKey

from merkle.anchors.evm import anchor_calldata
from merkle.checkpoint import Checkpoint
from services.anchor.chains import Target
from services.anchor.chains.evm import EvmAnchor, deploy
from services.anchor.chains.evm_rpc import JsonRpc
from services.anchor.chains.evm_tx import Journal, Transactor

KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")  # anvil's first
BACKENDS: dict[str, Any] = {"coincurve": CoinCurveECCBackend, "pure python": NativeECCBackend}


@contextlib.contextmanager
def backend_env(backend: str) -> Iterator[None]:
    """eth-account signs with eth-keys' default backend, which ECC_BACKEND_CLASS names (read each
    time a key object is made, also while signing); unset, eth-keys takes coincurve when it is
    installed, as in notar."""
    cls = BACKENDS[backend]
    os.environ["ECC_BACKEND_CLASS"] = f"{cls.__module__}.{cls.__name__}"
    try:
        assert isinstance(PrivateKey(KEY).backend, cls)
        yield
    finally:
        del os.environ["ECC_BACKEND_CLASS"]


def account() -> LocalAccount:
    acct: LocalAccount = Account.from_key(KEY)
    return acct


def sign_rate(acct: LocalAccount, n: int) -> float:
    cp = Checkpoint("bench.notar/log", 1, bytes(32))
    tx: dict[str, Any] = {
        "type": 2, "chainId": 31337, "to": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "value": 0,
        "data": anchor_calldata(cp), "gas": 60_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
    }
    start = time.perf_counter()
    for nonce in range(n):
        acct.sign_transaction({**tx, "nonce": nonce})
    return n / (time.perf_counter() - start)


def ecdsa_rate(backend: str, n: int) -> float:
    key = PrivateKey(KEY, backend=BACKENDS[backend]())
    digests = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    start = time.perf_counter()
    for d in digests:
        key.sign_msg_hash(d)
    return n / (time.perf_counter() - start)


def bench_signing(n: int, rounds: int) -> dict[tuple[str, str], float]:
    """Median rates by (what, backend): whole transactions, and the bare ECDSA signature."""
    rates: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        order = list(BACKENDS)[r % 2:] + list(BACKENDS)[: r % 2]
        for backend in order:
            with backend_env(backend):
                rates.setdefault(("tx", backend), []).append(sign_rate(account(), n))
            rates.setdefault(("ecdsa", backend), []).append(ecdsa_rate(backend, n))
    return {k: statistics.median(v) for k, v in rates.items()}


async def bench_anvil(n: int) -> float:
    from tests.anvil import Anvil

    node = Anvil()
    node.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tx = Transactor(rpc=JsonRpc(node.url), account=account(),
                            journal=Journal(Path(tmp) / "journal.json"), poll_s=0.005)
            contract = await deploy(tx)
            evm = EvmAnchor(tx=tx, contract=contract)
            from merkle.checkpoint import sign_checkpoint
            from merkle.cosignature import CosignatureSigner
            from merkle.note import Signer

            log, clock = Signer.generate("bench.notar/log"), CosignatureSigner.generate("bench.notar/clock")
            targets = [
                Target.from_note(sign_checkpoint(
                    Checkpoint("bench.notar/log", i + 1, hashlib.sha256(bytes([i % 256])).digest()),
                    log, clock, 1_700_000_000))
                for i in range(n)
            ]
            start = time.perf_counter()
            for t in targets:
                await evm.anchor(t)
            rate = n / (time.perf_counter() - start)
            await evm.close()
            return rate
    finally:
        node.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    ns = p.parse_args(argv)
    n, rounds, anchors = (200, 3, 20) if ns.quick else (2000, 5, 200)
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for (what, backend), rate in sorted(bench_signing(n, rounds).items()):
        label = "sign EIP-1559 anchor tx, eth-account" if what == "tx" else "bare secp256k1 ECDSA sign"
        print(f"{label} + {backend}: {rate:,.0f}/s")
    rate = asyncio.run(bench_anvil(anchors))
    print(f"anchor to final receipt on anvil (1 confirmation, sequential): {rate:,.1f} anchors/s")


if __name__ == "__main__":
    main()
