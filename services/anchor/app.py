"""The anchor service as an aiohttp app: the sequencer behind an internal route, health, metrics."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from aiohttp import web

from services.anchor.keys import LogKeys, generate_keys, load_keys
from services.anchor.sequencer import Sequencer, SequencerConfig
from services.anchor.wire import decode_request, encode_results
from services.common.config import Settings
from services.common.problems import problem_middleware, read_json
from services.common.stores import data_dir, open_index, open_store

SEQUENCER = web.AppKey("sequencer", Sequencer)
MAX_BODY = 4 * 1024 * 1024
LOG_PREFIX = "log/"


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


def sequencer_context(
    settings: Settings, env: Mapping[str, str]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that opens the store and index and runs the sequencer of `settings`."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        keys = keys_from(settings)
        store = await open_store(settings, env)
        index = open_index(settings)
        seq = Sequencer(store=store, index=index, keys=keys, config=sequencer_config(settings))
        try:
            await seq.start()
            app[SEQUENCER] = seq
            yield
            await seq.close()
        finally:
            await index.close()
            await store.close()

    return ctx


async def submit_entries(request: web.Request) -> web.Response:
    items = decode_request(await read_json(request, limit=MAX_BODY))
    results = await request.app[SEQUENCER].submit(items)
    return web.json_response(encode_results(results))


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    seq = request.app.get(SEQUENCER)
    if seq is None or seq.failed is not None:
        reason = "starting" if seq is None else f"stopped: {seq.failed}"
        return web.Response(status=503, text=f"sequencer {reason}\n")
    return web.Response(text="ready\n")


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def metrics(request: web.Request) -> web.Response:
    seq = request.app[SEQUENCER]
    s = seq.stats
    lat = list(s.latencies)
    lines = [
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
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def create_app(settings: Settings, *, env: Mapping[str, str] | None = None) -> web.Application:
    """The anchor app of `settings`: POST /internal/v1/entries for ingest pods, health, metrics."""
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY)
    app.cleanup_ctx.append(sequencer_context(settings, dict(os.environ if env is None else env)))
    app.router.add_post("/internal/v1/entries", submit_entries)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
