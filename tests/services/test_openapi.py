"""/openapi.json describes exactly the public routes, and a schemathesis run finds no 5xx."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from services.cli.serve import build_app
from services.common.components import load
from services.common.openapi import DOCUMENT
from tests.serving import free_port, wait_ready

METHODS = {"get", "post", "put", "delete", "patch"}


def test_document_matches_the_routes_of_notar_serve(tmp_path: Path) -> None:
    config = load(flags={"DATA_DIR": str(tmp_path)}, env={}, config_file=None)
    app = build_app("all", config, {})
    routes = set()
    for r in app.router.routes():
        info = r.resource.get_info() if r.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if r.method.lower() in METHODS and not path.startswith("/internal/") and path != "/openapi.json":
            routes.add((re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path), r.method.lower()))
    documented = {(p, m) for p, ops in DOCUMENT["paths"].items() for m in ops}
    assert routes == documented
    # SCITT's routes (SCRAPI) speak COSE and CBOR, their problems RFC 9290 concise problem details
    scrapi = DOCUMENT["paths"]["/entries"]["post"]
    assert set(scrapi["requestBody"]["content"]) == {"application/cose"}
    assert {"201", "303", "400", "415"} <= set(scrapi["responses"])


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "NOTAR_DATA_DIR": str(tmp_path), "NOTAR_BATCH_MS": "5"}
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "tenant", "add", "fuzz"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = out.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, server, timeout=30)
        st = Path(sys.executable).with_name("st")
        run = subprocess.run(
            [
                str(st),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "-H",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "40",
                "--workers",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
                "--suppress-health-check",
                "all",
                "--max-time",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "NO_COLOR": "1",
                "SCHEMATHESIS_HOOKS": "tests.services.schemathesis_hooks",
                "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            },
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
