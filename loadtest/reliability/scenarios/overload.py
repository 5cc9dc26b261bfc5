"""Overload: three times the deployment's capacity, offered open loop, then back to normal load.

The embedded `notar serve` (one process, the default install) with a small QUEUE_MAX, so that the
memory bound below means something. Why embedded: on this 2-core box the topology's five
processes, SeaweedFS and the load generator compete for the same cores, so its "capacity" would
measure the scheduler; one process measures notar's own admission control.

1. Capacity: closed-loop writers (two concurrencies, the better one counts) for a few seconds:
   acknowledged digests/s.
2. Normal load (a third of the capacity, paced), a baseline window for its latency.
3. Overload: another client, in a process of its own (loadproc: a thousand writers would starve
   this process's event loop and skew its timings), offers 3x the capacity in all, open loop
   (paced requests from enough writers that concurrency does not limit them; Retry-After
   ignored, the worst client), bounded in time and count. The rate it managed to try is
   recorded beside the one offered; under ATTEMPTED_MIN x the capacity there was no overload.
4. Back to normal load; recovery is the time until 503s stop, acknowledgements run at the normal
   rate and p99 is back near the baseline, and stay so.

What notar must do: refuse the excess with 503 problem+json and Retry-After, never a 500, a
dropped connection or a client timeout; keep every server process's memory (VmRSS, sampled from
/proc) below a bound that follows from QUEUE_MAX and the connections; recover within
RECOVERY_MAX_S. And, as always, lose nothing it acknowledged (the checker, over every client).
The acknowledgements per second and the latency of accepted requests during the overload are
recorded (``extra``), not held to a bound: on a shared 2-core box they measure the neighbours too.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note

from ..cluster import Cluster, make_cluster, running
from ..driver import Context, Fault, Outcome, drive
from ..loadproc import run_elsewhere
from ..workload import Record, Workload
from . import Scenario

QUEUE_MAX = 2000  # entries the sequencer holds at most (NOTAR_QUEUE_MAX for this run)
BATCH = 20  # digests per request
CAPACITY_WRITERS = (16, 64)
NORMAL_SHARE = 1 / 3  # normal load, of the capacity
FACTOR = 3.0  # offered during the overload, of the capacity (normal load included)
OVERLOAD_WRITERS = 2048
ATTEMPTED_MIN = 1.5  # of the capacity: the client must have tried at least this, or no overload
SAMPLE_S = 0.25
WINDOW_S = 1.0
RECOVERY_MAX_S = 5.0
# Memory: what the process held under normal load (the baseline) plus what overload may add:
# - the queue and the batch being sequenced, at most QUEUE_MAX entries each, ~3 KiB per entry
#   (item, proof, receipt JSON): 12 MiB;
# - a connection per writer with a request in flight (aiohttp's protocol, parser, buffers, the
#   request and its answer), ~32 KiB each: 64 MiB for 2,048;
# - RocksDB's memtables, which fill with what is written (tenant index, batch bundles and their
#   deletions) until they are flushed: ~0.5 KiB per entry written since the baseline, at most its
#   default write buffers (2 x 64 MiB); normal operation, overload or not;
# - 32 MiB of allocator slack.
# An unbounded queue would hold (FACTOR - 1) x capacity x seconds more entries: at ~6,000
# digests/s that is ~70,000 entries (~200 MiB) in the 6 s of the short form, past the bound.
ENTRY_KIB = 3
CONNECTION_KIB = 32
SLACK_MIB = 32
WRITTEN_KIB = 0.5
MEMTABLES_MIB = 128


def tree_size(url: str) -> int:
    """The size of the log's published checkpoint, as a verify pod serves it."""
    with urllib.request.urlopen(url + "/log/checkpoint", timeout=10) as r:
        return parse_checkpoint(parse_note(r.read()).text).size


