"""Clock jumps under load (loadtest/reliability/scenarios/clock.py): the anchor's wall clock steps
forward and back (libfaketime), with a kill -9 while it is behind; cosigned times never go back,
acknowledgements go on after every step, nothing acknowledged is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.reliability.fakeclock import check_jumps
from tests.reliability.conftest import run_scenario


@pytest.mark.parametrize("offset", [3600, -3600])
def test_libfaketime_steps_a_childs_wall_clock_not_its_monotonic_clock(offset: int, tmp_path: Path) -> None:
    assert abs(check_jumps(tmp_path, offset) - offset) < 60


@pytest.mark.parametrize("name", ["clock-jump", "clock-jump-anchor"])
async def test_clock_jumps_never_move_cosigned_time_back(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    outcome = await run_scenario(name, tmp_path, request)
    assert outcome.faults >= 4 and outcome.extra["restarts"] >= 1
    assert outcome.verdict["time_reversals"] == 0 and outcome.verdict["lost"] == 0
    assert all(n > 0 for n in outcome.extra["acked_after_each_step"])
