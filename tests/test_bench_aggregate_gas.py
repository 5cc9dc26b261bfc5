"""loadtest/bench_aggregate_gas on a real anvil (small): one transaction per anchor interval
whatever the number of shards, so the gas per interval does not grow with K (issue 17 item 4)."""

from __future__ import annotations

import asyncio

from loadtest.bench_aggregate_gas import measure, report
from tests.anvil import anvil_binary


def test_one_transaction_per_interval_whatever_the_shards() -> None:
    anvil_binary()
    measured = asyncio.run(measure([1, 3, 8], 2))
    assert {k: {i.transactions for i in v} for k, v in measured.items()} == {1: {1}, 3: {1}, 8: {1}}
    plain = max(i.gas for i in measured[1])
    for k in (3, 8):  # the aggregate's call differs from a plain one only in its three words
        assert all(abs(i.gas - plain) < 500 for i in measured[k]), (k, measured[k])
    table = report(measured)
    assert table[-1].startswith("| 8 | 1 | "), table
