"""Sequencer benchmark: the in-process anchor sequencer beside the plain hashlib RFC 9162 loop.

Three measurements, every one bounded in entries and in seconds:

1. Throughput, closed loop: many concurrent submitters each send a 1,000-digest group, wait for
   its acknowledgement (durable in RocksDB with one fsync per batch, in a signed checkpoint, with
   inclusion proofs) and send the next. A real RocksIndex in a temporary directory, with (a) the
   FsStore in a temporary directory and (b) the S3Store on a SeaweedFS started on loopback for
   the run. In the same rounds, in a rotating order, `bench_merkle.plain_root` over as many
   entries: the ratio is the median of same-round ratios.
2. Latency, open loop, from submit to signed checkpoint: a generator submits a group every tick
   (10 ms) on a fixed schedule whatever the completions, at 10k, 50k and 100k entries/s offered.
   Latency counts from the scheduled instant, so a late generator is not hidden. Also the
   publication lag (signed size minus published size) seen during the run.
3. Every acknowledgement is checked (an index for each digest, no index twice, a sample of
   entries against the v2 commitment to digest, salt and tenant and of inclusion proofs against
   the signed checkpoint's root): no numbers otherwise.

The loops and the checks live in `loadtest.sequencer_load`; this module runs the rounds and prints
the tables.

    .venv/bin/python -m loadtest.bench_sequencer               # full run, fs and SeaweedFS
    .venv/bin/python -m loadtest.bench_sequencer --quick       # a fast look
    .venv/bin/python -m loadtest.bench_sequencer --stores fs   # without SeaweedFS
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.bench_merkle import machine, make_entries, plain_root
from loadtest.sequencer_load import (
    GROUP,
    AckCheck,
    Group,
    Latency,
    Setup,
    Throughput,
    closed_loop,
    groups_of,
    make_digests,
    open_loop,
    open_sequencer,
)
from merkle.digests import Digest
from storage.s3 import S3Config

STORES = ("fs", "s3")
STORE_NAMES = {"fs": "fs (directory)", "s3": "S3 (SeaweedFS, loopback)"}
PLAIN = "plain hashlib loop (root only)"


# ---------------------------------------------------------------- the reference point


def plain_rate(entries: Sequence[bytes]) -> float:
    """Entries per second of `bench_merkle.plain_root`: leaf hashes and the root, nothing else."""
    gc.collect()
    start = time.perf_counter()
    plain_root(entries)
    return len(entries) / (time.perf_counter() - start)


# ---------------------------------------------------------------- rounds and report


@dataclass
class Results:
    rounds: list[dict[str, float]] = field(default_factory=list)
    """Per round: the plain loop's rate and each store's acknowledged rate, entries/s."""
    throughput: dict[str, list[Throughput]] = field(default_factory=dict)
    latency: dict[str, list[Latency]] = field(default_factory=dict)
    proofs_checked: int = 0

    def rates(self, name: str) -> list[float]:
        return [r[name] for r in self.rounds if name in r]

    def ratio(self, name: str) -> float | None:
        """Median over rounds of the store's rate / the plain loop's rate in the same round."""
        values = [r[name] / r[PLAIN] for r in self.rounds if name in r and PLAIN in r]
        return statistics.median(values) if values else None


@dataclass(frozen=True)
class Plan:
    entries: int
    """Per closed-loop run on fs, and the plain loop's tree size."""
    s3_entries: int
    """Per closed-loop run on S3."""
    rounds: int
    submitters: int
    stores: tuple[str, ...]
    rates: tuple[float, ...]
    duration: float
    tick: float
    budget: float
    seed: int = 9162


async def run(
    plan: Plan, setup: Setup, workdir: Path, log: Callable[[str], None] = lambda _: None
) -> Results:
    res = Results()
    n_open = max((int(rate * plan.duration) + GROUP for rate in plan.rates), default=0)
    digests = make_digests(max(plan.entries, plan.s3_entries, n_open), plan.seed)
    entries = make_entries(plan.entries, plan.seed)
    gc.freeze()  # the fixtures are the benchmark's, not the service's: keep them out of its GC
    try:
        await _closed_rounds(plan, setup, workdir, digests, entries, res, log)
        for name in plan.stores:
            for rate in plan.rates:
                check = AckCheck()
                async with open_sequencer(name, setup, workdir) as seq:
                    lat = await open_loop(
                        seq,
                        digests[: int(rate * plan.duration) + GROUP],
                        rate=rate,
                        duration=plan.duration,
                        tick=plan.tick,
                        check=check,
                        compact=setup.compact,
                    )
                res.latency.setdefault(name, []).append(lat)
                res.proofs_checked += check.checked_proofs
                log(
                    f"{name} at {rate:,.0f}/s offered: p50 {_ms(lat.percentile(0.5))}, "
                    f"p99 {_ms(lat.percentile(0.99))}, refused {lat.refused:,}, max lag {lat.max_lag:,}"
                )
    finally:
        gc.unfreeze()
    return res


