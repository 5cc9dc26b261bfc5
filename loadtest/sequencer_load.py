"""Driving an in-process sequencer on real storage, for the benchmarks and their tests.

A sequencer on a RocksIndex and an FsStore in a temporary directory or an S3Store; a closed loop
(concurrent submitters of 1,000-digest groups, each one tenant's, each submitter sending its next
group once the last is acknowledged) and an open loop (a group every tick on a fixed schedule,
whatever the completions); and the check every acknowledgement goes through before any number
counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import Digest, make_entry
from merkle.hashing import leaf_hash
from merkle.note import Signer, parse_note
from merkle.proofs import verify_inclusion
from services.anchor.keys import LogKeys, clock_key_name
from services.anchor.sequencer import Sequencer, SequencerConfig
from services.anchor.tenant_index import TenantIndex
from services.model import Sequenced, SequencedGroup
from storage.base import ObjectStore
from storage.errors import PushbackError
from storage.fs import FsStore
from storage.rocks import RocksIndex
from storage.s3 import S3Config, S3Store

ORIGIN = "bench.notar.localhost/log"
GROUP = 1000


# ---------------------------------------------------------------- groups and acknowledgements


@dataclass(frozen=True)
class Group:
    """One submission: `digests` notarized by `tenant`."""

    tenant: str
    digests: Sequence[Digest]


def make_digests(n: int, seed: int = 9162, *, distinct: int = 200_000) -> list[Digest]:
    """`n` BLAKE3 digests. Past `distinct` the same ones come again (a digest notarized again
    gets a new salt and index)."""
    rng = random.Random(seed)
    pool = [Digest("blake3", rng.randbytes(32)) for _ in range(min(n, distinct))]
    return (pool * -(-n // len(pool)))[:n] if pool else []


def groups_of(digests: Sequence[Digest], size: int = GROUP, *, tenants: int = 8) -> list[Group]:
    """`digests` in submissions of `size`, the k-th by tenant `tenant-<k mod tenants>`."""
    return [
        Group(f"tenant-{(i // size) % tenants}", digests[i : i + size]) for i in range(0, len(digests), size)
    ]


class AckError(AssertionError):
    """An acknowledgement that is not what the sequencer promised: the run's numbers are void."""


@dataclass
class AckCheck:
    """Checks acknowledgements as they arrive; `finish` checks every index was given once.

    Every acknowledgement's count and index are checked; its entry (the v2 commitment to its
    digest, salt and tenant) and its inclusion proof against the signed checkpoint's root every
    `sample_every`-th index (of compact results, every entry of every `compact_every`-th group),
    so that the checking client does not weigh on the sequencer it shares the process with.
    """

    sample_every: int = 97
    compact_every: int = 64
    """Compact results: every entry of one group in this many is checked."""
    _compact: int = 0
    indices: set[int] = field(default_factory=set)
    checked_proofs: int = 0
    _roots: dict[str, Checkpoint] = field(default_factory=dict)

    def add(self, group: Group, results: Sequence[Sequenced]) -> None:
        # a sequencer's result gives its indices whole: each entry's `Sequenced` is made only for
        # the sampled ones (as a service makes only what its answer writes)
        indices = results.indices if isinstance(results, SequencedGroup) else [r.index for r in results]
        if len(indices) != len(group.digests):
            raise AckError(f"{len(indices)} acknowledgements for {len(group.digests)} digests")
        before = len(self.indices)
        self.indices.update(indices)
        if len(self.indices) != before + len(indices):
            raise AckError("an index was given twice")
        every = self.sample_every
        if isinstance(results, SequencedGroup) and not results.has_proofs:
            # a compact result: checking any entry's proof derives every proof of the group from
            # its nodes (as the SDK's expansion does), so whole groups are sampled, not entries
            self._compact += 1
            if self._compact % self.compact_every:
                return
            every = 1
        for k, i in enumerate(indices):
            if i % every == 0:
                self._check(group.tenant, group.digests[k], results[k])

    def _check(self, tenant: str, digest: Digest, r: Sequenced) -> None:
        if len(r.salt) != 16 or r.entry != make_entry(digest, r.salt, tenant):
            raise AckError(f"entry at index {r.index} is not the commitment to its digest, salt and tenant")
        cp = self._roots.get(r.checkpoint)
        if cp is None:
            cp = self._roots[r.checkpoint] = parse_checkpoint(parse_note(r.checkpoint).text, origin=ORIGIN)
        if cp.size != r.tree_size or not 0 <= r.index < cp.size:
            raise AckError(f"index {r.index}: tree size {r.tree_size} is not its checkpoint's {cp.size}")
        if not verify_inclusion(leaf_hash(r.entry), r.index, r.tree_size, r.inclusion, cp.root):
            raise AckError(f"index {r.index}: the inclusion proof does not lead to the checkpoint's root")
        self.checked_proofs += 1

    def finish(self, first: int, count: int) -> None:
        """Every index first..first+count-1 was acknowledged, and no other."""
        if len(self.indices) != count or (
            count and (min(self.indices), max(self.indices)) != (first, first + count - 1)
        ):
            raise AckError(f"acknowledged indices are not exactly {first}..{first + count - 1}")


