"""The anchor service as aiohttp routes: the sequencer behind internal routes, health, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import orjson
from aiohttp import web
from opentelemetry.metrics import CallbackOptions, Observation

from merkle.digests import Digest, parse_digest
from services.anchor.backup import Backups, after_restore
from services.anchor.committer import COMMITTER, committer_context
from services.anchor.erasure import Eraser
from services.anchor.freeze import Freezer, ShardAnchor
from services.anchor.keys import LogKeys, generate_keys, load_keys
from services.anchor.registrar import Registrar
from services.anchor.rotation import HISTORY, load_history
from services.anchor.sequencer import Sequencer
from services.anchor.tenant_index import TenantIndex
from services.anchor.witnesses import witness_context
from services.common.answers import send_json
from services.common.components import KeysConfig, NotarConfig
from services.common.index_key import ensure_index_key, load_index_key
from services.common.problems import read_json
from services.common.resources import LIVENESS, STORE, new_app
from services.common.shedding import add_shedding
from services.common.stores import open_index
from services.common.telemetry import TELEMETRY, SequencerTelemetry, Telemetry
from services.internal.wire import (
    PENDING,
    SCITT_ENTRIES,
    decode_page,
    decode_request,
    decode_scitt_entry,
    decode_wait_ms,
    encode_answer,
    encode_forgotten,
)
from services.model import Digests
from services.published import layout
from services.published.reader import LogReader
from services.published.trust import keys_document
from storage.base import Index, ObjectStore
from storage.errors import BadRequest, NotarError

SEQUENCER = web.AppKey("sequencer", Sequencer)
ERASER = web.AppKey("eraser", Eraser)
REGISTRAR = web.AppKey("registrar", Registrar)
BACKUPS = web.AppKey("backups", Backups)
MAX_BODY = 4 * 1024 * 1024
READY_LAG = 200_000  # entries signed but not yet published before /readyz says no


def keys_from(config: KeysConfig) -> LogKeys:
    """The log's signing keys; ConfigError when one is missing or not named after ORIGIN."""
    return load_keys(config.data_dir, config.origin, config.log_key_file, config.clock_key_file)


def ensure_keys(config: KeysConfig) -> list[Path]:
    """Create the signing keys and the index key that are missing; the paths created."""
    created = generate_keys(config.data_dir, config.origin, config.log_key_file, config.clock_key_file)
    index_key = ensure_index_key(config)
    return created if index_key is None else [*created, index_key]


def backups_from(config: NotarConfig, store: ObjectStore, index: Index) -> Backups | None:
    """The backups of the index (BACKUP_INTERVAL_S, BACKUP_KEEP), or None when they are off."""
    if not config.backups.interval_s:
        return None
    return Backups(
        store=store,
        index=index,
        origin=config.sequencer.origin,
        scratch=config.backups.scratch,
        keep=config.backups.keep,
        interval_s=config.backups.interval_s,
    )


