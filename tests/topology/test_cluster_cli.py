"""`python -m loadtest.cluster up|down` as people run it: `up` starts SeaweedFS, the pods and
haproxy and returns, leaving them running; the printed URL and API key notarize and verify; `down`
stops every process `up` started and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.balancer import find_haproxy
from merkle import verify_receipt
from services.sdk import NotarClient, trusted_keys
from tests.needs import missing
from tests.seaweed import weed_or_skip

pytestmark = pytest.mark.slow


def cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.cluster", *args], capture_output=True, text=True, timeout=300
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


async def test_up_serves_through_haproxy_and_down_stops_all_it_started(tmp_path: Path) -> None:
    weed_or_skip()
    if find_haproxy() is None:
        missing("haproxy is not installed (scripts/install --test)")
    workdir = tmp_path / "cluster"
    started = cluster("up", "--dir", str(workdir))
    state = json.loads((workdir / "cluster.json").read_text()) if started.returncode == 0 else {}
    pids = [int(p["pid"]) for p in state.get("processes", [])]
    try:
        assert started.returncode == 0, started.stderr
        assert f"url: {state['url']}" in started.stdout and state["api_key"] in started.stdout
        assert state["url"].startswith("http://127.0.0.1:")
        names = sorted(p["name"].split()[0] for p in state["processes"])
        assert names == ["anchor", "haproxy", "ingest", "ingest", "seaweedfs", "verify", "verify"]
        assert all(alive(pid) for pid in pids), "up returned and left its processes running"
        again = cluster("up", "--dir", str(workdir))
        assert again.returncode == 2 and "down" in again.stderr, "a second up over a running cluster"
        digest = f"sha256:{os.urandom(32).hex()}"
        async with NotarClient(state["url"], state["api_key"]) as c:
            receipt = (await c.notarize([digest]))[0]
            assert verify_receipt(receipt, keys=trusted_keys(await c.keys()), digest=digest).valid
            assert (await c.receipt(digest)).index == receipt.index
    finally:
        stopped = cluster("down", "--dir", str(workdir))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.count(": stopped") == len(pids) == 7, stopped.stdout
    assert not any(alive(pid) for pid in pids)
    assert not (workdir / "cluster.json").exists()
