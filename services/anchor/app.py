"""The anchor service as aiohttp routes: the sequencer behind internal routes, health, metrics."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack

from aiohttp import web

from merkle.digests import Digest, parse_digest
from services.anchor.backup import Backups
from services.anchor.committer import COMMITTER, committer_context
from services.anchor.erasure import Eraser
from services.anchor.freeze import Freezer, drop_local_index
from services.anchor.freeze import ShardAnchor as FreezingParts
from services.anchor.frozen_index import FrozenIndex
from services.anchor.frozen_shards import FrozenShards, drop_when_frozen
from services.anchor.introductions import introduce, keep_introducing
from services.anchor.keys import LogKeys
from services.anchor.metrics import register_anchor_metrics, register_shard_metrics
from services.anchor.rotation import HISTORY
from services.anchor.sequencer import Sequencer
from services.anchor.shardset import (
    ShardAnchor,
    running_shard,
    shard_config,
    shards_to_run,
)
from services.anchor.shardset import ensure_keys as ensure_keys  # re-exported: CLI and tests
from services.anchor.shardset import keys_from as keys_from
from services.anchor.witnesses import witness_context
from services.common.answers import COMPACT, accepts_compact, send_json
from services.common.components import NotarConfig
from services.common.index_key import load_index_key
from services.common.problems import read_json
from services.common.resources import LIVENESS, STORE, new_app
from services.common.shedding import add_shedding
from services.common.telemetry import TELEMETRY, SequencerTelemetry
from services.internal.directory import FixedShards, ShardLink
from services.internal.wire import (
    PENDING,
    RUN_NODES,
    SCITT_ENTRIES,
    accepts_run,
    decode_page,
    decode_request,
    decode_scitt_entry,
    decode_wait_ms,
    encode_answer,
    encode_compact,
    encode_forgotten,
    encode_found,
    encode_run,
)
from services.model import Digests, Found, Lookup
from storage.errors import BadRequest, NotarError, NotFoundError, PushbackError

SEQUENCER = web.AppKey("sequencer", Sequencer)
ERASER = web.AppKey("eraser", Eraser)
BACKUPS = web.AppKey("backups", Backups)
MAX_BODY = 4 * 1024 * 1024
READY_LAG = 200_000  # entries signed but not yet published before /readyz says no


RUNNING = web.AppKey("running_shards", tuple[ShardAnchor, ...])
"""The shards this process runs, by id; the first is its home shard (shard 0 in one process, the
claimed one in an anchor pod), whose sequencer is also `SEQUENCER` (and so on)."""
FROZEN = web.AppKey("frozen_shards", FrozenShards)
"""The frozen shards whose look-ups and erasures this process answers from the object store."""
FREEZERS = web.AppKey("freezers", tuple[Freezer, ...])
"""The freezing and compacting task of each running shard, in the order of RUNNING."""


def shards_context(
    config: NotarConfig, env: Mapping[str, str] | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Runs the shards of `shards_to_run` over the app's store (services.anchor.shardset), with
    the eraser and backups of each; their keys are created when missing, and said so."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        shards = await shards_to_run(config, store, env)
        in_process = env is None
        tasks: list[asyncio.Task[None]] = []
        freezers: list[Freezer] = []
        async with AsyncExitStack() as stack:
            running = []
            for shard in shards:
                cfg = shard_config(config, shard.id, in_process=in_process)
                if config.shards.count > 1:
                    for path in ensure_keys(cfg.keys):
                        print(f"created key {path} (mode 0600) for {cfg.sequencer.origin}", flush=True)
                    vkeys = keys_from(cfg.keys).verifier_keys
                    print(f"{cfg.sequencer.origin} log key:   {vkeys['log']}", flush=True)
                    print(f"{cfg.sequencer.origin} clock key: {vkeys['clock']}", flush=True)
                telemetry = SequencerTelemetry(app[TELEMETRY])
                running.append(await stack.enter_async_context(running_shard(shard, cfg, store, telemetry)))
            home = running[0]
            app[RUNNING] = tuple(running)
            frozen = app[FROZEN] = FrozenShards(store, load_index_key(home.config.keys))
            await frozen.load()
            for one in running:  # SCITT statements logged by a shard frozen since
                one.registrar.read_frozen(frozen.scitt_receipt)
            if in_process:  # a crash after `frozen` in the table, before on_frozen, left its RocksDB
                for gone in {s.id for s in frozen.shards()} - {one.shard.id for one in running}:
                    drop_local_index(shard_config(config, gone, in_process=True).store.index_path)
            app[HISTORY] = home.history
            app[SEQUENCER] = home.sequencer
            app[ERASER] = home.eraser
            if home.backups is not None:
                app[BACKUPS] = home.backups
            if home.shard.id == 0 and config.shards.count > 1:  # shard 0 introduces the others' keys
                await introduce(store, home.keys.log)
                introducing = keep_introducing(store, home.keys.log)
                tasks.append(asyncio.create_task(introducing, name="notar-introducer"))
            for one in running:
                erasing = asyncio.create_task(one.eraser.run(), name=f"notar-eraser-{one.shard.id}")
                tasks.append(erasing)
                backups = []
                if one.backups is not None:
                    backing_up = one.backups.run()
                    backups.append(asyncio.create_task(backing_up, name=f"notar-backups-{one.shard.id}"))
                # freezing (`notar shard freeze`) and frozen shards' compaction, per shard
                parts = FreezingParts(
                    store,
                    one.sequencer,
                    one.index,
                    one.eraser,
                    one.tenant_index,
                    one.config.committer.kinds,
                    one.registrar.remake,
                )
                freezer = Freezer(
                    one.shard.id,
                    parts,
                    compact_s=config.shards.frozen_compact_s,
                    stop=backups,
                    on_frozen=drop_when_frozen(frozen, one, erasing, drop=config.shards.count > 1),
                )
                freezers.append(freezer)
                tasks += [*backups, asyncio.create_task(freezer.run(), name=f"notar-freezer-{one.shard.id}")]
            app[FREEZERS] = tuple(freezers)
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    return ctx


def home_context(
    make: Callable[[NotarConfig, LogKeys], Callable[[web.Application], AsyncIterator[None]]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context `make` builds from the home shard's config and keys, once it runs
    (an anchor pod of split roles knows its shard only once it claimed it)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        home = app[RUNNING][0]
        async for _ in make(home.config, home.keys)(app):
            yield

    return ctx


async def submit_entries(request: web.Request) -> web.StreamResponse:
    tenant, digests = decode_request(await read_json(request, limit=MAX_BODY))
    accept = request.headers.get("Accept")
    if accepts_compact(accept):
        answer = await submit_to(request.app, request.app[SEQUENCER], tenant, digests, compact=True)
        return await send_json(request, answer, content_type=COMPACT)
    run = accepts_run(accept)
    if run is not None:  # ingest writes the receipts (services.internal.wire.RUN, RUN_NODES)
        answer = await submit_to(request.app, request.app[SEQUENCER], tenant, digests, run=run)
        return await send_json(request, answer, content_type=run)
    return await send_json(request, await submit_timed(request.app, tenant, digests))


def _tenant_and_digest(request: web.Request) -> tuple[str, Digest]:
    """`?tenant=&digest=` of the look-up and erasure routes (the tenant is checked where used)."""
    try:
        return request.query.get("tenant", ""), parse_digest(request.query.get("digest"))
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-digest") from e


async def _lookup_of(request: web.Request) -> Lookup:
    """The home shard, or with `?origin=` the frozen shard of that origin (NotFoundError when
    the table has none): any anchor reads every frozen shard's index (services.internal.wire)."""
    origin = request.query.get("origin")
    if origin is None:
        return LocalAnchor(request.app)
    index = await request.app[FROZEN].of_origin(origin)
    if index is None:
        raise NotFoundError(f"the shard table has no frozen shard {origin[:200]!r}")
    return index


