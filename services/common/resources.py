"""What every service app shares: the object store, the tenant registry, bearer auth, health."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress

from aiohttp import web

from services.common.components import NotarConfig
from services.common.openapi import openapi_json
from services.common.problems import READ_TIMEOUT, UPLOADS, Uploads, problem, problem_middleware
from services.common.stores import open_store
from services.common.telemetry import TELEMETRY, TracedStore, telemetry_context, telemetry_middleware
from services.common.tenants import TenantRegistry
from services.published.layout import checkpoint_key
from storage.base import ObjectStore
from storage.errors import NotFoundError, StorageError, Unauthorized
from storage.s3 import S3Store

STORE = web.AppKey("store", ObjectStore)
TENANTS = web.AppKey("tenants", TenantRegistry)


def store_context(
    config: NotarConfig, env: Mapping[str, str]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Opens the configured store (once per app, however many services share it)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        opened = await open_store(config.store, env)
        try:  # before "listening": a store that does not answer stops start-up, said in one line
            await _read_checkpoint(opened)
        except StorageError as e:
            await opened.close()
            raise StorageError(f"the object store does not answer: {e}", location=e.location) from e
        except BaseException:
            await opened.close()
            raise
        if isinstance(opened, S3Store):
            app[TELEMETRY].observe_store_clock(lambda: opened.clock_offset_s)
        store = TracedStore(opened, app[TELEMETRY])
        app[STORE] = store
        app[TENANTS] = TenantRegistry(store, cache_s=config.http.key_cache_s)
        yield
        await store.close()

    return ctx


async def _read_checkpoint(store: ObjectStore) -> None:
    """StorageError unless the store answers a read (a missing checkpoint is an answer too)."""
    with suppress(NotFoundError):
        await store.get(checkpoint_key())


async def tenant_of(request: web.Request) -> str:
    """The tenant of the request's `Authorization: Bearer <api key>`; 401 problem+json otherwise."""
    headers = request.headers.getall("Authorization", [])
    if len(headers) > 1:  # which one a proxy checked and which one we would use is anyone's guess
        raise Unauthorized("send one Authorization header, not several")
    header = headers[0] if headers else ""
    scheme, _, key = header.partition(" ")
    tenant = None
    if scheme.lower() == "bearer" and key.strip():
        tenant = await request.app[TENANTS].resolve(key.strip())
    if tenant is None:
        raise Unauthorized(
            "an API key is required: Authorization: Bearer <key>"
            if not header
            else "the API key is not valid"
        )
    return tenant


Liveness = Callable[[web.Application], str | None]
LIVENESS = web.AppKey("liveness", list[Liveness])
"""Checks of /healthz: each says why the process is stopped for good and must be restarted, or
None. Only such states belong here, never one the process recovers from by itself (a store
outage, a full disk: /readyz says those), or liveness probes would restart it for nothing."""


async def healthz(request: web.Request) -> web.Response:
    dead = [reason for check in request.app[LIVENESS] if (reason := check(request.app)) is not None]
    if dead:
        return problem(503, "stopped", "Stopped, restart needed", "; ".join(dead))
    return web.Response(text="ok\n")


METRICS = web.AppKey("metrics", list[Callable[[], list[str]]])
Readiness = Callable[[web.Application], Awaitable[str | None]]
READINESS = web.AppKey("readiness", list[Readiness])


async def store_ready(app: web.Application) -> str | None:
    """The store answers (a missing checkpoint is an answer too)."""
    try:
        await _read_checkpoint(app[STORE])
    except (StorageError, KeyError) as e:
        return f"object store unreachable: {e}"
    return None


DETAILS = web.AppKey("details", list[Callable[[], list[str]]])
"""Lines /readyz shows without deciding readiness (e.g. one per anchor kind)."""


async def readyz(request: web.Request) -> web.Response:
    problems = [p for check in request.app[READINESS] if (p := await check(request.app)) is not None]
    details = "".join(line + "\n" for d in request.app[DETAILS] for line in d())
    if problems:
        return web.Response(status=503, text="\n".join(problems) + "\n" + details)
    return web.Response(text="ready\n" + details)


PodMetrics = Callable[[list[str]], Awaitable[list[str]]]
POD_METRICS: web.AppKey[PodMetrics] = web.AppKey("pod_metrics")
"""When set, what /metrics answers given this process's own lines: a worker's, the pod's
(services.cli.worker_metrics)."""


async def metrics(request: web.Request) -> web.Response:
    lines: list[str] = []
    for provider in request.app[METRICS]:
        lines += provider()
    pod = request.app.get(POD_METRICS)
    if pod is not None:
        lines = await pod(lines)
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def new_app(
    config: NotarConfig,
    env: Mapping[str, str] | None,
    *,
    readiness: list[Readiness],
    client_max_size: int = 1024**2,
) -> web.Application:
    """An app with the telemetry and problem+json middlewares, the store, /healthz (its checks in
    `app[LIVENESS]`), /readyz and /metrics. Its Telemetry comes from `env` unless `app[TELEMETRY]`
    is set before it starts."""
    app = web.Application(
        middlewares=[telemetry_middleware, problem_middleware], client_max_size=client_max_size
    )
    env = dict(os.environ) if env is None else env
    app[READ_TIMEOUT] = float(config.http.read_timeout_s)
    app[UPLOADS] = Uploads()
    app[METRICS] = [lambda: app[TELEMETRY].prometheus()]
    app[READINESS] = [store_ready, *readiness]
    app[LIVENESS] = []
    app[DETAILS] = []
    app.cleanup_ctx.append(telemetry_context(env))
    app.cleanup_ctx.append(store_context(config, env))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi_json)
    return app
