"""SeaweedFS killed for 10 s under load on the topology, then started again on the same ports
and data: nothing acknowledged is lost, only 200s and 503s with Retry-After, no client timeout,
readiness follows the store, publication catches up and no pod needs a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import run_scenario
from tests.seaweed import weed_or_skip


async def test_s3_outage_loses_nothing_and_recovers(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    weed_or_skip()
    outcome = await run_scenario("s3-outage", tmp_path, request)
    assert outcome.verdict["acknowledged"] > 0 and outcome.verdict["lost"] == 0
    [outage] = outcome.extra["outages"]
    assert outage["first_ack_after_s"] is not None and outage["published_caught_up_after_s"] is not None
    assert not outage["pods_never_unready"]
