"""A pod's counters that never go down, whichever of its processes dies or misses a scrape.

The pod's /metrics sums each counter and histogram over its processes (`pod_metrics`). A worker
started again counts from 0, and a worker that does not answer a scrape in time is left out of
it: either way the sum would drop. Prometheus takes any drop for a reset of the whole series to
0, so `rate()` and `increase()` would count everything the pod still shows as new at once: a
spike on every graph and a false alert on every rate (errors, refusals). And when the slow
worker answers the next scrape, its whole total would count as new a second time.

So each scrape's answer is made with what the pod's processes last showed, kept in `Carried`
(the workers keep it in a file of the parent's private directory, under a lock: a scrape reaches
any worker):

- a process that is not read now counts with the counters it last showed;
- a process read under another pid than before (started again) counts on top of what its
  predecessors last showed: their counts are carried into its series.

What a process counted between its last scrape and its death is lost to the pod, as with any
counter of a process that dies; the pod's sums never go down. Gauges are not carried: a process
that is not read has no view of the present.
"""

from __future__ import annotations

from typing import Any

from services.common.pod_metrics import Family

COUNTING = frozenset({"counter", "histogram"})
PID_FAMILY = "notar_worker_info"

Carried = dict[str, Any]
"""JSON-able: process name -> {"pid": str | None, "last": families, "carried": families}, where
families are {name: {"kind", "help", "samples": {series: value}}}: what it last showed, and what
its predecessors had shown when each was last read."""


def carry(state: Carried, read: list[tuple[str, dict[str, Family]]]) -> list[tuple[str, dict[str, Family]]]:
    """The families of the processes `read` now (name, parsed exposition) with their predecessors'
    counts added, then those of every process `state` knows that was not read, as it last showed
    them. `state` is updated in place."""
    out: list[tuple[str, dict[str, Family]]] = []
    for name, families in read:
        pid = _pid(families)
        known = state.get(name)
        last: dict[str, Any]
        carried: dict[str, Any]
        if known is None:
            last, carried = {}, {}
        elif known["pid"] != pid:  # started again: what the dead one showed is carried
            last, carried = {}, _added(known["carried"], known["last"])
        else:
            last, carried = known["last"], known["carried"]
        now = {n: _saved(f) for n, f in families.items() if f.kind in COUNTING}
        state[name] = {"pid": pid, "last": _highest(last, now), "carried": carried}
        out.append((name, _with(families, carried)))
    named = {name for name, _ in read}
    for name, known in state.items():
        if name not in named:
            out.append((name, _with({}, _added(known["carried"], known["last"]))))
    return out


def _pid(families: dict[str, Family]) -> str | None:
    """The pid of `notar_worker_info{worker, pid}`, or None (a process without it: the anchor,
    which lives as long as the pod's private directory and this state)."""
    info = families.get(PID_FAMILY)
    for series in info.samples if info else ():
        _, found, rest = series.partition('pid="')
        if found:
            return rest.partition('"')[0]
    return None


def _saved(family: Family) -> dict[str, Any]:
    return {"kind": family.kind, "help": family.help, "samples": dict(family.samples)}


def _highest(last: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """`now`, each series at least what `last` held (a process's counters only go up; a scrape
    that read it earlier may save after this one)."""
    for name, family in last.items():
        samples = now.setdefault(name, {**family, "samples": {}})["samples"]
        for series, value in family["samples"].items():
            if series not in samples or value > samples[series]:
                samples[series] = value
    return now


def _added(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Families `a` + `b`, series by series (a new dict)."""
    out = {name: {**f, "samples": dict(f["samples"])} for name, f in a.items()}
    for name, family in b.items():
        into = out.setdefault(name, {**family, "samples": {}})
        for series, value in family["samples"].items():
            into["samples"][series] = into["samples"].get(series, 0.0) + value
    return out


def _with(families: dict[str, Family], carried: dict[str, Any]) -> dict[str, Family]:
    """`families` with `carried` added to their series (a family or series only carried is added)."""
    if not carried:
        return families
    out = dict(families)
    for name, saved in carried.items():
        mine = families.get(name)
        into = (
            Family(name, saved["kind"], saved["help"])
            if mine is None
            else Family(name, mine.kind, mine.help, dict(mine.samples))
        )
        for series, value in saved["samples"].items():
            into.samples[series] = into.samples.get(series, 0.0) + value
        out[name] = into
    return out
