"""loadtest/bench_evm runs (tiny sizes): both signing backends and the anvil round trip."""

from __future__ import annotations

import asyncio

from loadtest.bench_evm import bench_anvil, bench_signing
from tests.anvil import anvil_binary


def test_bench_evm_runs() -> None:
    anvil_binary()
    rates = bench_signing(5, 1)
    assert set(rates) == {(w, b) for w in ("tx", "ecdsa") for b in ("coincurve", "pure python")}
    assert all(r > 0 for r in rates.values())
    assert asyncio.run(bench_anvil(3)) > 0