async def lookup_entries(request: web.Request) -> web.Response:
    tenant, digest = _tenant_and_digest(request)
    limit, after = decode_page(request.query)
    try:
        found = await (await _lookup_of(request)).lookup(tenant, digest, limit=limit, after=after)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    return web.json_response(encode_found(found))


async def forget_entries(request: web.Request) -> web.Response:
    """Erasure: deletes the tenant-index rows of that tenant's notarizations of that digest."""
    tenant, digest = _tenant_and_digest(request)
    try:
        count = await (await _lookup_of(request)).forget(tenant, digest)
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    return web.json_response(encode_forgotten(count))


async def register_statement(request: web.Request) -> web.Response:
    """A SCITT entry to sequence (services.internal.wire): its receipt, or PENDING."""
    wait_s = decode_wait_ms(request.query.get("wait_ms"))
    entry = decode_scitt_entry(await request.read())
    answer = await LocalAnchor(request.app).register(entry, wait_s)
    return web.Response(body=answer or PENDING, content_type="application/cose")


async def statement_receipt(request: web.Request) -> web.Response:
    try:
        entry = decode_scitt_entry(bytes.fromhex(request.match_info["entry"]))
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-entry") from e
    answer = await LocalAnchor(request.app).receipt(entry)  # its frozen files once frozen
    return web.Response(body=answer or PENDING, content_type="application/cose")