# ---------------------------------------------------------------- a sequencer on real storage


@dataclass(frozen=True)
class Setup:
    """How each measured sequencer is built."""

    batch_ms: int = 100
    batch_min_ms: int = 0
    batch_max: int = 20_000
    queue_max: int = 200_000
    repeats_max: int = 100
    compact: bool = False
    """Submitters ask for compact results (the nodes of their part, no proof per entry), as the
    service does for a compact answer."""
    s3: S3Config | None = None


def bench_keys() -> LogKeys:
    return LogKeys(Signer.generate(ORIGIN), CosignatureSigner.generate(clock_key_name(ORIGIN)))


@contextlib.asynccontextmanager
async def open_sequencer(store_kind: str, setup: Setup, workdir: Path) -> AsyncIterator[Sequencer]:
    """A started sequencer on a fresh RocksDB (in `workdir`) and a fresh log in the chosen store;
    closed (everything published) and its storage removed afterwards."""
    run = Path(tempfile.mkdtemp(prefix="seq-", dir=workdir))
    index = RocksIndex.open(run / "index")
    store: ObjectStore
    if store_kind == "fs":
        store = FsStore(run / "store")
    elif store_kind == "s3":
        if setup.s3 is None:
            raise ValueError("the s3 store needs Setup.s3")
        store = await S3Store.from_config(setup.s3)
    else:
        raise ValueError(f"unknown store {store_kind!r}")
    cfg = SequencerConfig(
        origin=ORIGIN,
        prefix=f"{run.name}/log/",
        batch_ms=setup.batch_ms,
        batch_min_ms=setup.batch_min_ms,
        batch_max=setup.batch_max,
        queue_max=setup.queue_max,
        repeats_max=setup.repeats_max,
    )
    rows = TenantIndex(bytes(32), origin=ORIGIN)  # a fixed key: only the cost matters here
    seq = Sequencer(store=store, index=index, keys=bench_keys(), config=cfg, tenant_index=rows)
    try:
        await seq.start()
        yield seq
    finally:
        await seq.close()
        await index.close()
        await store.close()
        shutil.rmtree(run, ignore_errors=True)


async def wait_published(seq: Sequencer, size: int) -> bool:
    """Wait until the published checkpoint covers `size` entries; False if the sequencer failed."""
    while seq.stats.published_size < size:
        if seq.failed is not None:
            return False
        await asyncio.sleep(0.005)
    return True


@dataclass
class GcPauses:
    """Seconds the cyclic garbage collector ran while this is installed (`gc.callbacks`)."""

    seconds: float = 0.0
    full: int = 0
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full += info["generation"] == 2


@contextlib.contextmanager
def gc_pauses() -> Iterator[GcPauses]:
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(pauses)


# ---------------------------------------------------------------- 1. closed-loop throughput


