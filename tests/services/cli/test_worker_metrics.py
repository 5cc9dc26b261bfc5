"""One pod's /metrics out of its processes' (services.common.pod_metrics): counters and histograms
summed series by series, gauges kept per process under a `worker` label, the anchor's HTTP
families (its internal routes) left out, no family twice; promtool accepts the result."""

from __future__ import annotations

import subprocess

from services.common.pod_metrics import merge, parse

WORKER_1 = [
    "# HELP notar_http_requests_total HTTP requests answered",
    "# TYPE notar_http_requests_total counter",
    'notar_http_requests_total{method="GET",route="/v1/keys",status="200"} 3',
    "# HELP notar_http_request_duration_seconds time to answer",
    "# TYPE notar_http_request_duration_seconds histogram",
    'notar_http_request_duration_seconds_bucket{method="GET",le="0.1"} 2',
    'notar_http_request_duration_seconds_bucket{method="GET",le="+Inf"} 3',
    'notar_http_request_duration_seconds_sum{method="GET"} 0.25',
    'notar_http_request_duration_seconds_count{method="GET"} 3',
    "# HELP notar_store_clock_offset_seconds clock offset",
    "# TYPE notar_store_clock_offset_seconds gauge",
    "notar_store_clock_offset_seconds 0.5",
    "# TYPE notar_worker_info gauge",
    'notar_worker_info{worker="1",pid="10"} 1',
]
WORKER_2 = [
    "# HELP notar_http_requests_total HTTP requests answered",
    "# TYPE notar_http_requests_total counter",
    'notar_http_requests_total{method="GET",route="/v1/keys",status="200"} 4',
    'notar_http_requests_total{method="POST",route="/v1/digests",status="200"} 1',
    "# HELP notar_http_request_duration_seconds time to answer",
    "# TYPE notar_http_request_duration_seconds histogram",
    'notar_http_request_duration_seconds_bucket{method="GET",le="0.1"} 4',
    'notar_http_request_duration_seconds_bucket{method="GET",le="+Inf"} 4',
    'notar_http_request_duration_seconds_sum{method="GET"} 0.125',
    'notar_http_request_duration_seconds_count{method="GET"} 4',
    "# HELP notar_store_clock_offset_seconds clock offset",
    "# TYPE notar_store_clock_offset_seconds gauge",
    "notar_store_clock_offset_seconds 0.25",
    "# TYPE notar_worker_info gauge",
    'notar_worker_info{worker="2",pid="11"} 1',
]
ANCHOR = [
    "# HELP notar_http_requests_total HTTP requests answered",
    "# TYPE notar_http_requests_total counter",
    'notar_http_requests_total{method="POST",route="/internal/v1/entries",status="200"} 1',
    "# HELP notar_store_errors_total store calls that failed",
    "# TYPE notar_store_errors_total counter",
    'notar_store_errors_total{operation="put"} 2',
    "# HELP notar_anchor_consecutive_failures failed anchoring attempts since the last success",
    "# TYPE notar_anchor_consecutive_failures gauge",
    'notar_anchor_consecutive_failures{kind="local"} 3',
    "# TYPE notar_witness_consecutive_failures gauge",
    'notar_witness_consecutive_failures{witness="w 1"} 7',
]
W1_STORE = [
    "# HELP notar_store_errors_total store calls that failed",
    "# TYPE notar_store_errors_total counter",
    'notar_store_errors_total{operation="put"} 1',
    'notar_store_errors_total{operation="get"} 5',
]


def samples(lines: list[str]) -> dict[str, float]:
    return {k: v for family in parse(lines).values() for k, v in family.samples.items()}


def test_counters_and_histograms_are_summed_gauges_kept_per_worker() -> None:
    out = merge([("1", WORKER_1), ("2", WORKER_2)])
    got = samples(out)
    assert got['notar_http_requests_total{method="GET",route="/v1/keys",status="200"}'] == 7
    assert got['notar_http_requests_total{method="POST",route="/v1/digests",status="200"}'] == 1
    assert got['notar_http_request_duration_seconds_bucket{method="GET",le="0.1"}'] == 6
    assert got['notar_http_request_duration_seconds_bucket{method="GET",le="+Inf"}'] == 7
    assert got['notar_http_request_duration_seconds_sum{method="GET"}'] == 0.375
    assert got['notar_store_clock_offset_seconds{worker="1"}'] == 0.5
    assert got['notar_store_clock_offset_seconds{worker="2"}'] == 0.25
    assert "notar_store_clock_offset_seconds" not in got
    assert got['notar_worker_info{worker="1",pid="10"}'] == 1
    assert got['notar_worker_info{worker="2",pid="11"}'] == 1
    types = [line.split()[2] for line in out if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)) == 4


def test_the_anchors_families_are_its_own_but_its_internal_http_ones() -> None:
    """The anchor's failure gauges show the anchor's values, not a worker's; its request counter
    (internal routes: the workers' requests again) is left out; store errors are the pod's sum."""
    out = merge([("1", WORKER_1 + W1_STORE), ("2", WORKER_2), ("anchor", ANCHOR)])
    got = samples(out)
    assert got['notar_anchor_consecutive_failures{kind="local"}'] == 3
    assert got['notar_witness_consecutive_failures{witness="w 1"}'] == 7
    assert not any("/internal/" in k for k in got)
    assert got['notar_http_requests_total{method="GET",route="/v1/keys",status="200"}'] == 7
    assert got['notar_store_errors_total{operation="put"}'] == 3
    assert got['notar_store_errors_total{operation="get"}'] == 5
    assert "# TYPE notar_witness_consecutive_failures gauge" in out


def test_promtool_accepts_the_merged_exposition() -> None:
    out = merge([("1", WORKER_1 + W1_STORE), ("2", WORKER_2), ("anchor", ANCHOR)])
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input="\n".join(out) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    # promtool exits 0, or 3 for lint advice only (help text style); never 1 (a parse error)
    assert checked.returncode in (0, 3) and "error" not in checked.stderr.lower(), checked.stderr
