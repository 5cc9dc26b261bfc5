"""Servers the chain backends are tested against, started here and stopped afterwards: a real anvil
per test, and a real openssl-backed TSA with its PKI made once per session."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor.chains import Target
from services.anchor.chains.evm import deploy
from services.anchor.chains.evm_rpc import JsonRpc
from services.anchor.chains.evm_tx import Journal, Transactor
from services.common.components import NotarConfig, load
from tests.anvil import KEY0, Anvil
from tests.tsa import LocalTsa, Pki, make_pki

ORIGIN = "chains.notar.test/log"


@pytest.fixture(scope="session")
def log_signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture(scope="session")
def make_target(log_signer: Signer) -> Callable[[int], Target]:
    clock = CosignatureSigner.generate(ORIGIN + "/clock")

    def make(size: int) -> Target:
        cp = Checkpoint(ORIGIN, size, hashlib.sha256(size.to_bytes(8, "big")).digest())
        return Target.from_note(sign_checkpoint(cp, log_signer, clock, 1_700_000_000 + size))

    return make


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tsa(pki: Pki) -> AsyncIterator[LocalTsa]:
    server = LocalTsa(pki)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    node = Anvil()
    node.start()
    yield node
    node.stop()


def anchoring_config(
    tmp: Path, origin: str, anvil: Anvil, contract: str, tsa: LocalTsa, pki: Pki, interval_s: int
) -> NotarConfig:
    """`notar serve`'s settings with ANCHORS=local,evm,rfc3161 on the test's anvil and TSA (the EVM
    key file is anvil's first account, 2 confirmations)."""
    key_file = tmp / "evm.key"
    key_file.write_text(KEY0 + "\n")
    key_file.chmod(0o600)
    return load(flags={
        "DATA_DIR": str(tmp / "data"), "ORIGIN": origin, "BATCH_MS": "10",
        "ANCHORS": "local,evm,rfc3161", "ANCHOR_INTERVAL_S": str(interval_s),
        "EVM_RPC": anvil.url, "EVM_KEY_FILE": str(key_file), "EVM_CONTRACT": contract,
        "EVM_CONFIRMATIONS": "2", "TSA_URL": tsa.url, "TSA_CA_FILE": str(pki.ca_cert),
    }, env={}, config_file=None)  # fmt: skip


@pytest.fixture
async def miner(anvil: Anvil) -> AsyncIterator[None]:
    """A block every 100 ms, so that confirmations come as on a real chain."""

    async def mine() -> None:
        while True:
            await asyncio.sleep(0.1)
            with contextlib.suppress(Exception):
                await anvil.mine(1)

    task = asyncio.create_task(mine())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
def account() -> LocalAccount:
    acct: LocalAccount = Account.from_key(bytes.fromhex(KEY0))
    return acct


MakeTransactor = Callable[..., Transactor]


@pytest.fixture
async def make_tx(account: LocalAccount, tmp_path: Path) -> AsyncIterator[MakeTransactor]:
    made: list[Transactor] = []

    def make(url: str, *, confirmations: int = 1, journal: Path | None = None,
             stuck_s: float = 120.0) -> Transactor:
        tx = Transactor(rpc=JsonRpc(url, timeout_s=2.0), account=account,
                        journal=Journal(journal or tmp_path / "journal.json"),
                        confirmations=confirmations, poll_s=0.05, stuck_s=stuck_s)
        made.append(tx)
        return tx

    yield make
    for tx in made:
        await tx.rpc.close()


@pytest.fixture
async def contract(anvil: Anvil, make_tx: MakeTransactor, tmp_path: Path) -> str:
    return await deploy(make_tx(anvil.url, journal=tmp_path / "deploy.json"))
