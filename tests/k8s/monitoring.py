"""k8s/monitoring/ read for the tests: the rule files, their alerts, the dashboard's queries, and
the metric names a PromQL expression uses; and the per-shard series an ingest pod exports with
several shards (`spread_exports`), and the shard table's and frozen compactions' series an anchor
exports then (`shard_exports`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any, cast

import orjson
import yaml

from services.anchor.erasure import Eraser
from services.anchor.freeze import Freezer, ShardAnchor
from services.anchor.metrics import register_shard_metrics
from services.anchor.sequencer import Sequencer
from services.anchor.tenant_index import TenantIndex
from services.common.telemetry import Telemetry
from services.ingest.spread import Spread
from services.model import Digests
from services.published.shards import Shard, update_table
from storage.errors import NotarError, PushbackError, StorageError
from storage.memory import MemoryIndex, MemoryStore
from tests.k8s.conftest import K8S, ROOT

MONITORING = K8S / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yaml"))
DASHBOARD = MONITORING / "dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
PROMTOOL_TESTS = sorted((ROOT / "tests" / "k8s" / "promtool").glob("*.test.yaml"))
SERIES_NAME = re.compile(r"\bnotar[_:][A-Za-z0-9_:]*")
ROUTE_MATCHER = re.compile(r'\broute="([^"]+)"')


def rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of every rule file, each with its file's name."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [{**rule, "file": path.name} for rule in group["rules"]]
    return found


def alerts() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for rule in rules():
        if "alert" in rule:
            assert rule["alert"] not in found, f"alert {rule['alert']} is defined twice"
            found[rule["alert"]] = rule
    return found


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels, `$namespace` as "All" would make it."""
    board = json.loads(DASHBOARD.read_text())
    return [
        t["expr"].replace("$namespace", ".*") for panel in board["panels"] for t in panel.get("targets", [])
    ]


def rule_queries() -> list[str]:
    return [str(r["expr"]) for r in rules()]


def series_names(expr: str) -> set[str]:
    """notar's metric names (notar_…) and recorded series (notar:…) that ``expr`` reads,
    including those named in a ``__name__`` matcher."""
    return set(SERIES_NAME.findall(expr))


def routes(expr: str) -> set[str]:
    return set(ROUTE_MATCHER.findall(expr))


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """Each `## ` section of docs/runbook.md by its anchor: its text."""
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            current = github_anchor(line[3:])
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def promtool_cases() -> list[tuple[str, str, bool]]:
    """(test file, alert name, expected firing) of every alert_rule_test in tests/k8s/promtool."""
    cases = []
    for path in PROMTOOL_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append((path.name, case["alertname"], bool(case.get("exp_alerts"))))
    return cases


def promtool_rule_files() -> set[Path]:
    found = set()
    for path in PROMTOOL_TESTS:
        found |= {(path.parent / f).resolve() for f in yaml.safe_load(path.read_text())["rule_files"]}
    return found


class _Shard:
    """A shard for `spread_exports`: answers every digest, or fails while `down`."""

    def __init__(self, *, down: bool) -> None:
        self.down = down

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        await asyncio.sleep(0)
        if self.down:
            raise StorageError("this shard is down", transient=True)
        return orjson.dumps({"receipts": [{"digest": d} for d in digests.texts]})

    def refusal(self, count: int = 1) -> NotarError | None:
        return None


def spread_exports() -> set[str]:
    """The metric names an ingest pod's spread over several shards exports on /metrics
    (services/ingest/spread.py, rendered by services.common.telemetry as the pod renders them),
    after a request that one shard failed and one no shard could take: the loopback topology of
    the live test runs one shard, where ingest has no spread."""

    async def traffic(telemetry: Telemetry) -> None:
        shards = {0: _Shard(down=False), 1: _Shard(down=True)}
        spread = Spread(shards, meter=telemetry.meter)
        digests = Digests.parse(["blake3:" + os.urandom(32).hex() for _ in range(2000)])
        await spread.submit("acme", digests)  # shard 1 fails its part: shard 0 takes it
        shards[0].down = True
        try:
            await spread.submit("acme", digests)
        except PushbackError:
            pass  # 503: no shard could take it
        else:
            raise AssertionError("every shard is down, yet the request was taken")

    telemetry = Telemetry()
    asyncio.run(traffic(telemetry))
    return {line.split("{")[0].split(" ")[0] for line in telemetry.prometheus() if not line.startswith("#")}


def shard_exports() -> set[str]:
    """The metric names an anchor exports on /metrics about the shard table and the frozen
    indexes' compactions (services/anchor/metrics.py `register_shard_metrics`), as the anchor of
    shard 0 renders them once its freezer read a table with a frozen shard and compacted: the
    loopback topology of the live test runs one shard, which has no table."""

    async def step(telemetry: Telemetry) -> None:
        store, index = MemoryStore(), MemoryIndex()
        table = (Shard(0, "exports.test/log", "active", 0), Shard(1, "exports.test/log/1", "frozen", 1))
        await update_table(store, lambda _: table)
        rows = TenantIndex(bytes(32), origin="exports.test/log")
        eraser = Eraser(index=index, tenant_index=rows, journal=store)

        async def remake(entry: bytes, at: int) -> bytes:
            raise AssertionError("no freeze here")

        parts = ShardAnchor(store, cast(Sequencer, None), index, eraser, rows, (), remake)  # not sealed
        freezer = Freezer(0, parts)
        register_shard_metrics(telemetry, (freezer,))
        await freezer.step()

    telemetry = Telemetry()
    asyncio.run(step(telemetry))
    return {line.split("{")[0].split(" ")[0] for line in telemetry.prometheus() if not line.startswith("#")}