async def _closed_rounds(
    plan: Plan,
    setup: Setup,
    workdir: Path,
    digests: Sequence[Digest],
    entries: Sequence[bytes],
    res: Results,
    log: Callable[[str], None],
) -> None:
    """Each round runs the plain loop and every store once, in an order rotating by round."""
    contestants = [PLAIN, *plan.stores]
    start = time.perf_counter()
    for r in range(plan.rounds):
        shift = r % len(contestants)
        measured: dict[str, float] = {}
        for name in contestants[shift:] + contestants[:shift]:
            if name == PLAIN:
                measured[PLAIN] = plain_rate(entries)
                log(f"round {r + 1}: {PLAIN}: {measured[PLAIN]:,.0f} entries/s")
                continue
            n = plan.entries if name == "fs" else plan.s3_entries
            async with open_sequencer(name, setup, workdir) as seq:
                groups: list[Group] = groups_of(digests[:n])
                t = await closed_loop(seq, groups, submitters=plan.submitters, compact=setup.compact)
            measured[name] = t.rate
            res.throughput.setdefault(name, []).append(t)
            res.proofs_checked += t.proofs_checked
            log(
                f"round {r + 1}: {name}: {t.rate:,.0f} entries/s acknowledged, "
                f"{t.published_rate or 0:,.0f}/s published, {t.batches} batches, "
                f"GC {t.gc_s / t.ack_s:.0%}"
            )
        res.rounds.append(measured)
        if time.perf_counter() - start > plan.budget and r + 1 < plan.rounds:
            log(f"time budget of {plan.budget:.0f}s spent after {r + 1} rounds; stopping")
            break


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _num(x: float) -> str:
    return f"{x:,.0f}"


