"""Spreading over real shards: two `notar serve --role anchor` processes (each its own log,
origin and data), reached over HTTP by `AnchorClient` as an ingest pod reaches them. One is
killed (-9) and writes go on through the other; restarted, it gets its share again after its
back-off. Every receipt verifies offline under its own shard's keys."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from merkle.verdict import verify_receipt
from services.anchor.keys import generate_keys, load_keys
from services.ingest.spread import Spread, SpreadConfig
from services.internal.client import AnchorClient
from services.model import Digests
from tests.services.test_spread import metric
from tests.serving import NOTAR, free_port, stop_process, wait_ready

BASE = "spread.notar.test/log"
ROUNDS = 40  # requests at most while waiting for the restarted shard to get a part


@dataclass
class Anchor:
    origin: str
    data: Path
    port: int
    keys: list[str]
    settings: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "NOTAR_DATA_DIR": str(self.data),
            "NOTAR_ORIGIN": self.origin,
            "NOTAR_LISTEN": f"127.0.0.1:{self.port}",
            "NOTAR_BATCH_MS": "10",
            **{f"NOTAR_{name}": value for name, value in self.settings.items()},
        }
        with open(self.data / "serve-anchor.log", "ab") as log:
            self.proc = subprocess.Popen(
                [NOTAR, "serve", "--role", "anchor"], env=env, stdout=subprocess.DEVNULL, stderr=log
            )
        wait_ready(self.url, self.proc, timeout=90)


@pytest.fixture
def anchors(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[Anchor]]:
    """Shards 0 and 1, each an anchor process; shard 1 with the settings given as the
    fixture's parameter, if any."""
    out = []
    for shard in (0, 1):
        origin = BASE if shard == 0 else f"{BASE}/{shard}"
        data = tmp_path / f"shard{shard}"
        generate_keys(data, origin)
        keys = list(load_keys(data, origin).verifier_keys.values())
        settings = getattr(request, "param", {}) if shard == 1 else {}
        out.append(Anchor(origin, data, free_port(), keys, settings))
    try:
        for anchor in out:
            anchor.start()
        yield out
    finally:
        for anchor in out:
            if anchor.proc is not None:
                stop_process(anchor.proc, timeout=30)


def request(n: int) -> Digests:
    return Digests.parse(["blake3:" + os.urandom(32).hex() for _ in range(n)])


async def notarize(spread: Spread, n: int, anchors: list[Anchor]) -> dict[str, int]:
    """Notarizes `n` digests; checks each receipt offline under its shard's keys and the
    request's order; how many each origin took."""
    digests = request(n)
    receipts = orjson.loads(await spread.submit("acme", digests))["receipts"]
    assert [r["digest"] for r in receipts] == list(digests.texts)
    keys = {a.origin: a.keys for a in anchors}
    counts: dict[str, int] = {}
    for r in receipts:
        origin = r["log"]["origin"]
        result = verify_receipt(r, keys=keys[origin], origin=origin)
        assert result.valid, result.checks
        counts[origin] = counts.get(origin, 0) + 1
    return counts


async def test_writes_go_on_through_the_other_shard_when_one_is_killed(anchors: list[Anchor]) -> None:
    reader = InMemoryMetricReader()
    clients = {i: AnchorClient(a.url) for i, a in enumerate(anchors)}
    spread = Spread(
        clients, meter=MeterProvider([reader]).get_meter("t"), config=SpreadConfig(backoff_max_s=1.0)
    )
    first, second = (a.origin for a in anchors)
    try:
        counts = await notarize(spread, 2000, anchors)
        assert counts == {first: 1000, second: 1000}, "both idle: half each"

        victim = anchors[1].proc
        assert victim is not None
        victim.kill()  # kill -9: no goodbye, the port refuses connections
        victim.wait(timeout=30)
        for _ in range(5):
            assert await notarize(spread, 1000, anchors) == {first: 1000}
        moved = metric(reader, "notar_spread_moved_entries")
        # A kept-alive connection to the dead process fails after sending: unsure; a new one is
        # refused: surely not taken. Every entry re-sent was shard 1's.
        assert (("shard", "1"), ("sure", "true")) in moved, moved
        assert {k[0] for k in moved} == {("shard", "1")}
        assert sum(moved.values()) >= 500, "its half, then each probe's part"
        assert metric(reader, "notar_spread_shard_up")[(("shard", "1"),)] == 0

        anchors[1].start()  # same port and data: the shard's log resumes
        for _ in range(ROUNDS):
            counts = await notarize(spread, 1000, anchors)
            if counts.get(second, 0) == 500:
                break
            await asyncio.sleep(0.25)  # its back-off (at most 1 s here) passes meanwhile
        assert counts == {first: 500, second: 500}, "probed, then its full share again"
        assert metric(reader, "notar_spread_shard_up")[(("shard", "1"),)] == 1
    finally:
        for client in clients.values():
            await client.close()


@pytest.mark.parametrize(
    "anchors", [{"BATCH_MS": "60000", "BATCH_MIN_MS": "60000", "BATCH_MAX": "100000"}], indirect=True
)
async def test_a_part_cut_off_in_flight_goes_to_the_other_shard(anchors: list[Anchor]) -> None:
    """Shard 1 holds its part in its queue (a batch a minute away) when it is killed: no answer
    came (unsure: the spread cannot know it was only queued), so the part is re-sent to shard 0
    and the request succeeds."""
    reader = InMemoryMetricReader()
    clients = {i: AnchorClient(a.url) for i, a in enumerate(anchors)}
    spread = Spread(clients, meter=MeterProvider([reader]).get_meter("t"))
    try:
        answer = asyncio.create_task(notarize(spread, 2000, anchors))
        for _ in range(400):
            if spread.health()[1].inflight:
                break
            await asyncio.sleep(0.05)
        assert spread.health()[1].inflight == 1000, "shard 1 holds its half"
        victim = anchors[1].proc
        assert victim is not None
        victim.kill()
        victim.wait(timeout=30)
        assert await answer == {anchors[0].origin: 2000}
        moved = metric(reader, "notar_spread_moved_entries")
        assert moved == {(("shard", "1"), ("sure", "false")): 1000}, "cut off after sending: unsure"
    finally:
        for client in clients.values():
            await client.close()
