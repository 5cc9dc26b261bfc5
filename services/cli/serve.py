"""`notar serve`: the HTTP server of one role, or of all of them on the embedded default."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import web

from services.anchor import app as anchor_app
from services.anchor.app import ensure_keys, keys_from
from services.cli.commands import config_from, setting_args
from services.cli.workers import (
    ANCHOR,
    ANCHOR_SOCKET,
    WorkerArgs,
    WorkerFailed,
    Workers,
    anchor_socket,
    die_with_parent,
    front_app,
    mark_worker,
    parent_gone,
    worker_count,
    workers_context,
)
from services.common.components import NotarConfig
from services.common.config import without_unknown
from services.common.http_server import listen_socket, port_lock, run_app
from services.common.index_key import load_index_key
from services.common.logs import FailuresLogger
from services.common.resources import new_app
from services.common.telemetry import TELEMETRY, AccessLogger, Telemetry, configure_logging
from services.ingest import app as ingest_app
from services.scitt import app as scitt_app
from services.verify import app as verify_app


def build_app(role: str, config: NotarConfig, env: Mapping[str, str]) -> web.Application:
    """The app of one role, or of all three sharing one store and the in-process sequencer. The
    SCITT routes go with ingest (over ANCHOR_URL) or with all (in process)."""
    if role == "anchor":
        return anchor_app.create_app(config, env=env)
    if role == "ingest":
        app = ingest_app.create_app(config, env=env)
        scitt_app.setup(app, config)  # SCITT registrations are writes too: beside ingest's
        return app
    if role == "verify":
        return verify_app.create_app(config, env=env)
    app = new_app(config, env, readiness=[anchor_app.anchor_ready], client_max_size=anchor_app.MAX_BODY)
    anchor_app.setup(app, config, internal_routes=False)  # the public port: no unauthenticated routes
    local = anchor_app.LocalAnchor(app)  # the home shard: shard 0
    if config.shards.count == 1:
        ingest_app.setup(app, config, submitter=local)
        verify_app.setup(app, config, lookup=local)
    else:
        shards = anchor_app.local_shards(app)
        ingest_app.setup(app, config, shards=shards)
        verify_app.setup(app, config, shards=shards)
    scitt_app.setup(app, config, registrations=local)
    return app


def serve(ns: argparse.Namespace) -> int:
    """Check everything before saying "listening": the settings, the keys, the port (bound first),
    then the app's start-up (the store, the sequencer's recovery); a failure is one line on stderr.
    At exit, one summary line. With WORKERS > 1, the processes of services.cli.workers."""
    env = dict(os.environ)
    config = config_from(ns, env)
    configure_logging(config.http.log_format)
    if ns.worker is not None:
        return serve_worker(ns, config, env)
    count = worker_count(ns.role, config)
    if ns.role == "all" or (ns.role == "anchor" and config.shards.count == 1):
        # an anchor pod of several shards makes its keys once it claimed its shard (anchor/app.py)
        for path in ensure_keys(config.keys):
            print(f"created key {path} (mode 0600)", flush=True)
        if config.shards.count == 1:  # with shards, each shard's keys are said as it starts
            keys = keys_from(config.keys)
            print(f"log key:   {keys.verifier_keys['log']}", flush=True)
            print(f"clock key: {keys.verifier_keys['clock']}", flush=True)
    if ns.role in ("all", "anchor", "ingest"):
        load_index_key(config.keys)  # an ingest pod never makes one: without it, stop here and say so
    host, port = config.http.listen
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    started = time.monotonic()

    def listening() -> None:
        data_dir, origin = config.store.data_dir, config.sequencer.origin
        workers = f", {count} workers" if count > 1 else ""
        where = f"{url} (origin {origin}, data in {data_dir}{workers})"
        print(f"notar {ns.role} listening on {where}", flush=True)
        if ns.role in ("all", "ingest"):
            print(
                f"get an API key:  notar tenant add NAME --data-dir {data_dir}   "
                f"(then: notar notarize FILE --url {url} --api-key KEY)",
                flush=True,
            )

    if count > 1:
        return serve_with_workers(ns, config, env, count, listening)
    sock = listen_socket(host, port)
    app = build_app(ns.role, config, env)
    serve_app(app, sock, config, env, service=f"notar-{ns.role}", on_listening=listening)
    print(summary(ns.role, app, time.monotonic() - started), flush=True)
    return 0


def serve_with_workers(
    ns: argparse.Namespace,
    config: NotarConfig,
    env: Mapping[str, str],
    count: int,
    listening: Callable[[], None],
) -> int:
    """The parent of `count` workers (services.cli.workers): with role all, the anchor on a Unix
    socket behind them; with ingest or verify, the workers alone."""
    host, port = config.http.listen
    started = time.monotonic()
    lock = port_lock(host, port)  # no other group of workers joins ours on this port
    reserved = listen_socket(host, port, reuse_port=True)  # a port in use stops start-up here, named
    run_dir = Path(tempfile.mkdtemp(prefix="notar-"))  # mode 0700: the sockets of services.cli.workers
    command = [sys.executable, "-m", "services.cli", "serve", "--role", ns.role, "--run-dir", str(run_dir)]
    workers = Workers(count, [*command, *setting_args(ns)], without_unknown(env))
    try:
        if ns.role == "all":
            socket_path = run_dir / ANCHOR_SOCKET
            app: web.Application | None = anchor_behind(workers, config, env, socket_path, listening)
        else:
            supervise(workers, listening, stop_s=config.http.drain_s + 5)
            app = None
    except WorkerFailed as e:
        return e.exit_status  # the worker said why, in one line
    finally:
        reserved.close()
        lock.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    print(summary(ns.role, app, time.monotonic() - started, served=workers.served), flush=True)
    return 0


def anchor_behind(
    workers: Workers,
    config: NotarConfig,
    env: Mapping[str, str],
    socket_path: Path,
    listening: Callable[[], None],
) -> web.Application:
    """Role all's parent: the anchor (`notar serve`'s, with its internal routes) on the Unix
    socket `socket_path`, the workers started once it has, until SIGTERM; the app, for the summary."""
    sock = anchor_socket(socket_path)
    app = new_app(config, env, readiness=[anchor_app.anchor_ready], client_max_size=anchor_app.MAX_BODY)
    anchor_app.setup(app, config)  # in process (no env): the shards of `notar serve`, its data layout
    app.cleanup_ctx.append(workers_context(workers))
    serve_app(
        app,
        sock,
        config,
        env,
        service="notar-all",
        on_listening=listening,
        on_stopping=lambda: workers.stop(config.http.drain_s + 5),
        access_log_class=FailuresLogger,  # the workers log every public request
    )
    return app


def serve_worker(ns: argparse.Namespace, config: NotarConfig, env: Mapping[str, str]) -> int:
    """One worker (`--worker`, given by its parent): the role's public routes on LISTEN with
    SO_REUSEPORT; it says "listening" and, at exit, the requests it served on its pipe."""
    args = WorkerArgs.parse(ns.worker)
    die_with_parent(args.parent)
    report = os.fdopen(args.pipe, "w", buffering=1)
    host, port = config.http.listen
    sock = listen_socket(host, port, reuse_port=True)
    run_dir = Path(ns.run_dir)
    if ns.role == "all":
        app = front_app(config, env, run_dir / ANCHOR_SOCKET)
        mark_worker(app, args.index, run_dir, app[ANCHOR])
    else:
        app = build_app(ns.role, config, env)
        mark_worker(app, args.index, run_dir, None)
    said = lambda: print("listening", file=report)  # noqa: E731
    try:
        serve_app(app, sock, config, env, service=f"notar-{ns.role}", on_listening=said)
    finally:
        if parent_gone(args.parent):  # it was killed
            shutil.rmtree(run_dir, ignore_errors=True)  # its directory, left behind
    with contextlib.suppress(OSError):
        report.write(f"served {app[TELEMETRY].served}\n")
        report.close()
    return 0


def serve_app(
    app: web.Application,
    sock: socket.socket,
    config: NotarConfig,
    env: Mapping[str, str],
    *,
    service: str,
    on_listening: Callable[[], None],
    on_stopping: Callable[[], Awaitable[None]] | None = None,
    access_log_class: type[AccessLogger] = AccessLogger,
) -> None:
    """`run_app` with the process's telemetry (exported as `service`), shut down at exit."""
    telemetry = app[TELEMETRY] = Telemetry.from_env(env, service=service)
    try:
        run_app(
            app,
            sock=sock,
            read_timeout=config.http.read_timeout_s,
            drain_s=config.http.drain_s,
            access_log_class=access_log_class,
            on_listening=on_listening,
            on_stopping=on_stopping,
        )
    finally:
        telemetry.shutdown()


def summary(role: str, app: web.Application | None, uptime_s: float, *, served: int | None = None) -> str:
    """`notar all stopped after 1h02m03s: 1234 entries sequenced, 56 requests served`; with
    workers, `served` is what they reported (the parent's own requests are the workers')."""
    minutes, seconds = divmod(int(uptime_s), 60)
    hours, minutes = divmod(minutes, 60)
    took = f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
    running = None if app is None else app.get(anchor_app.RUNNING)
    count = None if running is None else sum(one.sequencer.stats.sequenced for one in running)
    sequenced = "" if count is None else f"{count} entries sequenced, "
    if served is None:
        served = 0 if app is None else app[TELEMETRY].served
    return f"notar {role} stopped after {took}: {sequenced}{served} requests served"


def supervise(workers: Workers, listening: Callable[[], None], *, stop_s: float) -> None:
    """Run `workers` until SIGTERM or SIGINT, then stop them (each drains, `stop_s` at most)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        await workers.start()
        listening()
        await stop.wait()
        await workers.stop(stop_s)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        loop.run_until_complete(main())
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        loop.close()