def vm_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Memory:
    """The VmRSS of every server process, sampled every SAMPLE_S / 2."""

    cluster: Cluster
    baseline_kib: dict[str, int] = field(default_factory=dict)
    max_kib: dict[str, int] = field(default_factory=dict)
    history: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    def sample(self) -> dict[str, int]:
        now: dict[str, int] = {}
        for p in self.cluster.pods:
            if p.process is not None and p.alive() and (kib := vm_rss_kib(p.process.pid)) is not None:
                now[f"{p.role} {p.url}"] = kib
                self.max_kib[f"{p.role} {p.url}"] = max(kib, self.max_kib.get(f"{p.role} {p.url}", 0))
        self.history.append((time.monotonic(), now))
        return now

    def every(self, since: float, seconds: float) -> dict[str, list[float]]:
        """The largest VmRSS (MiB) of each process in each ``seconds`` from ``since``: a bounded
        process levels off, a leak climbs."""
        out: dict[str, list[float]] = {}
        for t, now in self.history:
            if t < since:
                continue
            slot = int((t - since) // seconds)
            for k, kib in now.items():
                row = out.setdefault(k, [])
                row += [0.0] * (slot + 1 - len(row))
                row[slot] = max(row[slot], round(kib / 1024, 1))
        return out

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            await asyncio.sleep(SAMPLE_S / 2)


@dataclass(frozen=True)
class Sample:
    t: float
    acked: int
    rejected: int  # 503s
    answered: int  # latencies recorded (acknowledged requests)


def _sample(record: Record) -> Sample:
    return Sample(time.monotonic(), len(record.acked), record.statuses["503"], len(record.latencies))


def _p99(latencies: list[float]) -> float | None:
    lat = sorted(latencies)
    return lat[int(len(lat) * 0.99)] if lat else None


def workload(cluster: Cluster, **kw: Any) -> Workload:
    return Workload(cluster.ingest_urls, cluster.verify_urls, cluster.api_keys["acme"], batch=BATCH, **kw)


async def run_for(w: Workload, seconds: float) -> float:
    """Run ``w`` for ``seconds``; the seconds it ran."""
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(w.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return time.monotonic() - started


async def capacity(cluster: Cluster, seconds: float) -> tuple[float, list[Record]]:
    """Closed-loop acknowledged digests/s, the best of CAPACITY_WRITERS; the records kept."""
    best, records = 0.0, []
    for writers in CAPACITY_WRITERS:
        w = workload(cluster, writers=writers, readers=0)
        ran = await run_for(w, seconds)
        best = max(best, len(w.record.acked) / ran)
        records.append(w.record)
    return best, records


@dataclass
class Overload:
    """The figures of one run, filled in as it goes."""

    workdir: Path
    capacity: float
    normal_rps: float  # requests/s of the normal load
    seconds: float
    memory: Memory
    kept: list[Record]  # the other clients' records, merged into the checked one at the end
    sampler: asyncio.Task[None] | None = None
    samples: list[Sample] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    record: Record | None = None  # the normal load's, which the checker is given
    baseline_size: int = 0  # entries in the log when the memory baseline was taken

    def fault(self, sampling: asyncio.Event) -> Fault:
        """Baseline, overload, then the other clients' promises join the normal load's record;
        the normal load is sampled until ``sampling`` is set (after the recovery period)."""

        async def inject(cluster: Cluster, record: Record) -> int:
            self.record = record
            self.sampler = asyncio.create_task(self._sampler(record, sampling))
            await asyncio.sleep(2 * WINDOW_S)  # the baseline of the normal load
            self.memory.baseline_kib = self.memory.sample()
            self.baseline_size = await asyncio.to_thread(tree_size, cluster.verify_urls[0])
            rate = (FACTOR * self.capacity / BATCH) - self.normal_rps
            spec = {
                "ingest": cluster.ingest_urls,
                "verify": cluster.verify_urls,
                "api_key": cluster.api_keys["acme"],
                "batch": BATCH,
                "writers": OVERLOAD_WRITERS,
                "readers": 0,
                "rate": rate,
                "retry_after_cap_s": 0.0,  # open loop: the excess comes back at once
                "max_requests": int(rate * self.seconds * 1.2) + 1,
            }
            self.started = time.monotonic()
            over: Record | None = None
            try:
                over, ran = await run_elsewhere(self.workdir, self.seconds, **spec)
            finally:
                self.ended = time.monotonic()
                self.kept += [over] if over is not None else []
                for kept in self.kept:  # no await in between: samples see one jump, before `ended`
                    record.acked += kept.acked
                    record.checkpoints |= kept.checkpoints
                self.kept = []
            self._overload_figures(over, rate, ran)
            return 1

        return inject

    async def _sampler(self, record: Record, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append(_sample(record))
            await asyncio.sleep(SAMPLE_S)

    def _overload_figures(self, r: Record, rate: float, ran: float) -> None:
        attempts = sum(r.statuses.values())
        self.extra |= {
            "offered_digests_per_s": round((rate + self.normal_rps) * BATCH),
            "attempted_digests_per_s": round(attempts * BATCH / ran + self.normal_rps * BATCH),
            "overload_acked_per_s": round(len(r.acked) / ran),
            "overload_requests": dict(r.statuses),
            "overload_503": r.statuses["503"],
            "overload_timeouts": r.timeouts,
            "overload_bare_503": r.bare_503,
            "overload_p50_ms": _ms(sorted(r.latencies)[len(r.latencies) // 2] if r.latencies else None),
            "overload_p99_ms": _ms(_p99(r.latencies)),
        }
        if not r.statuses["503"]:
            self.problems.append(f"no 503 under {FACTOR:g}x the capacity: {dict(r.statuses)}")
        bad = {k: v for k, v in r.statuses.items() if k not in ("200", "503")}
        if bad or r.timeouts or r.bare_503:
            self.problems.append(
                f"under overload, answers other than 200 and 503 problem+json with Retry-After: {bad}, "
                f"{r.timeouts} client timeouts, {r.bare_503} bare 503s"
            )
        if attempts * BATCH / ran < ATTEMPTED_MIN * self.capacity:
            self.problems.append(
                f"the client could not offer the overload: {attempts * BATCH / ran:.0f} digests/s tried "
                f"(capacity {self.capacity:.0f}): the server kept it waiting, or the client lacked CPU"
            )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def timeline(o: Overload, latencies: list[float]) -> list[tuple[float, int, int, float | None]]:
    """Per WINDOW_S of the normal load, from the overload's start: (s, acked/s, 503s, p99 ms)."""
    out = []
    step = max(1, round(WINDOW_S / SAMPLE_S))
    for a, b in zip(o.samples[::step], o.samples[step::step], strict=False):
        span = b.t - a.t
        out.append(
            (
                round(a.t - o.started, 1),
                round((b.acked - a.acked) / span) if span > 0 else 0,
                b.rejected - a.rejected,
                _ms(_p99(latencies[a.answered : b.answered])),
            )
        )
    return out


def recovery(o: Overload, latencies: list[float]) -> tuple[float | None, dict[str, Any]]:
    """Seconds from the end of the overload to the first WINDOW_S of normal load with no 503,
    acknowledgements at >= 70 % of the normal rate and p99 within the baseline's bound, after
    which no 503 came any more. None if that never happened."""
    base = [s for s in o.samples if s.t < o.started]
    if len(base) < 2:
        return None, {"why": "no baseline"}
    baseline = _p99(latencies[base[0].answered : base[-1].answered]) or 0.0
    bound = max(2 * baseline, baseline + 0.1)
    figures: dict[str, Any] = {"baseline_p99_ms": _ms(baseline), "p99_bound_ms": _ms(bound)}
    after = [s for s in o.samples if s.t >= o.ended]
    for i, a in enumerate(after):
        b = next((x for x in after[i:] if x.t - a.t >= WINDOW_S), None)
        if b is None:
            break
        rate = (b.acked - a.acked) / (b.t - a.t)
        p99 = _p99(latencies[a.answered : b.answered])
        calm = b.rejected == a.rejected == after[-1].rejected
        if calm and rate >= 0.7 * o.normal_rps * BATCH and p99 is not None and p99 <= bound:
            figures |= {"recovered_acked_per_s": round(rate), "recovered_p99_ms": _ms(p99)}
            return round(a.t - o.ended, 2), figures
    return None, figures


def _scenario(name: str, doc: str) -> Scenario:
    async def run(ctx: Context) -> Outcome:
        cluster = make_cluster(ctx.workdir, env={"NOTAR_QUEUE_MAX": str(QUEUE_MAX)})
        overload_s = 30.0 if ctx.long else 6.0
        with running(cluster):
            cap, kept = await capacity(cluster, 5.0 if ctx.long else 2.5)
            memory = Memory(cluster)
            o = Overload(ctx.workdir, cap, cap * NORMAL_SHARE / BATCH, overload_s, memory, kept)
            stop = asyncio.Event()
            sampler = asyncio.create_task(memory.run(stop))
            try:
                outcome = await drive(
                    name,
                    cluster,
                    o.fault(stop),
                    writers=16,
                    batch=BATCH,
                    rate=o.normal_rps,
                    settle_s=RECOVERY_MAX_S + 3 * WINDOW_S,
                )
            finally:
                stop.set()
                await asyncio.gather(sampler, *([o.sampler] if o.sampler else []))
        latencies = o.record.latencies if o.record else []
        recovered_s, figures = recovery(o, latencies)
        figures["timeline"] = timeline(o, latencies)
        outcome.problems += o.problems
        if recovered_s is None or recovered_s > RECOVERY_MAX_S:
            outcome.problems.append(
                f"not back to normal within {RECOVERY_MAX_S:g} s of the overload: {figures}"
            )
        written = outcome.verdict["final_tree_size"] - o.baseline_size
        memtables_kib = min(written * WRITTEN_KIB, MEMTABLES_MIB * 1024)
        allowance_kib = round(
            2 * QUEUE_MAX * ENTRY_KIB + OVERLOAD_WRITERS * CONNECTION_KIB + memtables_kib + SLACK_MIB * 1024
        )
        bound = {k: v + allowance_kib for k, v in memory.baseline_kib.items()}
        over = {k: v for k, v in memory.max_kib.items() if v > bound.get(k, 0)}
        if over or not memory.max_kib:
            outcome.problems.append(f"memory past its bound (KiB): {over}, bound {bound}")
        outcome.extra |= (
            o.extra
            | figures
            | {
                "capacity_digests_per_s": round(cap),
                "normal_digests_per_s": round(o.normal_rps * BATCH),
                "overload_s": overload_s,
                "queue_max": QUEUE_MAX,
                "entries_written_since_baseline": written,
                "recovery_s": recovered_s,
                "rss_baseline_mib": {k: round(v / 1024, 1) for k, v in memory.baseline_kib.items()},
                "rss_max_mib": {k: round(v / 1024, 1) for k, v in memory.max_kib.items()},
                "rss_bound_mib": {k: round(v / 1024, 1) for k, v in bound.items()},
                "rss_mib_every_5s": memory.every(o.started, 5.0),
            }
        )
        return outcome

    return Scenario(name, doc, False, run)


SCENARIOS = [
    _scenario(
        "overload",
        f"{FACTOR:g}x the embedded server's capacity, open loop: 503 + Retry-After, bounded memory, recovery",
    )
]