@dataclass
class Throughput:
    entries: int
    ack_s: float
    """From the first submission to the last acknowledgement."""
    published_s: float | None
    """From the first submission until the published checkpoint covered every entry."""
    batches: int
    proofs_checked: int
    gc_s: float = 0.0
    """Garbage-collector pauses until the last acknowledgement."""

    @property
    def rate(self) -> float:
        return self.entries / self.ack_s

    @property
    def published_rate(self) -> float | None:
        return self.entries / self.published_s if self.published_s else None


async def closed_loop(
    seq: Sequencer,
    groups: Sequence[Group],
    *,
    submitters: int = 32,
    check: AckCheck | None = None,
    compact: bool = False,
) -> Throughput:
    """`submitters` tasks each submit the next group as soon as their last is acknowledged."""
    check = check or AckCheck()
    next_group = iter(groups)
    first, batches = seq.size, seq.stats.batches
    entries = sum(len(g.digests) for g in groups)

    async def submitter() -> None:
        for g in next_group:
            check.add(g, await seq.submit(g.tenant, g.digests, compact=compact))

    gc.collect()
    with gc_pauses() as pauses:
        start = time.perf_counter()
        await asyncio.gather(*(submitter() for _ in range(min(submitters, len(groups)))))
        ack_s = time.perf_counter() - start
        gc_s = pauses.seconds
    try:
        async with asyncio.timeout(600):
            published = await wait_published(seq, first + entries)
    except TimeoutError:
        published = False
    published_s = time.perf_counter() - start if published else None
    check.finish(first, entries)
    return Throughput(entries, ack_s, published_s, seq.stats.batches - batches, check.checked_proofs, gc_s)


# ---------------------------------------------------------------- 2. open-loop latency


@dataclass
class Latency:
    offered: float
    """Entries per second the schedule offered."""
    duration_s: float
    acked: int
    refused: int
    """Entries refused with pushback (503); they count in no latency."""
    latencies: list[float]
    """Seconds from each group's scheduled submission to its acknowledgement."""
    max_lag: int
    """Largest signed size minus published size seen, in entries."""
    end_lag: int
    achieved: float
    """Acknowledged entries per second, over the time from the first submission to the last ack."""

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_loop(
    seq: Sequencer,
    digests: Sequence[Digest],
    *,
    rate: float,
    duration: float,
    tick: float = 0.01,
    check: AckCheck | None = None,
    compact: bool = False,
) -> Latency:
    """Submit `rate * tick` digests every `tick` seconds for `duration` seconds (fewer if
    `digests` runs out), on schedule whatever the completions, each group one tenant's (as
    `groups_of` deals them); latency counts from the scheduled time."""
    check = check or AckCheck()
    per_tick = max(1, round(rate * tick))
    ticks = min(int(duration / tick), len(digests) // per_tick)
    groups = groups_of(digests[: ticks * per_tick], per_tick)
    latencies: list[float] = []
    refused = 0
    lag = [0]
    first = seq.size

    async def one(group: Group, due: float) -> None:
        nonlocal refused
        try:
            results = await seq.submit(group.tenant, group.digests, compact=compact)
        except PushbackError:
            refused += len(group.digests)
            return
        latencies.append(time.perf_counter() - due)
        check.add(group, results)

    tasks: list[asyncio.Task[None]] = []
    gc.collect()
    start = time.perf_counter()
    for k in range(ticks):
        due = start + k * tick
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag.append(seq.stats.signed_size - seq.stats.published_size)
        tasks.append(asyncio.create_task(one(groups[k], due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    end_lag = seq.stats.signed_size - seq.stats.published_size
    acked = len(check.indices)
    if not refused:
        check.finish(first, acked)
    return Latency(
        offered=per_tick / tick,
        duration_s=ticks * tick,
        acked=acked,
        refused=refused,
        latencies=latencies,
        max_lag=max(lag + [end_lag]),
        end_lag=end_lag,
        achieved=acked / elapsed,
    )
