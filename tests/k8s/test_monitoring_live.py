"""The rules and the dashboard against real processes: the loopback topology (one anchor, two
ingest, two verify `notar serve` processes on SeaweedFS, as Kubernetes runs them) exports every
metric they use, and a real Prometheus scraping it with the example scrape job of
k8s/monitoring/prometheus.yml and the shipped rules evaluates every rule without error, raises no
alert while all is well, and fires NotarAnchorDown when the anchor stops answering (SIGSTOP),
which resolves when it answers again. The anchor has one `notar witness serve` as its witness.

The rules are loaded unchanged except NotarAnchorDown's `for: 1m`, shortened so that the test does
not wait a minute; Prometheus scrapes and evaluates every second."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from loadtest.reliability.cluster import Cluster, S3Bucket, make_cluster, running
from tests.k8s.conftest import tool
from tests.k8s.monitoring import (
    MONITORING,
    RULE_FILES,
    dashboard_queries,
    routes,
    rule_queries,
    series_names,
    shard_exports,
    spread_exports,
)
from tests.prometheus import Prometheus, start_prometheus
from tests.seaweed import S3Target
from tests.services.witness.harness import WitnessProcess, keygen

WAIT_S = 30.0
SHORTENED = "NotarAnchorDown"
T = TypeVar("T")


def until(what: str, probe: Callable[[], T | None], timeout: float = WAIT_S) -> T:
    """Poll ``probe`` until it returns something; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.25)


