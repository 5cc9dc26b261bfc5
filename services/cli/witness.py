"""`notar witness keygen|serve`: a C2SP tlog-witness anyone can run (docs/witness.md)."""

from __future__ import annotations

import argparse
import socket

from services.common.config import parse_listen
from services.common.http_server import listen_socket, run_app
from services.common.logs import AccessLogger, configure_logging
from services.witness.app import Witness, create_app
from services.witness.keys import generate_key, key_path, load_keys, read_logs_file
from services.witness.state import StateStore

READ_TIMEOUT_S = 30.0


def keygen(ns: argparse.Namespace) -> int:
    name = ns.name or f"{socket.gethostname()}/witness"
    signer = generate_key(ns.data_dir, name, ns.alg)
    print(f"created witness key {key_path(ns.data_dir, ns.alg)} (mode 0600); its verifier key:")
    print(signer.verifier().to_key())
    return 0


def serve(ns: argparse.Namespace) -> int:
    configure_logging(ns.log_format)
    host, port = parse_listen("--listen", ns.listen)
    logs = read_logs_file(ns.logs)
    cosigners = load_keys(ns.data_dir)
    store = StateStore(ns.data_dir)
    witness = Witness(store=store, states=store.load(logs), cosigners=cosigners)
    for cosigner in cosigners:
        print(f"witness key: {cosigner.verifier().to_key()}", flush=True)
    for origin, state in witness.logs.items():
        held = state.state.checkpoint
        print(f"log {origin}: {'never cosigned' if held is None else f'cosigned up to size {held.size}'}",
              flush=True)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    run_app(
        create_app(witness),
        sock=listen_socket(host, port),
        read_timeout=READ_TIMEOUT_S,
        drain_s=5,
        access_log_class=AccessLogger,
        on_listening=lambda: print(f"notar witness listening on {url} (state in {ns.data_dir})", flush=True),
    )
    return 0
