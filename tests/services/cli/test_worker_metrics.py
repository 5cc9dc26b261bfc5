"""One pod's /metrics out of its processes' (services.common.pod_metrics): counters and histograms
summed series by series, gauges kept per process under a `worker` label, the anchor's HTTP
families (its internal routes) left out, no family twice; promtool accepts the result."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

import orjson

from services.cli.worker_metrics import pod_lines, socket_path
from services.common.pod_counters import carry
from services.common.pod_metrics import merge, merge_parsed, parse

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


# --- counters that never go down (services.common.pod_counters) ------------------------------


def worker(index: int, pid: int, requests: int, errors: int, offset: float) -> list[str]:
    """A worker's exposition: a counter, a histogram, a gauge and its notar_worker_info."""
    return [
        "# HELP notar_http_requests_total HTTP requests answered",
        "# TYPE notar_http_requests_total counter",
        f'notar_http_requests_total{{route="/v1/digests",status="200"}} {requests}',
        *([f'notar_http_requests_total{{route="/v1/digests",status="503"}} {errors}'] if errors else []),
        "# TYPE notar_http_request_duration_seconds histogram",
        f'notar_http_request_duration_seconds_bucket{{le="+Inf"}} {requests}',
        f"notar_http_request_duration_seconds_count {requests}",
        "# TYPE notar_store_clock_offset_seconds gauge",
        f"notar_store_clock_offset_seconds {offset}",
        "# TYPE notar_worker_info gauge",
        f'notar_worker_info{{worker="{index}",pid="{pid}"}} 1',
    ]


OK = 'notar_http_requests_total{route="/v1/digests",status="200"}'
FAILED = 'notar_http_requests_total{route="/v1/digests",status="503"}'
COUNT = "notar_http_request_duration_seconds_count"


def scrape(state: dict[str, Any], *sources: tuple[str, list[str]]) -> dict[str, float]:
    """One scrape of the pod through `carry` (its state through JSON, as the file keeps it)."""
    read = [(name, parse(lines)) for name, lines in sources]
    out = merge_parsed(carry(state, read))
    state.update(orjson.loads(orjson.dumps(state)))
    return samples(out)


def test_a_worker_started_again_adds_to_what_its_predecessor_showed() -> None:
    state: dict[str, Any] = {}
    first = scrape(state, ("1", worker(1, 10, 100, 3, 0.5)), ("2", worker(2, 11, 50, 0, 0.25)))
    assert first[OK] == 150 and first[FAILED] == 3 and first[COUNT] == 150
    # worker 2 is killed and started again (pid 12): it counts from 0; the pod does not drop
    again = scrape(state, ("1", worker(1, 10, 110, 3, 0.5)), ("2", worker(2, 12, 4, 0, 0.125)))
    assert again[OK] == 110 + 50 + 4 and again[COUNT] == 164 and again[FAILED] == 3
    assert again['notar_store_clock_offset_seconds{worker="2"}'] == 0.125  # a gauge: the new one's
    # worker 1 started again too, having shown 3 errors: the series stays, carried
    third = scrape(state, ("1", worker(1, 13, 1, 0, 0.5)), ("2", worker(2, 12, 9, 0, 0.125)))
    assert third[OK] == 110 + 1 + 50 + 9 and third[FAILED] == 3 and third[COUNT] == 170
    # and a second restart of worker 2 carries both of its predecessors
    fourth = scrape(state, ("1", worker(1, 13, 2, 0, 0.5)), ("2", worker(2, 14, 0, 0, 0.125)))
    assert fourth[OK] == 110 + 2 + 50 + 9 + 0


def test_a_worker_left_out_of_a_scrape_counts_with_what_it_last_showed_and_only_once() -> None:
    state: dict[str, Any] = {}
    scrape(state, ("1", worker(1, 10, 100, 0, 0.5)), ("2", worker(2, 11, 50, 2, 0.25)))
    alone = scrape(state, ("1", worker(1, 10, 120, 0, 0.5)))  # worker 2 too slow, or dead
    assert alone[OK] == 170 and alone[FAILED] == 2 and alone[COUNT] == 170
    assert 'notar_store_clock_offset_seconds{worker="2"}' not in alone  # no gauge of it
    assert not any("pid=\"11\"" in series for series in alone)
    back = scrape(state, ("1", worker(1, 10, 121, 0, 0.5)), ("2", worker(2, 11, 60, 2, 0.25)))
    assert back[OK] == 181 and back[FAILED] == 2  # the same process: its own counts, not twice
    scrape(state, ("1", worker(1, 10, 122, 0, 0.5)))  # left out again, then started again
    new = scrape(state, ("1", worker(1, 10, 123, 0, 0.5)), ("2", worker(2, 15, 1, 0, 0.25)))
    assert new[OK] == 123 + 60 + 1 and new[FAILED] == 2


def test_a_scrape_read_before_a_later_one_saved_keeps_the_higher_counts() -> None:
    """Two workers answer two scrapes at once: the one that read first saves last. A restart
    then still carries the higher counts the other scrape had shown."""
    state: dict[str, Any] = {}
    scrape(state, ("1", worker(1, 10, 100, 0, 0.5)))
    scrape(state, ("1", worker(1, 10, 90, 0, 0.5)))  # read earlier, saved later
    after = scrape(state, ("1", worker(1, 16, 5, 0, 0.5)))
    assert after[OK] == 105


def test_the_anchor_has_no_pid_and_is_never_taken_for_started_again() -> None:
    state: dict[str, Any] = {}
    scrape(state, ("1", worker(1, 10, 1, 0, 0.5)), ("anchor", ANCHOR))
    out = scrape(state, ("1", worker(1, 10, 1, 0, 0.5)), ("anchor", ANCHOR))
    assert out['notar_store_errors_total{operation="put"}'] == 2  # not 4
    left_out = scrape(state, ("1", worker(1, 10, 1, 0, 0.5)))
    assert left_out['notar_store_errors_total{operation="put"}'] == 2
    assert not any("/internal/" in k for k in left_out)  # its internal routes stay out


async def test_the_pods_scrapes_through_sockets_never_go_down(tmp_path: Path) -> None:
    """pod_lines with the state in a real private directory: a sibling that refuses (its socket
    left by a killed worker) and then one started again."""
    served: list[str] = worker(2, 11, 50, 1, 0.25)

    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(("\n".join(served) + "\n").encode())
        await writer.drain()
        writer.close()

    path = socket_path(tmp_path, 2)
    server = await asyncio.start_unix_server(answer, path=str(path))
    first = samples(await pod_lines(worker(1, 10, 100, 0, 0.5), tmp_path, 1, None))
    assert first[OK] == 150 and first[FAILED] == 1
    server.close()
    await server.wait_closed()
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX) as left:  # what a killed worker leaves: refused
        left.bind(str(path))
    refused = await pod_lines(worker(1, 10, 101, 0, 0.5), tmp_path, 1, None)
    assert samples(refused)[OK] == 151 and samples(refused)[FAILED] == 1
    assert any(line.startswith("# the metrics of worker 2 could not be read") for line in refused)
    path.unlink()
    served[:] = worker(2, 12, 3, 0, 0.25)
    server = await asyncio.start_unix_server(answer, path=str(path))
    again = samples(await pod_lines(worker(1, 10, 102, 0, 0.5), tmp_path, 1, None))
    server.close()
    await server.wait_closed()
    assert again[OK] == 102 + 50 + 3 and again[FAILED] == 1
    assert (tmp_path / "counters.json").exists()
