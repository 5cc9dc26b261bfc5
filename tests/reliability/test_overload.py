"""Overload at 3x the embedded server's capacity, open loop (loadtest/reliability/scenarios/
overload.py): 503 problem+json with Retry-After and never a timeout or a 500, memory bounded,
back to normal within seconds, nothing acknowledged lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.reliability.scenarios.overload import RECOVERY_MAX_S
from tests.reliability.conftest import run_scenario


async def test_overload_is_pushed_back_and_recovers(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    outcome = await run_scenario("overload", tmp_path, request)
    extra = outcome.extra
    assert extra["overload_503"] > 0 and extra["overload_timeouts"] == 0 and extra["overload_bare_503"] == 0
    assert set(extra["overload_requests"]) <= {"200", "503"}
    assert extra["recovery_s"] is not None and extra["recovery_s"] <= RECOVERY_MAX_S
    assert all(extra["rss_max_mib"][k] <= extra["rss_bound_mib"][k] for k in extra["rss_bound_mib"])
    assert outcome.verdict["lost"] == 0 and outcome.verdict["acknowledged"] > 0
