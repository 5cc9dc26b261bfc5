"""`notar serve`: the HTTP server of one role, or of all of them on the embedded default."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from aiohttp import web

from services.anchor import app as anchor_app
from services.anchor.app import ensure_keys, keys_from
from services.cli.commands import settings_from
from services.common.config import Settings
from services.common.http_server import run_app
from services.common.index_key import load_index_key
from services.common.resources import new_app
from services.common.stores import data_dir
from services.common.telemetry import TELEMETRY, AccessLogger, Telemetry, configure_logging
from services.ingest import app as ingest_app
from services.scitt import app as scitt_app
from services.verify import app as verify_app


def build_app(role: str, settings: Settings, env: Mapping[str, str]) -> web.Application:
    """The app of one role, or of all three sharing one store and the in-process sequencer. The
    SCITT routes go with ingest (over ANCHOR_URL) or with all (in process)."""
    if role == "anchor":
        return anchor_app.create_app(settings, env=env)
    if role == "ingest":
        app = ingest_app.create_app(settings, env=env)
        scitt_app.setup(app, settings)  # SCITT registrations are writes too: beside ingest's
        return app
    if role == "verify":
        return verify_app.create_app(settings, env=env)
    app = new_app(settings, env, readiness=[anchor_app.anchor_ready], client_max_size=anchor_app.MAX_BODY)
    anchor_app.setup(app, settings, internal_routes=False)  # the public port: no unauthenticated routes
    local = anchor_app.LocalAnchor(app)
    ingest_app.setup(app, settings, submitter=local)
    verify_app.setup(app, settings, lookup=local)
    scitt_app.setup(app, settings, registrations=local)
    return app


def serve(ns: argparse.Namespace) -> int:
    env = dict(os.environ)
    settings = settings_from(ns, env)
    configure_logging(settings.get("LOG_FORMAT"))
    if ns.role in ("all", "anchor"):
        created = ensure_keys(settings)
        for path in created:
            print(f"created key {path} (mode 0600)", flush=True)
        keys = keys_from(settings)
        print(f"log key:   {keys.verifier_keys['log']}", flush=True)
        print(f"clock key: {keys.verifier_keys['clock']}", flush=True)
    if ns.role in ("all", "anchor", "ingest"):
        load_index_key(settings)  # an ingest pod never makes one: without it, stop here and say so
    host, port = settings.get("LISTEN")
    app = build_app(ns.role, settings, env)
    telemetry = app[TELEMETRY] = Telemetry.from_env(env, service=f"notar-{ns.role}")
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    print(
        f"notar {ns.role} listening on {url} (origin {settings.get('ORIGIN')}, data in {data_dir(settings)})",
        flush=True,
    )
    if ns.role in ("all", "ingest"):
        print(
            f"get an API key:  notar tenant add NAME --data-dir {data_dir(settings)}   "
            f"(then: notar notarize FILE --url {url} --api-key KEY)",
            flush=True,
        )
    try:
        run_app(
            app,
            host=host,
            port=port,
            read_timeout=settings.get("READ_TIMEOUT_S"),
            shutdown_timeout=30,
            access_log_class=AccessLogger,
        )
    finally:
        telemetry.shutdown()
    return 0
