"""Short forms of the chaos scenarios (loadtest/chaos.py), each a test, as CI runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadtest.reliability.cluster import S3Bucket
from loadtest.reliability.driver import Context, Outcome
from loadtest.reliability.scenarios import all_scenarios
from tests.seaweed import S3Target, s3_target  # noqa: F401


async def run_scenario(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Outcome:
    """Run scenario ``name`` in its short form; fail with its outcome and where its logs are."""
    scenario = all_scenarios()[name]
    bucket = None
    if scenario.needs_s3:
        t: S3Target = request.getfixturevalue("s3_target")
        bucket = S3Bucket(t.endpoint, t.bucket, t.access_key, t.secret_key, t.region)
    seed = int.from_bytes(os.urandom(4), "big")
    outcome = await scenario.run(Context(tmp_path, bucket, False, seed))
    assert outcome.ok, f"{name} (seed {seed}): {outcome.problems}\n{outcome.to_json()}\nlogs in {tmp_path}"
    assert outcome.faults > 0, f"{name} injected no fault"
    return outcome
