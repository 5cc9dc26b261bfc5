"""`notar serve`: the HTTP server of one role, or of all of them on the embedded default."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping

from aiohttp import web

from services.anchor import app as anchor_app
from services.anchor.app import ensure_keys, keys_from
from services.cli.commands import config_from
from services.common.components import NotarConfig
from services.common.http_server import listen_socket, run_app
from services.common.index_key import load_index_key
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
    At exit, one summary line."""
    env = dict(os.environ)
    config = config_from(ns, env)
    configure_logging(config.http.log_format)
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
    sock = listen_socket(host, port)
    app = build_app(ns.role, config, env)
    telemetry = app[TELEMETRY] = Telemetry.from_env(env, service=f"notar-{ns.role}")
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    started = time.monotonic()

    def listening() -> None:
        data_dir, origin = config.store.data_dir, config.sequencer.origin
        print(f"notar {ns.role} listening on {url} (origin {origin}, data in {data_dir})", flush=True)
        if ns.role in ("all", "ingest"):
            print(
                f"get an API key:  notar tenant add NAME --data-dir {data_dir}   "
                f"(then: notar notarize FILE --url {url} --api-key KEY)",
                flush=True,
            )

    try:
        run_app(
            app,
            sock=sock,
            read_timeout=config.http.read_timeout_s,
            drain_s=config.http.drain_s,
            access_log_class=AccessLogger,
            on_listening=listening,
        )
    finally:
        telemetry.shutdown()
    print(summary(ns.role, app, time.monotonic() - started), flush=True)
    return 0


def summary(role: str, app: web.Application, uptime_s: float) -> str:
    """`notar all stopped after 1h02m03s: 1234 entries sequenced, 56 requests served`."""
    minutes, seconds = divmod(int(uptime_s), 60)
    hours, minutes = divmod(minutes, 60)
    took = f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
    running = app.get(anchor_app.RUNNING)
    count = None if running is None else sum(one.sequencer.stats.sequenced for one in running)
    sequenced = "" if count is None else f"{count} entries sequenced, "
    return f"notar {role} stopped after {took}: {sequenced}{app[TELEMETRY].served} requests served"
