"""kill -9 under load: the anchor 20 times (topology on SeaweedFS and the embedded server), an
ingest and a verify pod 5 times each; nothing acknowledged is lost (loadtest/reliability)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import run_scenario


@pytest.mark.parametrize("name", ["kill9-anchor", "kill9-embedded", "kill9-ingest", "kill9-verify"])
async def test_kill_9_loses_nothing(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    outcome = await run_scenario(name, tmp_path, request)
    assert outcome.faults >= (20 if name in ("kill9-anchor", "kill9-embedded") else 5)
    assert outcome.verdict["acknowledged"] > 0 and outcome.verdict["lost"] == 0
