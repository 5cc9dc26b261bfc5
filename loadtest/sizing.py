"""Sizing for N bytes of documents and R entries/s over K shards, scaled from a real run's measured
objects.

The run is the real thing on this machine: the anchor's Sequencer (RocksDB index, the directory
object store, whose objects are byte for byte what S3 holds) sequences `--entries` entries in
batches of `rate × BATCH_MS` (what the target rate puts in one checkpoint), and the ingest's
Documents writer stores `--docs` documents of `--doc-mib` MiB. Every write is counted by kind
(tiles per level, partial tiles, entry bundles, checkpoints, document chunks and manifests) with
its bytes; RocksDB's bytes on disk per entry are measured after it is closed; the sequencer's
throughput is timed; then the index is exported as a frozen shard's (services/anchor/
frozen_index.py) and its objects counted and timed too. The table scales those measurements to the
target; nothing in it is assumed except the target itself, the shards K (by default as many as the
measured rate of one anchor needs), how often a shard is frozen, and the mean document size.

    .venv/bin/python -m loadtest.sizing                          # 1 PB, 100k entries/s, 500k entries
    .venv/bin/python -m loadtest.sizing --entries 50000 --docs 2 # quicker
    .venv/bin/python -m loadtest.sizing --shards 8 --freeze-days 7
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from merkle.cosignature import CosignatureSigner
from merkle.digests import parse_digest
from merkle.note import Signer
from services.anchor.frozen_index import FILE_ROWS, export
from services.anchor.keys import LogKeys
from services.anchor.sequencer import Sequencer, SequencerConfig
from services.anchor.tenant_index import TenantIndex
from services.ingest.documents import CHUNK_SIZE, Documents
from storage.base import ObjectStore, Versioned
from storage.fs import FsStore
from storage.rocks import RocksIndex

DAY = 86_400
ORIGIN = "sizing.notar/log"


def kind(key: str) -> str:
    if key.startswith("log/tile/"):
        parts = key.split("/")
        name = "entry bundle" if parts[2] == "entries" else f"tile level {parts[2]}"
        return name + (" (partial)" if ".p/" in key else "")
    if key.startswith("documents/"):
        return "document " + key.split("/")[1]
    if "/frozen/" in key:
        return "frozen index " + ("file" if "/frozen/files/" in key else key.rpartition("/")[2])
    if key.startswith("private/"):  # the log's private state: lease, keys document, format marker
        return key.rpartition("/")[2]
    return key.removeprefix("log/")


@dataclass
class CountingStore:
    """An ObjectStore that counts every write (requests and bytes) by kind of key."""

    inner: ObjectStore
    writes: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)

    def _count(self, key: str, size: int) -> None:
        self.writes[kind(key)] += 1
        self.written[kind(key)] += size

    async def get(self, key: str) -> bytes:
        return await self.inner.get(key)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        return await self.inner.get_range(key, start, end)

    async def get_versioned(self, key: str) -> Versioned:
        return await self.inner.get_versioned(key)

    async def put(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        self._count(key, len(data))
        await self.inner.put(key, data, cache_control=cache_control)

    async def put_if_absent(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        self._count(key, len(data))
        await self.inner.put_if_absent(key, data, cache_control=cache_control)

    async def put_all_if_absent(
        self, items: Sequence[tuple[str, bytes]], *, cache_control: str | None = None
    ) -> None:
        for key, data in items:  # one PUT each on S3
            self._count(key, len(data))
        await self.inner.put_all_if_absent(items, cache_control=cache_control)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], *, immutable: bool) -> int:
        size = await self.inner.put_stream(key, chunks, immutable=immutable)
        self._count(key, size)
        return size

    async def put_if_version(
        self, key: str, data: bytes, version: str | None, *, cache_control: str | None = None
    ) -> str:
        self._count(key, len(data))
        return await self.inner.put_if_version(key, data, version, cache_control=cache_control)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        async for key in self.inner.list(prefix):
            yield key

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Measured:
    entries: int
    batches: int
    seconds: float
    writes: Counter[str]
    written: Counter[str]
    stored: Counter[str]  # bytes of the objects left in the store, by kind
    objects: Counter[str]  # objects left in the store, by kind
    rocksdb_bytes: int
    doc_bytes: int
    export_seconds: float = 0.0  # the frozen index's export from RocksDB to the store


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def measure(work: Path, *, entries: int, batch: int, docs: int, doc_mib: float) -> Measured:
    store = CountingStore(FsStore(work / "store"))
    index = RocksIndex.open(work / "index")
    keys = LogKeys(Signer.generate(ORIGIN), CosignatureSigner.generate(ORIGIN + "/clock"))
    config = SequencerConfig(origin=ORIGIN, batch_ms=100, batch_max=batch, queue_max=max(4 * batch, 200_000))
    rows = TenantIndex(bytes(32), origin=ORIGIN)  # a fixed key: only sizes matter here
    seq = Sequencer(store=store, index=index, keys=keys, config=config, tenant_index=rows)
    await seq.start()
    counter = iter(range(entries))

    async def submitter() -> None:
        while True:
            # random digests, as real ones are: RocksDB compresses, sequential ones would flatter it
            n = len([i for _, i in zip(range(batch), counter, strict=False)])
            group = [parse_digest("sha256:" + os.urandom(32).hex()) for _ in range(n)]
            if not group:
                return
            await seq.submit("sizing", group)

    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(4)))  # a queue deep enough for full batches
    await seq.close()  # everything published
    seconds = time.perf_counter() - start
    batches = seq.stats.batches
    start = time.perf_counter()
    await export(index, store, prefix="log/", origin=ORIGIN, checkpoint="", size=seq.size)
    export_seconds = time.perf_counter() - start
    await index.close()
    rocksdb = tree_bytes(work / "index")

    documents = Documents(store, index_key=bytes(32))
    size = int(doc_mib * 1024 * 1024)
    for n in range(docs):
        body = os.urandom(size)  # random: encrypted chunks would be as random anyway

        async def chunks(b: bytes = body) -> AsyncIterator[bytes]:
            for at in range(0, len(b), 1 << 20):
                yield b[at : at + (1 << 20)]

        await documents.put(f"tenant{n}", chunks())
    await store.close()
    stored: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    root = work / "store"
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            k = kind(p.relative_to(root).as_posix())
            stored[k] += p.stat().st_size
            objects[k] += 1
    return Measured(
        entries,
        batches,
        seconds,
        store.writes,
        store.written,
        stored,
        objects,
        rocksdb,
        docs * size,
        export_seconds,
    )


def fmt(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g}"


def fmt_bytes(n: float) -> str:
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def shards_for(m: Measured, rate: float) -> int:
    """The shards the target needs at the rate one anchor reached in the run."""
    return max(1, math.ceil(rate / (m.entries / m.seconds)))


def report(
    m: Measured,
    *,
    rate: float,
    documents_bytes: float,
    doc_mib: float,
    docs: int,
    shards: int | None = None,
    batch_ms: int = 100,
    freeze_days: float = 30,
) -> str:
    k_shards = shards or shards_for(m, rate)
    per_day = rate * DAY
    per_shard = rate / k_shards
    # every shard signs a checkpoint each BATCH_MS while it has entries (its batches are smaller)
    batches_per_day = k_shards * DAY * 1000 / batch_ms if per_shard * batch_ms >= 1000 else per_day
    by_entries = per_day / m.entries  # full tiles and bundles grow with entries…
    by_batches = batches_per_day / m.batches  # …partial ones and checkpoints with batches

    def scale(k: str) -> float:
        return by_batches if "partial" in k or k == "checkpoint" else by_entries

    how = "given" if shards else "as many as the measured rate of one anchor needs"
    lines = [
        f"Measured: {m.entries:,} entries in {m.batches:,} batches of {m.entries // m.batches:,} "
        f"({m.entries / m.seconds:,.0f} entries/s sequenced and published by one anchor, "
        f"{m.seconds:.1f} s), {docs} documents of {doc_mib:g} MiB; {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}).",
        "",
        f"Target: {fmt(rate)} entries/s = {fmt(per_day)} entries/day over {k_shards} shards ({how}), "
        f"{fmt(per_shard)} entries/s each, frozen after {freeze_days:g} days; "
        f"{fmt_bytes(documents_bytes)} of documents.",
        "",
        "| log object (per day at the target, all shards) | objects stored | bytes stored "
        "| PUT requests | PUT/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k in sorted(set(m.writes) | set(m.objects)):
        if k.startswith(("document", "frozen")) or k in ("lease", "keys.json", "format"):
            continue
        puts = m.writes[k] * scale(k)
        kept = k_shards if k == "checkpoint" else scale(k)  # a shard's checkpoint is replaced in place
        lines.append(
            f"| {k} | {fmt(m.objects[k] * kept)} | {fmt_bytes(m.stored[k] * kept)} "
            f"| {fmt(puts)} | {puts / DAY:,.1f} |"
        )
    log_bytes = sum(v * scale(k) for k, v in m.stored.items() if k.startswith(("tile", "entry")))
    log_puts = sum(v * scale(k) for k, v in m.writes.items() if not k.startswith(("document", "frozen")))
    per_entry_rocks = m.rocksdb_bytes / m.entries
    per_entry_frozen = m.stored["frozen index file"] / m.entries
    shard_days = per_shard * DAY * freeze_days  # entries a shard holds when it is frozen
    doc_count = documents_bytes / (doc_mib * 2**20)
    doc_objects = sum(v for k, v in m.objects.items() if k.startswith("document")) / docs
    doc_meta = sum(v for k, v in m.stored.items() if k.startswith("document") and "chunks" not in k) / docs
    anchor_rate = m.entries / m.seconds
    lines += [
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| published log per day (tiles + bundles, partial ones kept) | {fmt_bytes(log_bytes)} |",
        f"| published log per billion entries | {fmt_bytes(log_bytes / per_day * 1e9)} |",
        f"| RocksDB per billion entries (tenant index, state) | {fmt_bytes(per_entry_rocks * 1e9)} "
        f"({per_entry_rocks:.0f} B/entry measured) |",
        f"| RocksDB per day at the target (all shards) | {fmt_bytes(per_entry_rocks * per_day)} |",
        f"| RocksDB per active shard per day | {fmt_bytes(per_entry_rocks * per_shard * DAY)} |",
        f"| anchor volume at most (one shard of {freeze_days:g} days, then frozen) "
        f"| {fmt_bytes(per_entry_rocks * shard_days)} |",
        f"| frozen index in the store per billion entries | {fmt_bytes(per_entry_frozen * 1e9)} "
        f"({per_entry_frozen:.1f} B/entry measured) |",
        f"| frozen index added per day (all shards) | {fmt_bytes(per_entry_frozen * per_day)} |",
        f"| frozen index files per frozen shard ({fmt(FILE_ROWS)} rows each) "
        f"| {math.ceil(shard_days / FILE_ROWS):,} |",
        f"| export of a frozen shard's index (measured {m.entries / m.export_seconds:,.0f} rows/s) "
        f"| {shard_days / (m.entries / m.export_seconds) / 3600:,.1f} h |",
        "| look-up GETs per frozen shard | 2: its tombstone, one range of blocks (+1: a fence not cached) |",
        f"| checkpoints signed per day (one per batch per shard) | {fmt(batches_per_day)} |",
        f"| log PUT requests/s (all kinds, all shards) | {log_puts / DAY:,.0f} |",
        f"| log PUT requests/s per shard | {log_puts / DAY / k_shards:,.0f} |",
        f"| documents for {fmt_bytes(documents_bytes)} at {doc_mib:g} MiB each | {fmt(doc_count)} |",
        f"| objects per document ({CHUNK_SIZE // 2**20} MiB chunks, two manifests) | {doc_objects:g} |",
        f"| document objects for {fmt_bytes(documents_bytes)} | {fmt(doc_count * doc_objects)} |",
        f"| document metadata bytes (manifests) | {fmt_bytes(doc_count * doc_meta)} |",
        f"| anchor pods (logs) for {fmt(rate)} entries/s at the measured rate | {shards_for(m, rate)} |",
        f"| pods per shard | 1 anchor (one writer: its sequencer is one core), "
        f"loaded {per_shard / anchor_rate:.0%} of the measured rate |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=500_000, help="entries to sequence in the run")
    parser.add_argument("--rate", type=float, default=100_000, help="target entries per second")
    parser.add_argument("--batch-ms", type=int, default=100, help="BATCH_MS of the target deployment")
    parser.add_argument("--documents-pib", type=float, default=1.0, help="target bytes of documents, in PiB")
    parser.add_argument("--doc-mib", type=float, default=8.0, help="mean document size, in MiB")
    parser.add_argument("--docs", type=int, default=4, help="documents stored in the run")
    parser.add_argument(
        "--shards", type=int, default=0, help="shards K (default: as the measured rate needs)"
    )
    parser.add_argument(
        "--freeze-days", type=float, default=30, help="days a shard takes entries before it freezes"
    )
    args = parser.parse_args()
    per_shard = args.rate / args.shards if args.shards else args.rate
    batch = max(1, min(20_000, int(per_shard * args.batch_ms / 1000)))
    work = Path(tempfile.mkdtemp(prefix="notar-sizing-"))
    try:
        m = asyncio.run(
            measure(work, entries=args.entries, batch=batch, docs=args.docs, doc_mib=args.doc_mib)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"$ python -m loadtest.sizing --entries {args.entries} --rate {args.rate:g} "
        f"--batch-ms {args.batch_ms} "
        f"--documents-pib {args.documents_pib:g} --doc-mib {args.doc_mib:g} --docs {args.docs}"
        f" --shards {args.shards} --freeze-days {args.freeze_days:g}"
    )
    print(
        report(
            m,
            rate=args.rate,
            documents_bytes=args.documents_pib * 2**50,
            doc_mib=args.doc_mib,
            docs=args.docs,
            shards=args.shards or None,
            batch_ms=args.batch_ms,
            freeze_days=args.freeze_days,
        )
    )


if __name__ == "__main__":
    main()
