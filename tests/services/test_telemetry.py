"""Traces across ingest → anchor → store, metrics and JSON logs, asserted with the OpenTelemetry
SDK's in-memory exporters on two real apps (ingest and anchor roles) talking over loopback HTTP."""

from __future__ import annotations

import asyncio
import importlib
import io
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, Tracer

from merkle import verify_receipt
from services.anchor.app import ensure_keys, keys_from
from services.cli.serve import build_app
from services.common.components import load
from services.common.resources import TENANTS
from services.common.telemetry import TELEMETRY, AccessLogger, JsonFormatter, Telemetry, TracedStore
from services.common.traced_store import OPERATIONS
from services.common.tracing import SequencerTelemetry
from storage.errors import NotFoundError, StorageError
from storage.memory import Faults, MemoryStore

ORIGIN = "otel.notar.test/log"
Client = TestClient[Any, Any]


@dataclass
class Pair:
    ingest: Client
    anchor: Client
    spans: InMemorySpanExporter
    anchor_metrics: InMemoryMetricReader
    acme: dict[str, str]
    keys: list[str]


@pytest.fixture
async def pair(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """Both apps export their spans to `spans`, unless parametrized False (no exporter, as
    `notar serve` without OTEL_EXPORTER_OTLP_ENDPOINT)."""
    spans = InMemorySpanExporter()
    exported = [SimpleSpanProcessor(spans)] if getattr(request, "param", True) else []
    reader = InMemoryMetricReader()
    base = {
        "DATA_DIR": str(tmp_path),
        "ORIGIN": ORIGIN,
        "BATCH_MS": "150",
        "BATCH_MIN_MS": "150",
        "ANCHOR_INTERVAL_S": "1",
    }
    config = load(flags=base, env={}, config_file=None)
    ensure_keys(config.keys)
    anchor_app = build_app("anchor", config, {})
    anchor_app[TELEMETRY] = Telemetry(
        service="notar-anchor", span_processors=exported, metric_readers=[reader]
    )
    anchor_server = TestServer(anchor_app)
    await anchor_server.start_server(access_log_class=AccessLogger)
    anchor = TestClient(anchor_server)
    await anchor.start_server()
    url = str(anchor.make_url("")).rstrip("/")
    ingest_config = load(flags={**base, "ANCHOR_URL": url}, env={}, config_file=None)
    ingest_app = build_app("ingest", ingest_config, {})
    ingest_app[TELEMETRY] = Telemetry(service="notar-ingest", span_processors=exported)
    server = TestServer(ingest_app)
    await server.start_server(access_log_class=AccessLogger)
    ingest = TestClient(server)
    await ingest.start_server()
    try:
        key = await ingest_app[TENANTS].add("acme")
        keys = list(keys_from(config.keys).verifier_keys.values())
        yield Pair(ingest, anchor, spans, reader, {"Authorization": f"Bearer {key}"}, keys)
    finally:
        await ingest.close()
        await anchor.close()


def b3(n: int) -> str:
    return "blake3:" + f"{n:064x}"


async def notarize(p: Pair, digests: list[str], headers: dict[str, str] | None = None) -> Any:
    r = await p.ingest.post("/v1/digests", json={"digests": digests}, headers={**p.acme, **(headers or {})})
    assert r.status == 200, await r.text()
    return (await r.json())["receipts"]


async def wait_spans(p: Pair, cond: Callable[[Sequence[ReadableSpan]], bool]) -> Sequence[ReadableSpan]:
    async with asyncio.timeout(10):
        while not cond(spans := p.spans.get_finished_spans()):
            await asyncio.sleep(0.02)
    return spans


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def ctx(span: ReadableSpan) -> Any:
    assert span.context is not None
    return span.context


async def test_one_trace_runs_from_ingest_through_the_anchor_into_the_store(pair: Pair) -> None:
    receipts = await notarize(pair, [b3(1), b3(2), b3(3)])
    assert all(verify_receipt(r, keys=pair.keys).valid for r in receipts)
    spans = await wait_spans(pair, lambda s: bool(named(s, "anchor.publish")))

    ingest = one(spans, "POST /v1/digests")
    client = one(spans, "anchor POST /internal/v1/entries")
    anchor = one(spans, "POST /internal/v1/entries")
    batch = one(spans, "anchor.batch")
    publish = one(spans, "anchor.publish")
    trace_id = ctx(ingest).trace_id
    for s in (client, anchor, batch, publish):
        assert ctx(s).trace_id == trace_id, f"{s.name} left the trace"
    assert ingest.kind == SpanKind.SERVER and ingest.parent is None
    assert client.kind == SpanKind.CLIENT and parent_id(client) == ctx(ingest).span_id
    assert anchor.kind == SpanKind.SERVER and parent_id(anchor) == ctx(client).span_id
    assert anchor.parent is not None and anchor.parent.is_remote, "came in as a W3C traceparent"
    assert parent_id(batch) == ctx(anchor).span_id
    assert batch.attributes is not None and batch.attributes["notar.batch.entries"] == 3
    assert parent_id(publish) == ctx(batch).span_id
    tile_writes = [
        s for s in spans if s.name == "store put_all_if_absent" and parent_id(s) == ctx(publish).span_id
    ]
    checkpoint = [
        s for s in spans if s.name == "store put_if_version" and parent_id(s) == ctx(publish).span_id
    ]
    assert tile_writes and checkpoint, [s.name for s in spans]
    assert all(ctx(s).trace_id == trace_id for s in tile_writes + checkpoint)
    areas = {s.attributes["notar.store.area"] for s in tile_writes if s.attributes is not None}
    assert areas <= {"log/tile"} and not any("blake3" in str(s.attributes) for s in spans), "no digest leaks"
    assert ingest.attributes is not None and ingest.attributes["http.response.status_code"] == 200
    assert len(named(spans, "anchor.batch")) == 1, "one span per batch, never one per entry"


async def test_an_outside_traceparent_is_continued(pair: Pair) -> None:
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    header = {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01"}
    await notarize(pair, [b3(9)], header)
    spans = await wait_spans(pair, lambda s: bool(named(s, "anchor.batch")))
    ingest = one(spans, "POST /v1/digests")
    assert ctx(ingest).trace_id == trace_id and parent_id(ingest) == span_id
    assert ctx(one(spans, "anchor.batch")).trace_id == trace_id


async def test_a_batch_links_every_submission_it_served(pair: Pair) -> None:
    await asyncio.gather(notarize(pair, [b3(20)]), notarize(pair, [b3(21), b3(22)]))
    spans = await wait_spans(pair, lambda s: len(named(s, "POST /internal/v1/entries")) == 2)
    spans = await wait_spans(pair, lambda s: bool(named(s, "anchor.batch")))
    batches = named(spans, "anchor.batch")
    assert len(batches) == 1, "both requests arrived within BATCH_MIN_MS: one batch"
    batch = batches[0]
    servers = {ctx(s).span_id for s in named(spans, "POST /internal/v1/entries")}
    linked = {link.context.span_id for link in batch.links}
    assert parent_id(batch) in servers and linked == servers - {parent_id(batch)}
    assert batch.attributes is not None and batch.attributes["notar.batch.entries"] == 3
    assert len({ctx(s).trace_id for s in named(spans, "POST /v1/digests")}) == 2


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


def value(reader: InMemoryMetricReader, name: str, **attrs: str) -> Any:
    found = [p for p in points(reader, name) if dict(p.attributes or {}) == attrs]
    assert len(found) == 1, (name, attrs, points(reader, name))
    return found[0]


async def test_anchor_metrics_in_memory_and_on_metrics(pair: Pair) -> None:
    reader = pair.anchor_metrics
    await notarize(pair, [b3(30), b3(31)])
    await notarize(pair, [b3(32), b3(33), b3(34)])
    assert value(reader, "notar_entries_sequenced").value == 5
    assert value(reader, "notar_batches").value == 2
    sizes = value(reader, "notar_batch_entries")
    assert (sizes.count, sizes.sum, sizes.min, sizes.max) == (2, 5, 2, 3)
    latency = value(reader, "notar_submit_to_checkpoint_seconds")
    assert latency.count == 2 and 0 < latency.sum < 20
    assert value(reader, "notar_queue_depth").value == 0
    assert value(reader, "notar_tree_size").value == 5
    ok = value(reader, "notar_http_requests", route="/internal/v1/entries", method="POST", status="200")
    assert ok.value == 2

    async def published_and_anchored() -> bool:
        lag = value(reader, "notar_publication_lag_entries").value
        return bool(lag == 0 and value(reader, "notar_anchor_lag_entries", kind="local").value == 0)

    async with asyncio.timeout(15):
        while not await published_and_anchored():
            await asyncio.sleep(0.05)
    assert value(reader, "notar_anchor_last_success_timestamp_seconds", kind="local").value > 0
    assert 0 < time.time() - value(reader, "notar_lease_acquired_timestamp_seconds").value < 600

    text = await (await pair.anchor.get("/metrics")).text()
    lines = text.splitlines()
    for expected in (
        "notar_entries_sequenced_total 5",
        "notar_batches_total 2",
        "notar_tree_size 5",
        "notar_publication_lag_entries 0",
        "notar_queue_depth 0",
        "notar_sequencer_stopped 0",
        "notar_sequencer_refusing 0",
        "notar_lease_lapses_total 0",
        'notar_store_errors_total{operation="put_if_absent"} 0',  # every operation's series from 0
        "notar_batch_entries_count 2",
        "notar_batch_entries_sum 5",
        'notar_batch_entries_bucket{le="1.0"} 0',
        'notar_batch_entries_bucket{le="10.0"} 2',
        'notar_batch_entries_bucket{le="+Inf"} 2',
        "notar_submit_to_checkpoint_seconds_count 2",
        'notar_anchor_lag_entries{kind="local"} 0',
        'notar_http_requests_total{method="POST",route="/internal/v1/entries",status="200"} 2',
        "# TYPE notar_entries_sequenced_total counter",
        "# TYPE notar_submit_to_checkpoint_seconds histogram",
        'notar_anchor_records_total{kind="local"} 1',  # the committer's own lines are still there
    ):
        assert expected in lines, f"{expected!r} not in /metrics:\n{text}"
    assert not any("/metrics" in line or "/readyz" in line for line in lines), "probes are not counted"


async def test_ingest_counts_refusals_by_status(pair: Pair) -> None:
    r = await pair.ingest.post("/v1/digests", json={"digests": ["md5:00"]}, headers=pair.acme)
    assert r.status == 400
    r = await pair.ingest.post("/v1/digests", json={"digests": [b3(1)]})
    assert r.status == 401
    text = await (await pair.ingest.get("/metrics")).text()
    assert 'notar_http_requests_total{method="POST",route="/v1/digests",status="400"} 1' in text
    assert 'notar_http_requests_total{method="POST",route="/v1/digests",status="401"} 1' in text


async def test_store_errors_are_counted_and_marked_on_their_span() -> None:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    tel = Telemetry(span_processors=[SimpleSpanProcessor(spans)], metric_readers=[reader])
    faults = Faults()
    store = TracedStore(MemoryStore(faults=faults), tel)
    await store.put("log/checkpoint", b"x")
    faults.inject("put", "log/*", times=2)
    with pytest.raises(StorageError):
        await store.put("log/checkpoint", b"y")
    with tel.tracer.start_as_current_span("request"):
        with pytest.raises(StorageError):
            await store.put("log/checkpoint", b"z")
        with pytest.raises(NotFoundError):
            await store.get("log/absent")
        assert [k async for k in store.list("log/")] == ["log/checkpoint"]
    assert value(reader, "notar_store_errors", operation="put").value == 2
    errors = {str(p.attributes["operation"]): p.value for p in points(reader, "notar_store_errors")}
    assert errors == {op: 2 if op == "put" else 0 for op in OPERATIONS}, "a miss is no error; all start at 0"
    assert value(reader, "notar_store_operation_seconds", operation="put").count == 3
    finished = spans.get_finished_spans()
    put = one(finished, "store put")
    assert put.status.status_code == trace.StatusCode.ERROR, "the failed write is an error span"
    assert one(finished, "store get").status.status_code == trace.StatusCode.UNSET, "a miss is no error"
    assert len(finished) == 3, "no spans outside a trace (probes, lease renewals)"


def test_json_logs_carry_the_trace_and_span_ids() -> None:
    tel = Telemetry()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("notar.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside %s", "any span")
        with tel.tracer.start_as_current_span("work") as span:
            logger.warning("inside")
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    outside, inside, failed = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert outside["message"] == "outside any span" and "trace_id" not in outside
    assert outside["level"] == "warning" and outside["logger"] == "notar.test.json"
    sc = span.get_span_context()
    assert inside["trace_id"] == f"{sc.trace_id:032x}" and inside["span_id"] == f"{sc.span_id:016x}"
    assert "ValueError: boom" in failed["exception"] and failed["trace_id"] == inside["trace_id"]


def test_otlp_is_off_without_an_endpoint_or_without_the_exporter(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plain = Telemetry.from_env({})
    assert plain.tracer_provider._active_span_processor._span_processors == ()

    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with caplog.at_level(logging.WARNING, "notar.telemetry"):
        tel = Telemetry.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert "not installed" in caplog.text
    assert tel.tracer_provider._active_span_processor._span_processors == ()


def test_prometheus_text_escapes_labels_and_names_counters() -> None:
    tel = Telemetry()
    counter = tel.meter.create_counter("notar.test.things")
    counter.add(2, {"path": 'a"b\\c\nd'})
    tel.meter.create_up_down_counter("notar_test_level").add(-3)
    lines = tel.prometheus()
    assert "# TYPE notar_test_things_total counter" in lines
    assert 'notar_test_things_total{path="a\\"b\\\\c\\nd"} 2' in lines
    assert "# TYPE notar_test_level gauge" in lines and "notar_test_level -3" in lines
    assert not [line for line in lines if line.startswith("notar_http_requests")], "nothing recorded yet"


async def test_access_log_lines_join_their_trace_and_keep_digests_out(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    digest = b3(77)
    with caplog.at_level(logging.INFO, "aiohttp.access"):
        await notarize(pair, [digest])
        r = await pair.ingest.get(f"/v1/documents/{digest}", headers=pair.acme)
        assert r.status == 404
        await pair.ingest.get("/healthz")
    spans = await wait_spans(pair, lambda s: bool(named(s, "GET /v1/documents/{digest}")))
    lines = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert [r.getMessage().split()[:3] for r in lines] == [
        ["POST", "/internal/v1/entries", "200"],  # the anchor answers first
        ["POST", "/v1/digests", "200"],
        ["GET", "/v1/documents/{digest}", "404"],
    ], "one line per request, probes left out"
    assert all(digest.split(":")[1] not in r.getMessage() for r in lines)
    anchor, ingest, document = (orjson.loads(JsonFormatter().format(r)) for r in lines)
    assert ingest["trace_id"] == anchor["trace_id"] == f"{ctx(one(spans, 'POST /v1/digests')).trace_id:032x}"
    assert anchor["span_id"] == f"{ctx(one(spans, 'POST /internal/v1/entries')).span_id:016x}"
    assert document["span_id"] == f"{ctx(one(spans, 'GET /v1/documents/{digest}')).span_id:016x}"


@pytest.mark.parametrize("pair", [False], indirect=True)
async def test_without_an_exporter_requests_keep_trace_ids_and_pass_them_on(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    with caplog.at_level(logging.INFO, "aiohttp.access"):
        await notarize(pair, [b3(5)], {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01"})
        await notarize(pair, [b3(6)])
    lines = [orjson.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "aiohttp.access"]
    assert [line["message"].split()[:3] for line in lines] == [
        ["POST", "/internal/v1/entries", "200"],
        ["POST", "/v1/digests", "200"],
    ] * 2
    anchor, ingest, anchor2, ingest2 = lines
    assert anchor["trace_id"] == ingest["trace_id"] == f"{trace_id:032x}", "the caller's trace goes on"
    assert len({f"{span_id:016x}", ingest["span_id"], anchor["span_id"]}) == 3, "each request its own span id"
    assert anchor2["trace_id"] == ingest2["trace_id"] != ingest["trace_id"], "a new trace, passed on"
    assert int(ingest2["trace_id"], 16) and int(ingest2["span_id"], 16)
    assert pair.spans.get_finished_spans() == (), "no exporter: nothing recorded"


@dataclass
class Submission:
    span: SpanContext
    size: int


class CountingTracer:
    """A tracer that counts the spans asked of it, and makes them with the real one."""

    def __init__(self, real: Tracer) -> None:
        self.real, self.asked = real, 0

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        return self.real.start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        return self.real.start_as_current_span(*args, **kwargs)


@pytest.mark.parametrize("exported", [True, False])
def test_the_sequencer_makes_spans_only_when_they_are_exported(exported: bool) -> None:
    """With an exporter, a batch and a publication round are spans, children of the first
    caller's; without, no span is made at all and the first caller's span context is current
    instead, so what the batch logs keeps its caller's trace."""
    spans = InMemorySpanExporter()
    tel = Telemetry(span_processors=[SimpleSpanProcessor(spans)] if exported else [])
    counting = CountingTracer(tel.tracer)
    tel.tracer = counting  # type: ignore[assignment]
    sequencer = SequencerTelemetry(tel)
    caller = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(1))
    with sequencer.batch([Submission(trace.INVALID_SPAN_CONTEXT, 2), Submission(caller, 3)]):
        in_batch = trace.get_current_span().get_span_context()
    publishing = sequencer.publishing([caller], 5)
    in_round = trace.get_current_span().get_span_context()
    publishing.end()
    assert not trace.get_current_span().get_span_context().is_valid, "nothing left current"
    assert in_batch.trace_id == in_round.trace_id == caller.trace_id
    finished = spans.get_finished_spans()
    if exported:
        assert counting.asked == 2
        assert [s.name for s in finished] == ["anchor.batch", "anchor.publish"]
        assert all(parent_id(s) == caller.span_id for s in finished)
        assert {in_batch.span_id, in_round.span_id} == {ctx(s).span_id for s in finished}
    else:
        assert counting.asked == 0 and finished == ()
        assert in_batch == in_round == caller
