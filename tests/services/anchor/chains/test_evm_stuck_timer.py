"""The EVM transactor's "stuck" timer runs on monotonic time: a wall-clock step neither fires it
nor holds it back, and a journal written on another boot (or by a version that kept wall time)
restarts it rather than waiting out the difference."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from services.anchor.chains.evm_tx import Journal, Pending, Transactor


class Replaced(Exception):
    pass


class PendingForEver:
    """A node on which the transaction sits in the pool, never mined."""

    async def receipt(self, tx_hash: str) -> None:
        return None

    async def nonce(self, address: str, block: str) -> int:
        return 7

    async def transaction(self, tx_hash: str) -> dict[str, Any]:
        return {"hash": tx_hash}


def test_the_default_clock_is_monotonic(account: LocalAccount) -> None:
    tx = Transactor(rpc=PendingForEver(), account=account, journal=Journal(None))  # type: ignore[arg-type]
    assert tx._clock is time.monotonic


@pytest.mark.parametrize("journaled_since", [1_800_000_000.0, 1_000.0])
async def test_a_pending_transaction_is_replaced_after_stuck_s_of_this_clock(
    account: LocalAccount, journaled_since: float
) -> None:
    now = [1_000.0]

    async def sleep(s: float) -> None:
        now[0] += s
        assert now[0] < 10_000, "never replaced"  # bounds the loop: the bug waited 1.8e9 s

    tx = Transactor(
        rpc=PendingForEver(),  # type: ignore[arg-type]
        account=account,
        journal=Journal(None),
        poll_s=1.0,
        stuck_s=120.0,
        clock=lambda: now[0],
        sleep=sleep,
    )

    async def replace(p: Pending) -> None:
        raise Replaced

    tx._replace = replace  # type: ignore[method-assign]
    p = Pending(
        7, "0x" + "11" * 20, "0x", 21_000, {}, sent=[{"hash": "0x" + "22" * 32}], since=journaled_since
    )
    with pytest.raises(Replaced):
        await tx.wait_final(p)
    assert 120 < now[0] - 1_000.0 <= 122  # after stuck_s of this clock, not 1.8e9 s
