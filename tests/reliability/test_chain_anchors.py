"""Chain anchors under faults, with the log under load (loadtest/reliability/scenarios/anvil.py
and tsa.py): anvil stopped and restarted from its state, reorgs shallower than EVM_CONFIRMATIONS,
and a TSA down, slow or answering garbage. Nothing acknowledged is lost, every anchor record in
the store holds (EVM on the chain, RFC 3161 under the CA), and anchoring resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import run_scenario


def _sound(outcome_verdict: dict[str, object], kind: str) -> None:
    assert outcome_verdict["lost"] == 0 and outcome_verdict["bad_anchors"] == 0
    checked = outcome_verdict["anchors_checked"]
    assert isinstance(checked, dict) and checked.get(kind, 0) > 0, f"no {kind} record was checked"


async def test_anvil_outage(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    o = await run_scenario("anvil-outage", tmp_path, request)
    _sound(o.verdict, "evm")
    assert o.extra["resumed"] == o.faults >= 2
    assert o.extra["acknowledged_while_down"] > 0, "the log stopped sequencing while anvil was down"
    assert o.extra["receipts_upgraded_with_evm"] == o.faults
    assert o.extra["evm_records_checked_when_written"] > 0


async def test_anvil_reorg(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    o = await run_scenario("anvil-reorg", tmp_path, request)
    _sound(o.verdict, "evm")
    assert o.faults >= 6
    assert o.extra["resubmitted_after_reorg"] >= 1, "no dropped anchor transaction was sent again"
    assert o.extra["evm_records_checked_when_written"] > 0


async def test_tsa_faults(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    o = await run_scenario("tsa-faults", tmp_path, request)
    _sound(o.verdict, "rfc3161")
    assert o.faults == 9 and o.extra["failing_shown"] == 9 and o.extra["resumed"] == 9
    assert o.extra["bad_tokens_signed"] == 3 and o.extra["bad_tokens_kept"] == 0
