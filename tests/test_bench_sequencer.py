"""The sequencer benchmark at tiny sizes: every digest acknowledged once with a valid index, its
v2 entry and a proof that leads to its signed checkpoint (never timing)."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import pytest

from loadtest import bench_sequencer as bench
from loadtest import sequencer_load as load
from merkle.digests import Digest, make_entry
from services.model import Sequenced
from tests.seaweed import S3Target, s3_target  # noqa: F401 - the session fixture


@pytest.mark.parametrize("n", [1, 999, 2500])
async def test_closed_loop_acknowledges_every_digest_once(tmp_path: Path, n: int) -> None:
    groups = load.groups_of(load.make_digests(n), 300)
    check = load.AckCheck(sample_every=1)
    async with load.open_sequencer("fs", load.Setup(batch_ms=5, batch_max=700), tmp_path) as seq:
        t = await load.closed_loop(seq, groups, submitters=3, check=check)
        assert seq.stats.published_size == n
    assert t.entries == n and t.published_s is not None and t.batches >= 1
    assert check.indices == set(range(n))
    assert check.checked_proofs == n


async def test_open_loop_submits_on_schedule_and_checks_every_ack(tmp_path: Path) -> None:
    digests = load.make_digests(2000)
    check = load.AckCheck(sample_every=1)
    async with load.open_sequencer("fs", load.Setup(batch_ms=5), tmp_path) as seq:
        lat = await load.open_loop(seq, digests, rate=20_000, duration=0.05, tick=0.01, check=check)
    assert lat.offered == 20_000 and lat.refused == 0
    assert lat.acked == 1000 and len(lat.latencies) == 5
    assert check.indices == set(range(1000)) and check.checked_proofs == 1000
    assert lat.max_lag >= lat.end_lag >= 0


async def test_closed_loop_on_s3(tmp_path: Path, s3_target: S3Target) -> None:  # noqa: F811
    setup = load.Setup(batch_ms=5, batch_max=600, s3=s3_target.config())
    check = load.AckCheck(sample_every=1)
    async with load.open_sequencer("s3", setup, tmp_path) as seq:
        groups = load.groups_of(load.make_digests(1500), 500)
        t = await load.closed_loop(seq, groups, submitters=2, check=check)
    assert t.published_s is not None and check.indices == set(range(1500))


def test_digests_repeat_past_the_distinct_pool_and_groups_rotate_tenants() -> None:
    digests = load.make_digests(25, distinct=10)
    assert len(digests) == 25 and digests[10] is digests[0] and len(set(digests)) == 10
    groups = load.groups_of(digests, 10, tenants=2)
    expected = [("tenant-0", 10), ("tenant-1", 10), ("tenant-0", 5)]
    assert [(g.tenant, len(g.digests)) for g in groups] == expected
    assert load.make_digests(0) == []


def _acks(group: load.Group, first: int = 1) -> list[Sequenced]:
    """Well-formed acknowledgements without proofs, from index 1 so that unless sample_every is
    1 none is sampled for a proof check."""
    salt = bytes(16)
    return [
        Sequenced(first + k, make_entry(d, salt, group.tenant), salt, first + len(group.digests), [], "")
        for k, d in enumerate(group.digests)
    ]


def test_ack_check_refuses_what_the_sequencer_must_not_do() -> None:
    group = load.Group("acme", [Digest("blake3", bytes([i]) * 32) for i in range(3)])
    with pytest.raises(load.AckError, match="2 acknowledgements for 3"):
        load.AckCheck(sample_every=10**9).add(group, _acks(group)[:2])
    twice = load.AckCheck(sample_every=10**9)
    twice.add(group, _acks(group))
    with pytest.raises(load.AckError, match="twice"):
        twice.add(group, _acks(group))
    for wrong_entry in (make_entry(group.digests[0], bytes(16), "globex"), b"\x1e\x20" + b"\x01" * 48):
        wrong = _acks(group)
        wrong[0] = dataclasses.replace(wrong[0], entry=wrong_entry)
        with pytest.raises(load.AckError, match="commitment"):
            load.AckCheck(sample_every=1).add(group, wrong)
    gap = load.AckCheck(sample_every=10**9)
    gap.add(load.Group("acme", group.digests[:1]), _acks(load.Group("acme", group.digests[:1])))
    rest = load.Group("acme", group.digests[2:])
    gap.add(rest, _acks(rest, first=3))
    with pytest.raises(load.AckError, match=r"not exactly 1\.\.3"):
        gap.finish(1, 3)


def test_a_tiny_run_prints_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--quick", "--stores", "fs", "--entries", "1500", "--rounds", "2", "--submitters", "2",
            "--rates", "20000", "--duration", "0.03", "--batch-ms", "5", "--workdir", str(tmp_path)]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert f"| {bench.PLAIN} |" in out
    assert "| sequencer, RocksDB + fs (directory) |" in out
    assert "| fs (directory) | 20,000 |" in out
    assert "Goal: sequencer on fs ≥ 0.50× the plain loop" in out
    assert list(tmp_path.iterdir()) == []  # temporary storage removed


def test_the_gc_threshold_is_restored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = gc.get_threshold()
    args = ["--quick", "--stores", "fs", "--entries", "1000", "--rounds", "1", "--rates", "20000",
            "--duration", "0.02", "--batch-ms", "5", "--gc-threshold", "5000", "--workdir", str(tmp_path)]
    assert bench.main(args) == 0
    assert "thresholds: (5000, 20, 100)" in capsys.readouterr().out
    assert gc.get_threshold() == before


@pytest.mark.parametrize(
    "bad",
    [
        ["--entries", "0"],
        ["--stores", "fs,nfs"],
        ["--rates", "fast"],
        ["--rates", "0"],
        ["--duration", "1000"],
        ["--entries", str(5_000_001)],
        ["--gc-threshold", "0"],
    ],
)
def test_bad_flags_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(bad)