async def metrics_context(app: web.Application) -> AsyncIterator[None]:
    """Registers the anchor's observable metrics once the sequencer and the committer run."""
    tel, committer, backups = app[TELEMETRY], app.get(COMMITTER), app.get(BACKUPS)
    register_anchor_metrics(tel, app[RUNNING], app[SEQUENCER], committer, backups)
    register_shard_metrics(tel, app[FREEZERS])
    yield


async def submit_timed(app: web.Application, tenant: str, digests: Digests) -> bytes:
    """`Sequencer.submit` (its time: queue, batch, durable write, signature, in the histogram),
    answered with the finished receipts (services.internal.wire); BadRequest for a tenant name
    that is not one."""
    return await submit_to(app, app[SEQUENCER], tenant, digests)


async def submit_to(
    app: web.Application,
    seq: Sequencer,
    tenant: str,
    digests: Digests,
    *,
    compact: bool = False,
    run: str | None = None,
) -> bytes:
    """`submit_timed` to the sequencer `seq` of one of the app's shards; with `compact`, answered
    with the compact form (merkle.compact) of the same receipts, with `run` (RUN or RUN_NODES)
    with their material (services.internal.wire)."""
    start = time.perf_counter()
    nodes = run == RUN_NODES  # the sequencer makes the nodes of a compact part, no proof per entry
    try:
        results = await seq.submit(tenant, digests, compact=compact or nodes)  # no Digest per digest
    except ValueError as e:
        raise BadRequest(str(e), kind="invalid-tenant") from e
    app[TELEMETRY].submit_seconds.record(time.perf_counter() - start)
    if compact:
        return encode_compact(tenant=tenant, results=results)
    if run is not None:
        return encode_run(origin=seq.origin, results=results, nodes=nodes)
    return encode_answer(origin=seq.origin, tenant=tenant, digests=digests.digests(), results=results)


async def anchor_ready(app: web.Application) -> str | None:
    """Some shard is started, not stopped, acknowledging entries, and publishing not more than a
    queue behind (a shard that is not only lowers capacity: ingest sends its share elsewhere);
    the first shard's reason when none is."""
    running = app.get(RUNNING)
    if not running:
        return "sequencer starting"
    reasons = [await _shard_unready(one.sequencer) for one in running]
    if any(r is None for r in reasons):
        return None
    if len(running) == 1:
        return reasons[0]
    return "; ".join(f"{one.shard.origin}: {r}" for one, r in zip(running, reasons, strict=True))


async def _shard_unready(seq: Sequencer) -> str | None:
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
    """Why /healthz says the process must be restarted: a sequencer stopped for good."""
    running = app.get(RUNNING, ())
    for one in running:
        stopped = one.sequencer.stopped
        if stopped is not None:
            which = "the sequencer" if len(running) == 1 else f"the sequencer of {one.shard.origin}"
            return f"{which} stopped for good, only a restart resumes it: {stopped}"
    return None


