"""kill -9 of a shard's anchor under load through haproxy (loadtest/reliability/scenarios/
kill_shard.py), and the rules it holds the clients' answers to."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.reliability.scenarios.kill_shard import WINDOW_S, refusals, unrecovered
from loadtest.reliability.workload import Acked, Record
from tests.reliability.conftest import run_scenario


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kill9-shard-anchor", "kill9-shard-anchor-2"])
async def test_kill_9_of_a_shard_anchor_behind_haproxy_loses_nothing(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    outcome = await run_scenario(name, tmp_path, request)
    assert outcome.faults >= 3 and outcome.extra["kills"] == outcome.faults
    assert outcome.verdict["acknowledged"] > 0 and outcome.verdict["lost"] == 0
    assert outcome.verdict["duplicate_indices"] == 0


def test_a_503_is_allowed_only_within_the_window_after_a_kill() -> None:
    kills = [10.0, 20.0]
    inside = [(9.0, "200"), (10.5, "503"), (10.0 + WINDOW_S, "503"), (21.0, "503"), (25.0, "200")]
    assert refusals(inside, kills, WINDOW_S) == []
    late = refusals([*inside, (13.0, "503"), (19.0, "503")], kills, WINDOW_S)
    assert len(late) == 1 and late[0].startswith("2 writes") and "first 3.0 s" in late[0]
    assert refusals([(5.0, "503")], kills, WINDOW_S), "a 503 before any kill"
    assert refusals([(13.0, "503")], kills, None) == [], "one shard: no bound"


def test_a_shard_that_takes_nothing_after_its_restart_is_reported() -> None:
    def acked(origin: str) -> Acked:
        return Acked("sha256:00", "00", "acme", "00", 0, 1, (), "note", origin)

    record = Record(acked=[acked("o"), acked("o/1"), acked("o")])
    assert unrecovered(record, {"o": 1, "o/1": 2}) == [
        "shard o/1 acknowledged nothing after its anchor restarted"
    ]
    assert unrecovered(record, {"o": 2, "o/1": 1}) == []
