"""One Prometheus exposition (format 0.0.4) for a pod whose processes each have their own metrics:
the workers of `notar serve --workers N` and, with role `all`, the anchor behind them. A scrape
reaches one worker; it answers for all, as one process would.

- Counters and histograms in several processes are summed series by series (same name, same
  labels): the pod's totals. A worker started again counts from 0, and a worker left out of a
  scrape counts nothing: `pod_counters` adds what they last showed, so the sums never go down.
- A gauge family in several processes is each one's view (a clock offset, a shard seen up):
  every series gets a `worker` label naming the process (`1`, `2`, …, `anchor`), unless it has
  one already (notar_worker_info).
- The anchor's own HTTP families count its internal routes, the workers' requests again: they are
  left out. Every other family of the anchor's is kept, summed with the workers' where they have it.
- No family appears twice; samples keep their first-seen order, families too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ANCHOR = "anchor"
INTERNAL_ONLY = ("notar_http_requests_total", "notar_http_request_duration_seconds")
"""The anchor's families that, behind workers, count only their internal requests."""


@dataclass
class Family:
    name: str
    kind: str = "untyped"
    help: str | None = None
    samples: dict[str, float] = field(default_factory=dict)  # `name{labels}` -> value
    sources: set[str] = field(default_factory=set)


def parse(lines: list[str]) -> dict[str, Family]:
    """The families of one process's exposition lines (comments other than HELP and TYPE are
    dropped); a sample belongs to the family whose HELP or TYPE came last."""
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in lines:
        if line.startswith(("# HELP ", "# TYPE ")):
            _, what, name, *rest = line.split(" ", 3)
            current = families.setdefault(name, Family(name))
            text = rest[0] if rest else ""
            if what == "HELP":
                current.help = text
            else:
                current.kind = text
        elif line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            if current is None or not series.startswith(current.name):
                name = series.split("{", 1)[0]
                current = families.setdefault(name, Family(name))
            current.samples[series] = float(value)
    return families


def merge(sources: list[tuple[str, list[str]]]) -> list[str]:
    """The exposition lines of `sources`, (`1`/`2`/…/`anchor`, that process's lines), merged as
    the module doc says."""
    return merge_parsed([(source, parse(lines)) for source, lines in sources])


def merge_parsed(parsed: list[tuple[str, dict[str, Family]]]) -> list[str]:
    """`merge` of processes already parsed (`parse`)."""
    merged: dict[str, Family] = {}
    seen: dict[str, set[str]] = {}  # family -> the processes that have it
    for source, families in parsed:
        for name in families:
            if not (source == ANCHOR and name in INTERNAL_ONLY):
                seen.setdefault(name, set()).add(source)
    for source, families in parsed:
        for name, family in families.items():
            if source == ANCHOR and name in INTERNAL_ONLY:
                continue
            into = merged.setdefault(name, Family(name, family.kind, family.help))
            by_process = family.kind == "gauge" and len(seen[name]) > 1
            for series, value in family.samples.items():
                if by_process and 'worker="' not in series:
                    series = _labelled(series, f'worker="{source}"')
                into.samples[series] = into.samples.get(series, 0.0) + value
    return [line for family in merged.values() for line in _lines(family)]


def _labelled(series: str, label: str) -> str:
    if series.endswith("}"):
        return series[:-1] + ("," if not series.endswith("{}") else "") + label + "}"
    return series + "{" + label + "}"


def _lines(family: Family) -> list[str]:
    head = [] if family.help is None else [f"# HELP {family.name} {family.help}"]
    head.append(f"# TYPE {family.name} {family.kind}")
    return head + [f"{series} {_number(value)}" for series, value in family.samples.items()]


def _number(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)
