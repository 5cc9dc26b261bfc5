"""The embedded server's data directory on a small ext4 filled up under load, then freed: writes
get 200 or 503 with Retry-After (never a 500 or a hang), /readyz follows, the server recovers
without a restart, and nothing acknowledged is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import run_scenario
from tests.smalldisk import small_disk_or_skip


async def test_disk_full_loses_nothing_and_recovers(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    small_disk_or_skip()
    outcome = await run_scenario("disk-full", tmp_path, request)
    assert outcome.verdict["acknowledged"] > 0 and outcome.verdict["lost"] == 0
    [fill] = outcome.extra["fills"]
    assert fill["filled_bytes"] > 0 and fill["exits"] == 0
    assert fill["first_ack_after_s"] is not None and fill["ready_after_s"] is not None