def sequencer_context(config: NotarConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    """Opens the index and runs the sequencer of `config` over the app's store, and the eraser
    of its tenant index; writes the keys document (services.published.trust) for stateless verify
    pods."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        keys = keys_from(config.keys)
        rows = TenantIndex(load_index_key(config.keys), origin=config.sequencer.origin)
        store = app[STORE]
        history = await load_history(store, keys)  # ConfigError unless keys are its current ones
        w = config.witnesses
        # before the sequencer signs with keys a rotation introduced: verify pods know them first
        await store.put(layout.keys_key(), orjson.dumps(keys_document([history], w.witnesses, w.quorum)))
        index = open_index(config.store)
        seq = Sequencer(
            store=store,
            index=index,
            keys=keys,
            config=config.sequencer,
            tenant_index=rows,
            telemetry=SequencerTelemetry(app[TELEMETRY]),
            history=history,
        )
        eraser = Eraser(index=index, tenant_index=rows, journal=store)
        backups = backups_from(config, store, index)
        reader = LogReader(store, origin=config.sequencer.origin)
        registrar = Registrar(sequencer=seq, index=index, keys=keys, reader=reader)
        tasks: list[asyncio.Task[None]] = []
        try:
            await seq.start()
            await after_restore(index, eraser)  # before any look-up is served
            app[HISTORY] = history
            app[SEQUENCER] = seq
            app[ERASER] = eraser
            app[REGISTRAR] = registrar
            tasks.append(asyncio.create_task(eraser.run(), name="notar-eraser"))
            if backups is not None:
                app[BACKUPS] = backups
                tasks.append(asyncio.create_task(backups.run(), name="notar-backups"))
            # freezing (`notar shard freeze`) and frozen shards' compaction: shard 0 until K shards
            parts = ShardAnchor(store, seq, index, eraser, rows, config.committer.kinds)
            freezer = Freezer(0, parts, compact_s=config.shards.frozen_compact_s, stop=tasks[1:])
            tasks.append(asyncio.create_task(freezer.run(), name="notar-freezer"))
            yield
            await seq.close()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await index.close()

    return ctx


async def submit_entries(request: web.Request) -> web.StreamResponse:
    tenant, digests = decode_request(await read_json(request, limit=MAX_BODY))
    return await send_json(request, await submit_timed(request.app, tenant, digests))


def _tenant_and_digest(request: web.Request) -> tuple[str, Digest]:
    """`?tenant=&digest=` of the look-up and erasure routes (the tenant is checked where used)."""
    try:
        return request.query.get("tenant", ""), parse_digest(request.query.get("digest"))
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e


async def lookup_entries(request: web.Request) -> web.Response:
    tenant, digest = _tenant_and_digest(request)
    limit, after = decode_page(request.query)
    try:
        found = await request.app[SEQUENCER].lookup(tenant, digest, limit=limit, after=after)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    return web.json_response({"entries": [{"index": i, "salt": s.hex()} for i, s in found]})


async def forget_entries(request: web.Request) -> web.Response:
    """Erasure: deletes the tenant-index rows of that tenant's notarizations of that digest."""
    tenant, digest = _tenant_and_digest(request)
    try:
        count = await request.app[ERASER].forget(tenant, digest.multihash)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    return web.json_response(encode_forgotten(count))


async def register_statement(request: web.Request) -> web.Response:
    """A SCITT entry to sequence (services.internal.wire): its receipt, or PENDING."""
    wait_s = decode_wait_ms(request.query.get("wait_ms"))
    entry = decode_scitt_entry(await request.read())
    answer = await request.app[REGISTRAR].register(entry, wait_s)
    return web.Response(body=answer or PENDING, content_type="application/cose")


async def statement_receipt(request: web.Request) -> web.Response:
    try:
        entry = decode_scitt_entry(bytes.fromhex(request.match_info["entry"]))
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-entry") from e
    answer = await request.app[REGISTRAR].receipt(entry)
    return web.Response(body=answer or PENDING, content_type="application/cose")


def register_anchor_metrics(tel: Telemetry, app: web.Application) -> None:
    """The sequencer's and the committer's state as observable instruments of `tel`, read at
    each collection (a /metrics scrape, an OTLP push): nothing is added to the hot path."""
    seq = app[SEQUENCER]
    committer = app.get(COMMITTER)

    def counter(name: str, read: Callable[[], int], what: str) -> None:
        tel.meter.create_observable_counter(
            name, [lambda _: [Observation(read())]], unit="1", description=what
        )

    def gauge(name: str, read: Callable[[], int], what: str) -> None:
        tel.meter.create_observable_gauge(name, [lambda _: [Observation(read())]], unit="1", description=what)

    s = seq.stats
    counter("notar_entries_sequenced", lambda: s.sequenced, "entries sequenced (in a signed checkpoint)")
    counter("notar_batches", lambda: s.batches, "batches sequenced (one signed checkpoint each)")
    gauge("notar_tree_size", lambda: s.signed_size, "size of the latest signed checkpoint")
    gauge("notar_published_tree_size", lambda: s.published_size, "size of the published checkpoint")
    gauge(
        "notar_publication_lag_entries",
        lambda: s.signed_size - s.published_size,
        "entries signed but not yet published to the object store",
    )
    gauge("notar_queue_depth", lambda: seq.queued, "entries waiting for a batch")
    gauge(
        "notar_clock_behind_seconds",
        lambda: seq.clock_behind_s,
        "how far the wall clock is behind the last cosigned time (checkpoints keep that time meanwhile)",
    )
    gauge("notar_sequencer_stopped", lambda: int(seq.stopped is not None), "1 once it stopped for good")
    gauge("notar_sequencer_refusing", lambda: int(seq.refusing is not None), "1 while it refuses entries")
    lease = seq.lease
    if lease is not None:
        counter("notar_lease_lapses", lambda: lease.lapses, "times the lease was renewed after going overdue")
        tel.meter.create_observable_gauge(
            "notar_lease_acquired_timestamp_seconds",
            [lambda _: [] if lease.acquired_at is None else [Observation(lease.acquired_at)]],
            unit="s",
            description="when this process took the log's lease (Unix time)",
        )
    backups = app.get(BACKUPS)
    if backups is not None:
        register_backup_metrics(tel, backups)
    if committer is None:
        return
    status = committer.status

    def anchor_lag(_: CallbackOptions) -> list[Observation]:
        return [Observation(s.signed_size - st.anchored_size, {"kind": k}) for k, st in status.items()]

    def last_anchored(_: CallbackOptions) -> list[Observation]:
        return [
            Observation(st.last_success, {"kind": k})
            for k, st in status.items()
            if st.last_success is not None
        ]

    tel.meter.create_observable_gauge(
        "notar_anchor_lag_entries",
        [anchor_lag],
        unit="1",
        description="entries in the log not yet covered by an anchor, per kind (chain)",
    )
    tel.meter.create_observable_gauge(
        "notar_anchor_last_success_timestamp_seconds",
        [last_anchored],
        unit="s",
        description="when each kind last stored an anchor record (Unix time)",
    )


def register_backup_metrics(tel: Telemetry, backups: Backups) -> None:
    """The backups' figures: the alerts compare their age with their interval (runbook)."""
    b = backups.stats

    def last_success(_: CallbackOptions) -> list[Observation]:
        return [] if b.last_success is None else [Observation(b.last_success)]

    tel.meter.create_observable_gauge(
        "notar_backup_last_success_timestamp_seconds",
        [last_success],
        unit="s",
        description="when the newest complete backup of the anchor's index was taken (Unix time)",
    )
    tel.meter.create_observable_gauge(
        "notar_backup_size_bytes",
        [lambda _: [Observation(b.size)]],
        unit="By",
        description="bytes of the newest complete backup of the anchor's index",
    )
    tel.meter.create_observable_gauge(
        "notar_backup_interval_seconds",
        [lambda _: [Observation(backups.interval_s)]],
        unit="s",
        description="BACKUP_INTERVAL_S: how often the anchor's index is backed up",
    )
    tel.meter.create_observable_counter(
        "notar_backup_failures",
        [lambda _: [Observation(b.failures)]],
        unit="1",
        description="backups of the anchor's index that failed (each is retried)",
    )


async def metrics_context(app: web.Application) -> AsyncIterator[None]:
    """Registers the anchor's observable metrics once the sequencer and the committer run."""
    register_anchor_metrics(app[TELEMETRY], app)
    yield


async def submit_timed(app: web.Application, tenant: str, digests: Digests) -> bytes:
    """`Sequencer.submit` (its time: queue, batch, durable write, signature, in the histogram),
    answered with the finished receipts (services.internal.wire); BadRequest for a tenant name
    that is not one."""
    seq = app[SEQUENCER]
    parsed = digests.digests()
    start = time.perf_counter()
    try:
        results = await seq.submit(tenant, parsed)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    app[TELEMETRY].submit_seconds.record(time.perf_counter() - start)
    return encode_answer(origin=seq.origin, tenant=tenant, digests=parsed, results=results)


async def anchor_ready(app: web.Application) -> str | None:
    """Started, not stopped, acknowledging entries, and publication not more than a queue behind."""
    seq = app.get(SEQUENCER)
    if seq is None:
        return "sequencer starting"
    if seq.stopped is not None:
        return f"sequencer stopped: {seq.stopped}"
    if seq.refusing is not None:
        return f"refusing entries for now: {seq.refusing}"
    unwritable = await seq.unwritable()
    if unwritable is not None:
        return unwritable
    lag = seq.stats.signed_size - seq.stats.published_size
    if lag > READY_LAG:
        return f"publication is {lag} entries behind"
    return None


def anchor_alive(app: web.Application) -> str | None:
    """Why /healthz says the process must be restarted: its sequencer stopped for good."""
    seq = app.get(SEQUENCER)
    stopped = None if seq is None else seq.stopped
    if stopped is None:
        return None
    return f"the sequencer stopped for good, only a restart resumes it: {stopped}"


def setup(app: web.Application, config: NotarConfig, *, internal_routes: bool = True) -> None:
    """Add the anchor to `app` (after the store context). `internal_routes` adds the routes
    ingest and verify pods call (`/internal/v1/entries`: submit as any tenant, read or erase any
    tenant's salts, with no API key). `notar serve` leaves them out: its other roles call the sequencer
    in process, and its port is the public one."""
    app.cleanup_ctx.append(sequencer_context(config))
    if config.committer.kinds:
        committer = committer_context(config.committer, config.chains, keys=lambda: keys_from(config.keys))
        app.cleanup_ctx.append(committer)
    if config.witnesses.witnesses:
        app.cleanup_ctx.append(
            witness_context(config.witnesses, config.sequencer.origin, keys=lambda: keys_from(config.keys))
        )
    app.cleanup_ctx.append(metrics_context)
    app[LIVENESS].append(anchor_alive)
    if internal_routes:
        add_shedding(app, [("POST", "/internal/v1/entries")], lambda a: a[SEQUENCER].refusal())
        app.router.add_post("/internal/v1/entries", submit_entries)
        app.router.add_get("/internal/v1/entries", lookup_entries)
        app.router.add_delete("/internal/v1/entries", forget_entries)
        add_shedding(app, [("POST", SCITT_ENTRIES)], lambda a: a[SEQUENCER].refusal())
        app.router.add_post(SCITT_ENTRIES, register_statement)
        app.router.add_get(SCITT_ENTRIES + "/{entry}", statement_receipt)


def create_app(config: NotarConfig, *, env: Mapping[str, str] | None = None) -> web.Application:
    """The anchor role alone: internal routes for ingest and verify pods, health, metrics."""
    app = new_app(config, env, readiness=[anchor_ready], client_max_size=MAX_BODY)
    setup(app, config)
    return app


class LocalAnchor:
    """The in-process anchor (`notar serve`): the app's sequencer as Submitter, Lookup and
    Registrations."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def submit(self, tenant: str, digests: Digests) -> bytes:
        return await submit_timed(self._app, tenant, digests)

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[tuple[int, bytes]]:
        return await self._app[SEQUENCER].lookup(tenant, digest, limit=limit, after=after)

    async def forget(self, tenant: str, digest: Digest) -> int:
        return await self._app[ERASER].forget(tenant, digest.multihash)

    def refusal(self, count: int = 1) -> NotarError | None:
        return self._app[SEQUENCER].refusal(count)

    def spare(self) -> int | None:
        """services.ingest.spread.Loaded: how many entries the sequencer would queue now."""
        return self._app[SEQUENCER].spare

    async def register(self, entry: bytes, wait_s: float) -> bytes | None:
        return await self._app[REGISTRAR].register(entry, wait_s)

    async def receipt(self, entry: bytes) -> bytes | None:
        return await self._app[REGISTRAR].receipt(entry)