def setup(
    app: web.Application,
    config: NotarConfig,
    *,
    internal_routes: bool = True,
    env: Mapping[str, str] | None = None,
) -> None:
    """Add the anchor to `app` (after the store context). `internal_routes` adds the routes
    ingest and verify pods call (`/internal/v1/entries`: submit as any tenant, read or erase any
    tenant's salts, with no API key). `notar serve` leaves them out: its other roles call the sequencer
    in process, and its port is the public one. With `env` (an anchor pod, split roles) and
    SHARDS > 1, the pod runs the shard its ordinal claims; without, every shard runs here."""
    app.cleanup_ctx.append(shards_context(config, env))
    if config.committer.kinds:
        # the home shard's committer: the one of anchor ordinal 0 aggregates every shard (SPEC §10;
        # after shard 0 is frozen, ordinal 0's next shard does), the others anchor nothing and
        # follow in their status what it stored for their log (services.anchor.shard_heads)
        committer = home_context(lambda c, k: committer_context(c.committer, c.chains, keys=lambda: k))
        app.cleanup_ctx.append(committer)
    if config.witnesses.witnesses:
        app.cleanup_ctx.append(
            home_context(
                lambda c, k: witness_context(
                    c.witnesses, c.sequencer.origin, keys=lambda: k, prefix=c.sequencer.prefix
                )
            )
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
    setup(app, config, env=os.environ if env is None else env)
    return app


class LocalAnchor:
    """The in-process anchor (`notar serve`): a shard's sequencer (the home shard's unless
    `shard` says) as Submitter, Lookup and Registrations; once the shard is frozen, its look-ups
    and erasures are its frozen index's (FROZEN), and it may run here no more."""

    def __init__(self, app: web.Application, shard: int | None = None) -> None:
        self._app, self._shard = app, shard

    def _one(self) -> ShardAnchor:
        running, wanted = self._app[RUNNING], self._shard
        found = running[0] if wanted is None else next((r for r in running if r.shard.id == wanted), None)
        if found is None:
            raise PushbackError(f"shard {self._shard} is frozen: it takes no entries", retry_after=1)
        return found

    def _frozen(self) -> FrozenIndex | None:
        return self._app[FROZEN].get(self._app[RUNNING][0].shard.id if self._shard is None else self._shard)

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        return await submit_to(self._app, self._one().sequencer, tenant, digests, compact=compact)

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]:
        frozen = self._frozen()
        if frozen is not None:
            return await frozen.lookup(tenant, digest, limit=limit, after=after)
        return await self._one().sequencer.lookup(tenant, digest, limit=limit, after=after)

    async def forget(self, tenant: str, digest: Digest) -> int:
        frozen = self._frozen()
        if frozen is not None:
            return await frozen.forget(tenant, digest)
        return await self._one().eraser.forget(tenant, digest.multihash)

    def refusal(self, count: int = 1) -> NotarError | None:
        return self._one().sequencer.refusal(count)

    def spare(self) -> int | None:
        """services.ingest.spread.Loaded: how many entries the sequencer would queue now."""
        return self._one().sequencer.spare

    async def register(self, entry: bytes, wait_s: float) -> bytes | None:
        if self._frozen() is not None:  # its RocksDB is gone: its statements are in the store
            found = await self._app[FROZEN].scitt_receipt(entry)
            if found is None:
                origin = self._one().shard.origin
                raise PushbackError(f"{origin} is frozen: it takes no entries", retry_after=1)
            return found
        return await self._one().registrar.register(entry, wait_s)

    async def receipt(self, entry: bytes) -> bytes | None:
        if self._frozen() is not None:
            found = await self._app[FROZEN].scitt_receipt(entry)
            if found is None:
                raise NotFoundError("no statement with this entry ID is registered in this log")
            return found
        return await self._one().registrar.receipt(entry)


def local_shards(app: web.Application) -> FixedShards:
    """The shards this process runs and the frozen ones (their look-ups read the store), as its
    ingest and verify routes reach them (in process), by id."""
    made: dict[int, ShardLink] = {}

    def links() -> list[ShardLink]:
        frozen = app[FROZEN].shards()
        shards = {s.id: s for s in [*(one.shard for one in app[RUNNING]), *frozen]}
        out = []
        for shard in sorted(shards.values(), key=lambda s: s.id):
            link = made.get(shard.id)
            if link is None or link.shard != shard:
                link = made[shard.id] = ShardLink(shard, LocalAnchor(app, shard.id))
            out.append(link)
        return out

    return FixedShards(links)
