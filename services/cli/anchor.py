"""`notar anchor deploy`: deploy the NotarAnchor contract with EVM_KEY_FILE's account over EVM_RPC.

Waits until the deployment has EVM_CONFIRMATIONS confirmations and prints the contract's address
alone on the last line of standard output, for `NOTAR_EVM_CONTRACT=$(notar anchor deploy | tail -1)`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING

from services.cli.commands import config_from

if TYPE_CHECKING:
    from services.anchor.chains.evm import EvmConfig


async def _deploy(config: EvmConfig) -> str:
    from services.anchor.chains.evm import artifact, deploy, transactor  # eth-account: slow import

    tx = transactor(config)
    try:
        chain = await tx.chain_id()
        print(
            f"deploying NotarAnchor ({artifact()['compiler']}) from {tx.account.address} on chain {chain}, "
            f"waiting for {config.confirmations} confirmation(s)…",
            flush=True,
        )
        return await deploy(tx)
    finally:
        await tx.rpc.close()


def anchor_deploy(ns: argparse.Namespace) -> int:
    chains = config_from(ns, dict(os.environ)).chains
    from services.anchor.chains.evm import EvmConfig

    why = "to deploy the contract"
    config = EvmConfig(
        rpc=chains.evm_rpc.need(why),
        key_file=chains.evm_key_file.need(why),
        contract=None,
        confirmations=chains.evm_confirmations,
    )
    address = asyncio.run(_deploy(config))
    print(f"deployed; set NOTAR_EVM_CONTRACT={address} (or EVM_CONTRACT in notar.toml)")
    print(address)
    return 0