def _median_spread(values: Sequence[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return _num(values[0])
    return f"{_num(statistics.median(values))} ({_num(min(values))}–{_num(max(values))})"


def report(res: Results, plan: Plan) -> str:
    lines = [
        "| contestant | acknowledged entries/s | published entries/s | entries per batch "
        "| GC pauses | ÷ plain loop |",
        "|---|---|---|---|---|---|",
        f"| {PLAIN} | {_median_spread(res.rates(PLAIN))} | — | — | — | 1.00× |",
    ]
    for name in plan.stores:
        runs = res.throughput.get(name, [])
        if not runs:
            continue
        ratio = res.ratio(name)
        published = [t.published_rate for t in runs if t.published_rate]
        per_batch = statistics.median(t.entries / max(1, t.batches) for t in runs)
        gc_share = statistics.median(t.gc_s / t.ack_s for t in runs)
        lines.append(
            f"| sequencer, RocksDB + {STORE_NAMES[name]} | {_median_spread(res.rates(name))} | "
            f"{_median_spread(published)} | {_num(per_batch)} | {gc_share:.0%} | "
            f"{'—' if ratio is None else f'{ratio:.2f}×'} |"
        )
    fs_ratio = res.ratio("fs")
    if fs_ratio is not None:
        lines += ["", f"Goal: sequencer on fs ≥ 0.50× the plain loop: {fs_ratio:.2f}× — "
                  + ("met." if fs_ratio >= 0.5 else "**not met**.")]
    if res.latency:
        lines += [
            "",
            "| store | offered entries/s | acknowledged entries/s | p50 | p99 | max | refused (503) "
            "| publication lag, max / at the end (entries) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, lats in res.latency.items():
            for lat in lats:
                worst = max(lat.latencies) if lat.latencies else None
                lines.append(
                    f"| {STORE_NAMES[name]} | {_num(lat.offered)} | {_num(lat.achieved)} | "
                    f"{_ms(lat.percentile(0.5))} | {_ms(lat.percentile(0.99))} | {_ms(worst)} | "
                    f"{lat.refused:,} | {lat.max_lag:,} / {lat.end_lag:,} |"
                )
        fs100 = [lat for lat in res.latency.get("fs", []) if lat.offered >= 100_000]
        if fs100 and (p99 := fs100[0].percentile(0.99)) is not None:
            met = p99 < 0.25 and not fs100[0].refused
            lines += ["", f"Goal: p99 < 250 ms at 100k entries/s offered on fs: {_ms(p99)} — "
                      + ("met." if met else "**not met**.")]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, help="entries per closed-loop run on fs (default 400,000; "
                   "--quick 60,000)")
    p.add_argument("--s3-entries", type=int, help="entries per closed-loop run on S3 (default 100,000; "
                   "--quick 40,000)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 2)")
    p.add_argument("--submitters", type=int, default=32,
                   help="concurrent closed-loop submitters of 1,000-digest groups (default 32)")
    p.add_argument("--stores", default="fs,s3", help="comma-separated: fs, s3 (default fs,s3)")
    p.add_argument("--rates", default="10000,50000,100000",
                   help="open-loop offered rates, entries/s (default 10000,50000,100000)")
    p.add_argument("--duration", type=float, help="seconds per open-loop run (default 10; --quick 2)")
    p.add_argument("--tick", type=float, default=0.01, help="open-loop submission period, s (default 0.01)")
    p.add_argument("--batch-ms", type=int, default=100, help="the sequencer's BATCH_MS (default 100)")
    p.add_argument("--batch-min-ms", type=int, default=0,
                   help="the sequencer's BATCH_MIN_MS (default 0: group commit; = --batch-ms: a batch "
                   "waits that long for more entries, as before group commit)")
    p.add_argument("--batch-max", type=int, default=20_000, help="largest batch (default 20,000)")
    p.add_argument("--repeats-max", type=int, default=100,
                   help="the sequencer's REPEATS_MAX (default 100, the setting's; 0: no cap)")
    p.add_argument("--compact", action="store_true",
                   help="submitters ask for compact results (their part's nodes, no proof per entry)")
    p.add_argument("--budget", type=float, default=600.0,
                   help="no new closed-loop round starts after this many seconds (default 600)")
    p.add_argument("--gc-threshold", type=int,
                   help="run with gc.set_threshold(N, 20, 100) instead of CPython's default (700, 10, 10), "
                   "to see what tuning the service's collector would give")
    p.add_argument("--workdir", type=Path, help="where the temporary RocksDB and fs store go")
    p.add_argument("--quick", action="store_true", help="small sizes for a fast look")
    p.add_argument("--seed", type=int, default=9162)
    args = p.parse_args(argv)
    defaults = {"entries": (400_000, 60_000), "s3_entries": (100_000, 40_000), "rounds": (5, 2),
                "duration": (10.0, 2.0)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("entries", "s3_entries", "rounds", "submitters", "batch_ms", "batch_max"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.batch_min_ms < 0:
        p.error("--batch-min-ms must be at least 0")
    if args.gc_threshold is not None and args.gc_threshold < 1:
        p.error("--gc-threshold must be at least 1")
    if max(args.entries, args.s3_entries) > 5_000_000:
        p.error("--entries and --s3-entries are capped at 5,000,000 to keep the run bounded")
    if not 0 < args.duration <= 120 or not 0.001 <= args.tick <= 1:
        p.error("--duration must be in (0, 120] s and --tick in [0.001, 1] s")
    args.stores = tuple(s for s in args.stores.split(",") if s)
    if not args.stores or set(args.stores) - set(STORES):
        p.error(f"--stores takes a comma-separated subset of {', '.join(STORES)}")
    try:
        args.rates = tuple(float(r) for r in args.rates.split(",") if r)
    except ValueError:
        p.error("--rates takes comma-separated numbers")
    if any(not 0 < r <= 1_000_000 for r in args.rates):
        p.error("--rates must be in (0, 1,000,000] entries/s")
    return args


@contextlib.contextmanager
def seaweed_bucket() -> Iterator[S3Config]:
    """A bucket on a SeaweedFS started on loopback for the run (tests/seaweed.py's launcher)."""
    from tests.seaweed import S3Target, ensure_bucket, start_seaweed

    with start_seaweed() as server:
        target = S3Target(server.endpoint, "notar-bench", server.access_key, server.secret_key,
                          server.region)
        ensure_bucket(target)
        yield target.config()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    plan = Plan(
        entries=args.entries,
        rounds=args.rounds,
        submitters=args.submitters,
        stores=args.stores,
        rates=args.rates,
        duration=args.duration,
        tick=args.tick,
        budget=args.budget,
        s3_entries=args.s3_entries,
        seed=args.seed,
    )
    setup = Setup(batch_ms=args.batch_ms, batch_min_ms=args.batch_min_ms, batch_max=args.batch_max,
                  repeats_max=args.repeats_max, compact=args.compact)
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="notar-bench-seq-",
                                                                       dir=args.workdir)))
        if "s3" in plan.stores:
            log("starting SeaweedFS on loopback…")
            setup = dataclasses.replace(setup, s3=stack.enter_context(seaweed_bucket()))
        default_gc = gc.get_threshold()
        if args.gc_threshold is not None:
            gc.set_threshold(args.gc_threshold, 20, 100)
        try:
            res = asyncio.run(run(plan, setup, workdir, log))
        finally:
            gc.set_threshold(*default_gc)
    print(f"Machine: {machine()}; load average {load_before:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end")
    collector = "CPython's default" if args.gc_threshold is None else f"({args.gc_threshold}, 20, 100)"
    print(f"Garbage collector thresholds: {collector}; the benchmark's own fixtures frozen out of it.")
    print(
        f"Closed loop: {plan.submitters} submitters of {GROUP:,}-digest groups, {plan.entries:,} entries "
        f"per run on fs, {plan.s3_entries:,} on S3, {len(res.rounds)} rounds; BATCH_MS {setup.batch_ms}, "
        f"BATCH_MIN_MS {setup.batch_min_ms}, "
        f"batch max {setup.batch_max:,}, fsync per batch. Open loop: one group every "
        f"{plan.tick * 1000:g} ms for {plan.duration:g} s. {res.proofs_checked:,} inclusion proofs "
        "checked against their signed checkpoints."
    )
    print("Rates are medians over rounds (min–max in brackets).\n")
    print(report(res, plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
