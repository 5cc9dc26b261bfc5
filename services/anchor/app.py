"""The anchor service as aiohttp routes: the sequencer behind internal routes, health, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

import orjson
from aiohttp import web

from merkle.digests import Digest, parse_digest
from services.anchor.committer import committer_context
from services.anchor.keys import LogKeys, generate_keys, load_keys
from services.anchor.sequencer import Item, Sequenced, Sequencer, SequencerConfig
from services.anchor.wire import decode_request, encode_results
from services.common.config import Settings
from services.common.problems import BadRequest, read_json
from services.common.resources import METRICS, STORE, new_app
from services.common.stores import data_dir, open_index

SEQUENCER = web.AppKey("sequencer", Sequencer)
MAX_BODY = 4 * 1024 * 1024
LOG_PREFIX = "log/"
READY_LAG = 200_000  # entries signed but not yet published before /readyz says no


def sequencer_config(settings: Settings) -> SequencerConfig:
    return SequencerConfig(
        origin=settings.get("ORIGIN"),
        prefix=LOG_PREFIX,
        batch_ms=settings.get("BATCH_MS"),
        batch_max=settings.get("BATCH_MAX"),
        queue_max=settings.get("QUEUE_MAX"),
    )


def _key_files(settings: Settings) -> tuple[Path | None, Path | None]:
    log_file, clock_file = settings.get("LOG_KEY_FILE"), settings.get("CLOCK_KEY_FILE")
    return (Path(log_file) if log_file else None, Path(clock_file) if clock_file else None)


def keys_from(settings: Settings) -> LogKeys:
    return load_keys(data_dir(settings), *_key_files(settings))


def ensure_keys(settings: Settings) -> list[Path]:
    """Create the signing keys that are missing; the paths created."""
    return generate_keys(data_dir(settings), settings.get("ORIGIN"), *_key_files(settings))


def sequencer_context(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """Opens the index and runs the sequencer of `settings` over the app's store; publishes the
    verifier keys next to the log (`log/keys.json`) for stateless verify pods."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        keys = keys_from(settings)
        store = app[STORE]
        index = open_index(settings)
        seq = Sequencer(store=store, index=index, keys=keys, config=sequencer_config(settings))
        try:
            await seq.start()
            await store.put(LOG_PREFIX + "keys.json", _keys_document(keys))
            app[SEQUENCER] = seq
            app[METRICS].append(lambda: sequencer_metrics(seq))
            yield
            await seq.close()
        finally:
            await index.close()

    return ctx


def _keys_document(keys: LogKeys) -> bytes:
    return orjson.dumps({**keys.verifier_keys, "witnesses": []})


async def submit_entries(request: web.Request) -> web.Response:
    items = decode_request(await read_json(request, limit=MAX_BODY))
    results = await request.app[SEQUENCER].submit(items)
    return web.json_response(encode_results(results))


async def lookup_entries(request: web.Request) -> web.Response:
    try:
        digest = parse_digest(request.query.get("digest"))
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e
    tenant = request.query.get("tenant", "")
    try:
        found = await request.app[SEQUENCER].lookup(tenant, digest)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    return web.json_response({"entries": [{"index": i, "salt": s.hex()} for i, s in found]})


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sequencer_metrics(seq: Sequencer) -> list[str]:
    s = seq.stats
    lat = list(s.latencies)
    return [
        "# TYPE notar_entries_sequenced_total counter",
        f"notar_entries_sequenced_total {s.sequenced}",
        "# TYPE notar_batches_total counter",
        f"notar_batches_total {s.batches}",
        "# TYPE notar_tree_size gauge",
        f"notar_tree_size {s.signed_size}",
        "# TYPE notar_published_tree_size gauge",
        f"notar_published_tree_size {s.published_size}",
        "# TYPE notar_publication_lag_entries gauge",
        f"notar_publication_lag_entries {s.signed_size - s.published_size}",
        "# TYPE notar_queue_depth gauge",
        f"notar_queue_depth {seq.queued}",
        "# TYPE notar_submit_to_checkpoint_seconds summary",
        f'notar_submit_to_checkpoint_seconds{{quantile="0.5"}} {_quantile(lat, 0.5):.6f}',
        f'notar_submit_to_checkpoint_seconds{{quantile="0.99"}} {_quantile(lat, 0.99):.6f}',
        f"notar_submit_to_checkpoint_seconds_count {len(lat)}",
    ]


async def anchor_ready(app: web.Application) -> str | None:
    """Started, not stopped, and publication not more than a queue behind."""
    seq = app.get(SEQUENCER)
    if seq is None:
        return "sequencer starting"
    if seq.failed is not None:
        return f"sequencer stopped: {seq.failed}"
    lag = seq.stats.signed_size - seq.stats.published_size
    if lag > READY_LAG:
        return f"publication is {lag} entries behind"
    return None


def setup(app: web.Application, settings: Settings) -> None:
    """Add the anchor to `app` (after the store context)."""
    app.cleanup_ctx.append(sequencer_context(settings))
    if settings.get("ANCHORS"):
        app.cleanup_ctx.append(committer_context(settings, keys=keys_from))
    app.router.add_post("/internal/v1/entries", submit_entries)
    app.router.add_get("/internal/v1/entries", lookup_entries)


def create_app(settings: Settings, *, env: Mapping[str, str] | None = None) -> web.Application:
    """The anchor role alone: internal routes for ingest and verify pods, health, metrics."""
    app = new_app(settings, env, readiness=[anchor_ready], client_max_size=MAX_BODY)
    setup(app, settings)
    return app


class LocalAnchor:
    """The in-process anchor (`notar serve`): the app's sequencer as Submitter and Lookup."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def submit(self, items: Sequence[Item]) -> list[Sequenced]:
        return await self._app[SEQUENCER].submit(items)

    async def lookup(self, tenant: str, digest: Digest) -> list[tuple[int, bytes]]:
        return await self._app[SEQUENCER].lookup(tenant, digest)
