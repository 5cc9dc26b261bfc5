"""k8s/monitoring/: the Prometheus rules pass `promtool check rules` and the unit tests of
tests/k8s/promtool/ (`promtool test rules`), which cover every alert firing and not firing; every
alert links to its section of docs/runbook.md; the kustomization renders and validates strictly
and ships every rule file and the dashboard."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.k8s.conftest import tool
from tests.k8s.monitoring import (
    DASHBOARD,
    MONITORING,
    PROMTOOL_TESTS,
    RULE_FILES,
    alerts,
    dashboard_queries,
    promtool_cases,
    promtool_rule_files,
    recorded,
    rule_queries,
    runbook_sections,
    series_names,
    shard_exports,
    spread_exports,
)
from tests.k8s.test_manifests import KUBE_VERSIONS

SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=120)


def test_the_rule_files_are_valid() -> None:
    assert RULE_FILES and alerts()
    run = promtool("check", "rules", *map(str, RULE_FILES))
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_promtool_unit_tests_pass() -> None:
    run = promtool("test", "rules", *map(str, PROMTOOL_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    """The check above is not vacuous: promtool compares the alerts' labels and annotations."""
    source = PROMTOOL_TESTS[0]
    text = source.read_text()
    assert "severity: critical" in text
    bad = tmp_path / source.name
    text = text.replace("severity: critical", "severity: warning", 1)
    bad.write_text(text.replace("../../../", f"{source.parents[3]}/"))  # the rule files from here
    run = promtool("test", "rules", str(bad))
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    defined = alerts()
    seen: dict[str, set[bool]] = defaultdict(set)
    for _, alert, firing in promtool_cases():
        assert alert in defined, f"a promtool test names an alert that does not exist: {alert}"
        seen[alert].add(firing)
    for alert in defined:
        assert True in seen[alert], f"no promtool test has {alert} firing"
        assert False in seen[alert], f"no promtool test has {alert} not firing"


def test_every_rule_file_is_unit_tested_and_shipped() -> None:
    assert {p.resolve() for p in RULE_FILES} <= promtool_rule_files()
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    (rules_map,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "notar-prometheus-rules"]
    assert sorted(rules_map["files"]) == sorted(f"rules/{p.name}" for p in RULE_FILES)


def test_every_alert_has_a_severity_a_summary_and_its_runbook_section() -> None:
    sections = runbook_sections()
    for name, rule in alerts().items():
        assert name.startswith("Notar"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        section = sections.get(name.lower())
        assert section is not None, f"docs/runbook.md has no section ## {name}"
        for part in ("**Means**", "**Confirm**", "**Do**"):
            assert part in section, f"the runbook section of {name} lacks {part}"
    orphans = {s for s in sections if s.startswith("notar")} - {a.lower() for a in alerts()}
    assert not orphans, f"runbook sections of alerts that do not exist: {orphans}"


def test_the_recorded_series_used_are_recorded() -> None:
    used = set().union(*(series_names(q) for q in dashboard_queries() + rule_queries()))
    missing = {n for n in used if ":" in n} - recorded()
    assert not missing, f"recorded series used but not recorded: {missing}"


def test_the_per_shard_series_used_are_what_ingest_exports() -> None:
    """The shard rules and panels read ingest's per-shard series (notar_spread_*), which exist only
    with several shards: each is one a spread over shards exports (the live test checks the rest
    on the one-shard topology)."""
    exported = spread_exports()
    assert "notar_spread_shard_up" in exported and "notar_spread_entries_total" in exported
    used = set().union(*(series_names(q) for q in dashboard_queries() + rule_queries()))
    spread = {n for n in used if n.startswith("notar_spread")}
    assert spread, "no rule or panel reads the shards as ingest sees them"
    assert spread <= exported, f"not exported: {sorted(spread - exported)}"


def test_the_shard_state_and_compaction_series_used_are_what_anchors_export() -> None:
    """The rules and panels on freezing and frozen shards read the anchors' series of the shard
    table and of the frozen compactions, which exist only with several shards."""
    exported = shard_exports()
    assert {"notar_shard_state", "notar_frozen_tombstones_pending"} <= exported
    used = set().union(*(series_names(q) for q in dashboard_queries() + rule_queries()))
    watched = {n for n in used if n.startswith(("notar_shard_", "notar_frozen_"))}
    assert len(watched) == 5, f"the rules and panels read only {sorted(watched)}"
    assert watched <= exported, f"not exported: {sorted(watched - exported)}"


def test_the_dashboard_is_grafana_json_with_the_sections_asked() -> None:
    board = json.loads(DASHBOARD.read_text())
    rows = {p["title"] for p in board["panels"] if p["type"] == "row"}
    assert {"Throughput", "Latency", "Lags", "Queue and pushback", "Anchors", "Shards"} <= rows
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in board["panels"]:
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
            assert p["datasource"]["uid"] == "${datasource}", p["title"]


@pytest.fixture(scope="module")
def rendered_monitoring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = subprocess.run(
        [tool("kubectl"), "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    out = tmp_path_factory.mktemp("monitoring") / "monitoring.yaml"
    out.write_text(run.stdout)
    return out


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_monitoring_kustomization_validates_strictly(rendered_monitoring: Path, version: str) -> None:
    run = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(rendered_monitoring)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_config_maps_carry_the_files_unchanged(rendered_monitoring: Path) -> None:
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(rendered_monitoring.read_text()) if d}
    assert {d["kind"] for d in docs.values()} == {"ConfigMap"}
    assert {d["metadata"]["namespace"] for d in docs.values()} == {"monitoring"}
    shipped = docs["notar-prometheus-rules"]["data"]
    assert shipped == {p.name: p.read_text() for p in RULE_FILES}
    dashboard = docs["notar-grafana-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["notar.json"]) == json.loads(DASHBOARD.read_text())
