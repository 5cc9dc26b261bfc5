"""What the API benchmark prints: the machine, a py-spy profile of the server per measurement
summarised by self and inclusive time, and the table of medians and ratios against the goals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson

from loadtest.bench_api_measure import (
    COMPACT,
    DEFAULT,
    NOTAR,
    OPEN_IN_FLIGHT,
    Contestant,
    Sample,
    Sizes,
    Table,
    measure,
)
from loadtest.servers import Server

GOALS = {
    "bulk": "≥ 100,000 digests/s, p99 < 500 ms",
    "single": "≥ 1/3 of hello world, p99 < 500 ms",
    "documents": "≥ 0.9 × raw PUTs",
    "proofs": "≥ 20,000 proofs/s",
    "compact": "compact ≥ 100,000 digests/s, p99 < 500 ms",
}


# ------------------------------------------------------------------------------ profiling


async def profile_all(out: Path, contestants: Sequence[Contestant], fs: Server, sizes: Sizes,
                      table: Table) -> None:
    """One py-spy recording of the server per notar measurement, summarised by self time."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    spy = beside if os.access(beside, os.X_OK) else shutil.which("py-spy")
    if spy is None:
        table.notes.append("py-spy not installed: no profile (pip install py-spy)")
        return
    os.makedirs(out, exist_ok=True)
    for c in contestants:
        if c.name not in (NOTAR, COMPACT, DEFAULT):
            continue
        pid = c.pids()[0]
        raw = out / (f"{c.metric}.txt" if c.name == NOTAR else f"{c.metric}-{c.name.split()[-2]}.txt")
        seconds = max(2, int(sizes.seconds))
        spy_proc = await asyncio.create_subprocess_exec(
            spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "--format", "raw",
            "-o", str(raw), "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        await asyncio.sleep(0.5)
        await measure(c, 2000, seconds)
        _, err = await asyncio.wait_for(spy_proc.communicate(), timeout=60)
        if spy_proc.returncode != 0 or not raw.exists():
            table.notes.append(f"py-spy failed on {c.metric} ({c.name}): {err.decode()[-300:]}")
            continue
        table.notes.append(f"profile of {c.metric} ({c.name}, {raw}):\n" + summarize_profile(raw.read_text()))


def summarize_profile(collapsed: str, top: int = 14) -> str:
    """Self and inclusive shares of the hottest functions in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return "  (no samples)"
    lines = ["  self:"] + [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top + 10)]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- report


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cores} cores ({model}), Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
            f"orjson {orjson.__version__}, asyncio default event loop")


def _fmt_rate(metric: str, value: float) -> str:
    if metric == "documents":
        return f"{value / 1e6:,.1f} MB/s"
    unit = {"bulk": "digests/s", "compact": "digests/s", "single": "req/s", "proofs": "proofs/s"}[
        metric.removesuffix("-open")]
    return f"{value:,.0f} {unit}"


def _label(metric: str, sizes: Sizes, samples: Sequence[Sample]) -> str:
    offered = statistics.median(s.extra.get("offered", 0.0) for s in samples)
    return {
        "bulk": f"bulk, closed loop ({sizes.bulk_per_request:,} digests/request, "
                f"{sizes.bulk_clients} clients)",
        "bulk-open": f"bulk, open loop at half the closed-loop rate ({offered:,.2f} requests/s of "
                     f"{sizes.bulk_per_request:,} offered)",
        "single": f"single digest, closed loop ({sizes.single_connections} connections)",
        "single-open": f"single digest, open loop at 1/3 of hello world ({offered:,.0f} req/s offered, "
                       f"≤ {OPEN_IN_FLIGHT} in flight)",
        "documents": f"documents into SeaweedFS ({sizes.doc_bytes >> 20} MiB, "
                     f"{sizes.doc_concurrency} at a time)",
        "proofs": f"inclusion proofs ({sizes.proof_connections} connections)",
        "compact": f"bulk, closed loop ({sizes.bulk_per_request:,} digests/request, "
                   f"{sizes.bulk_clients} clients)",
    }[metric]


def report(table: Table, sizes: Sizes) -> str:
    rows = [
        "| measurement | contestant | rate (median) | p50 | p99 | server CPU | server CPU per unit "
        "| client CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    med = statistics.median
    order = ("bulk", "bulk-open", "compact", "single", "single-open", "proofs", "documents")
    for (metric, name), samples in sorted(table.samples.items(), key=lambda kv: order.index(kv[0][0])):
        rate = med(s.result.unit_rate for s in samples)
        p50 = med(s.result.quantile(0.5) for s in samples) * 1000
        p99 = med(s.result.quantile(0.99) for s in samples) * 1000
        errors = sum(s.result.errors + s.result.dropped for s in samples)
        failed = f" ({errors} failed or dropped)" if errors else ""
        server, client = med(s.server_cores for s in samples), med(s.client_cores for s in samples)
        per = med(s.server_cores / s.result.unit_rate for s in samples if s.result.unit_rate)
        per_unit = f"{per * 1e6 * 1e6:,.0f} µs/MB" if metric == "documents" else f"{per * 1e6:,.1f} µs"
        rows.append(
            f"| {_label(metric, sizes, samples)} | {name}{failed} | {_fmt_rate(metric, rate)} "
            f"| {p50:,.1f} ms | {p99:,.1f} ms | {server:.2f} cores | {per_unit} | {client:.2f} cores |")
    rows += ["", "| ratio (median of same-round ratios) | value | goal |", "| --- | ---: | --- |"]
    for (metric, base), values in table.ratios.items():
        what = base if metric == "compact" else f"notar ÷ {base}"
        rows.append(f"| {metric}: {what} | {med(values):.3f} | {GOALS[metric]} |")
    for metric, goal, unit in (("bulk", 100_000, "digests/s"), ("proofs", 20_000, "proofs/s")):
        if (metric, NOTAR) in table.samples:
            rate = med(s.result.unit_rate for s in table.samples[(metric, NOTAR)])
            rows.append(f"| {metric}: notar ÷ {goal:,} {unit} | {rate / goal:.3f} | {GOALS[metric]} |")
    if ("compact", COMPACT) in table.samples:
        rate = med(s.result.unit_rate for s in table.samples[("compact", COMPACT)])
        rows.append(f"| compact: notar ÷ 100,000 digests/s | {rate / 100_000:.3f} | {GOALS['compact']} |")
    for metric, name in (("bulk", NOTAR), ("bulk-open", NOTAR), ("single-open", NOTAR), ("compact", COMPACT),
                         ("compact", DEFAULT)):
        if (metric, name) in table.samples:
            p99 = med(s.result.quantile(0.99) for s in table.samples[(metric, name)]) * 1000
            who = "" if name == NOTAR else name + " "
            rows.append(f"| {metric}: {who}p99 ÷ 500 ms | {p99 / 500:.2f} | < 1 |")
    bulk = table.samples.get(("bulk", NOTAR), []) + table.samples.get(("bulk-open", NOTAR), [])
    if bulk:
        lag = max(s.extra.get("lag", 0.0) for s in bulk)
        rows.append(f"| bulk: largest publication lag seen (entries) | {lag:,.0f} | (informative) |")
    return "\n".join(rows)