def get(url: str, key: str | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        body: bytes = r.read()
        return body


def post_digests(url: str, key: str, digests: list[str]) -> None:
    request = urllib.request.Request(
        url + "/v1/digests",
        data=json.dumps({"digests": digests}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200


def scrape(url: str) -> list[str]:
    return [line for line in get(url + "/metrics").decode().splitlines() if line and not line.startswith("#")]


def anchored(cluster: Cluster) -> bool | None:
    lines = scrape(cluster.anchor.url)
    done = any(line.startswith("notar_anchor_last_success_timestamp_seconds{") for line in lines)
    caught_up = 'notar_anchor_lag_entries{kind="local"} 0' in lines
    return True if done and caught_up else None


def witnessed(cluster: Cluster) -> bool | None:
    lines = scrape(cluster.anchor.url)
    size = next(float(x.split()[-1]) for x in lines if x.startswith("notar_tree_size "))
    return True if f"notar_witness_quorum_tree_size {size:g}" in lines else None


@pytest.fixture(scope="module")
def topology(s3_target: S3Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The topology after some traffic: digests notarized through each ingest pod, receipts read
    from each verify pod, the entries anchored (local); then left idle."""
    bucket = S3Bucket(s3_target.endpoint, s3_target.bucket, s3_target.access_key, s3_target.secret_key)
    workdir = tmp_path_factory.mktemp("topology")
    # one witness, so that the witness metrics are exported (WITNESSES): it starts once the
    # anchor made the log key its logs file names; the anchor retries it meanwhile
    wkey = keygen(workdir / "witness", "witness.monitoring.notar.test/w")
    witness = WitnessProcess(workdir / "witness", workdir / "witness-logs.txt")
    witnesses = {"NOTAR_WITNESSES": f"{wkey}@{witness.url}", "NOTAR_WITNESS_INTERVAL_S": "1"}
    cluster = make_cluster(workdir, origin="monitoring.notar.test/log", bucket=bucket, env=witnesses)
    with running(cluster):
        try:
            log_key = json.loads(get(cluster.verify_urls[0] + "/v1/keys"))["logs"][0]["log"]
            witness.logs_file.write_text(log_key + "\n")
            witness.start()
            key = cluster.api_keys["acme"]
            digests = [f"sha256:{os.urandom(32).hex()}" for _ in cluster.ingest_urls]
            for url, digest in zip(cluster.ingest_urls, digests, strict=True):
                post_digests(url, key, [digest])
            for url, digest in zip(cluster.verify_urls, digests, strict=True):
                get(f"{url}/v1/receipts/{digest}", key)
            until("the entries anchored", lambda: anchored(cluster))
            until("the entries witnessed", lambda: witnessed(cluster))
            yield cluster
        finally:
            witness.stop()
            for pod in cluster.pods:  # a test that failed with the anchor stopped
                if pod.alive():
                    pod.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]


def test_every_metric_the_rules_and_the_dashboard_use_is_exported(topology: Cluster) -> None:
    exported: set[str] = set()
    series: list[str] = []
    for pod in topology.pods:
        lines = scrape(pod.url)
        series += lines
        exported |= {line.split("{")[0].split(" ")[0] for line in lines}
    exported |= spread_exports()  # one shard here: ingest's per-shard series, from a spread over two
    exported |= shard_exports()  # and no shard table: the anchors' shard series, from one with two
    queries = rule_queries() + dashboard_queries()
    used = set().union(*(series_names(q) for q in queries))
    metrics = {n for n in used if ":" not in n}
    assert metrics, "no metric found in the rules"
    assert not metrics - exported, f"used but not exported by any role: {sorted(metrics - exported)}"
    for route in set().union(*(routes(q) for q in queries)):
        assert any(f'route="{route}"' in s for s in series), f"no series has route={route!r}"


def scrape_job(cluster: Cluster) -> dict[str, Any]:
    """The notar job of k8s/monitoring/prometheus.yml, its pods given as Kubernetes service
    discovery would give them, so that its relabelling runs as shipped."""
    example = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (job,) = example["scrape_configs"]
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [
        {
            "targets": [f"127.0.0.1:{pod.port}"],
            "labels": {
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": "notar",
                "__meta_kubernetes_pod_label_app_kubernetes_io_component": pod.role,
                "__meta_kubernetes_pod_container_port_name": "http",
                "__meta_kubernetes_namespace": "notar",
                "__meta_kubernetes_pod_name": f"notar-{pod.role}-{pod.port}",
            },
        }
        for pod in cluster.pods
    ]
    return {**job, "scrape_interval": "1s", "scrape_timeout": "1s"}


def shipped_rules(workdir: Path) -> list[str]:
    """The rule files, with NotarAnchorDown's `for` shortened to 2 s."""
    files = []
    for path in RULE_FILES:
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == SHORTENED:
                    rule["for"] = "2s"
        out = workdir / path.name
        out.write_text(yaml.safe_dump(doc))
        files.append(str(out))
    return files


def notar_alerts(prom: Prometheus) -> list[dict[str, Any]]:
    return [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"].startswith("Notar")]


def firing(prom: Prometheus, name: str) -> dict[str, Any] | None:
    return next(
        (a for a in notar_alerts(prom) if a["labels"]["alertname"] == name and a["state"] == "firing"), None
    )


def test_prometheus_fires_anchor_down_when_the_anchor_stops(topology: Cluster, tmp_path: Path) -> None:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": shipped_rules(tmp_path),
        "scrape_configs": [scrape_job(topology)],
    }
    with start_prometheus(tool("prometheus"), config, tmp_path / "prometheus") as prom:

        def all_up() -> bool | None:
            targets = prom.api("targets")["activeTargets"]
            jobs = sorted(t["labels"]["job"] for t in targets if t["health"] == "up")
            return True if jobs == sorted(f"notar-{p.role}" for p in topology.pods) else None

        until("every pod scraped, its job named after its role", all_up)

        def evaluated() -> list[dict[str, Any]] | None:
            groups = prom.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return (
                rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None
            )

        time.sleep(3)  # a few evaluations over several scrapes
        rules = until("every rule evaluated", evaluated)
        shipped = [r for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]]
        assert len(rules) == len(shipped)
        broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not broken, f"rules that fail to evaluate on real data: {broken}"
        assert not notar_alerts(prom), f"alerts on a healthy topology: {notar_alerts(prom)}"
        for query in dashboard_queries():
            prom.api("query", query=query)  # each dashboard query is valid PromQL
        recorded = prom.api("query", query="notar:store_clock_offset_seconds:spread")["result"]
        assert recorded and float(recorded[0]["value"][1]) < 3, recorded

        anchor = topology.anchor
        assert anchor.process is not None
        anchor.process.send_signal(signal.SIGSTOP)
        try:
            alert = until("NotarAnchorDown firing", lambda: firing(prom, SHORTENED))
            assert alert["labels"]["job"] == "notar-anchor"
            assert alert["labels"]["pod"] == f"notar-anchor-{anchor.port}"
            assert alert["labels"]["severity"] == "critical"
            assert alert["annotations"]["runbook_url"] == "docs/runbook.md#notaranchordown"
        finally:
            anchor.process.send_signal(signal.SIGCONT)
        until("NotarAnchorDown resolved", lambda: True if firing(prom, SHORTENED) is None else None)
