"""A real Prometheus for tests (Debian's `prometheus` package, which `scripts/install --test`
installs): ``start_prometheus(config, workdir)`` runs it on a free loopback port with its own data
directory and waits until it is ready; ``Prometheus.api`` reads its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.serving import free_port, stop_process

READY_S = 30.0


@dataclass(frozen=True)
class Prometheus:
    url: str
    log: Path

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of ``GET /api/v1/<path>``; AssertionError when it is not a success."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextmanager
def start_prometheus(binary: str, config: dict[str, Any], workdir: Path) -> Iterator[Prometheus]:
    """Prometheus with ``config`` (a prometheus.yml as a dict) on 127.0.0.1; stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + READY_S
        while True:
            assert process.poll() is None, f"prometheus exited with {process.returncode}\n{server.tail()}"
            with suppress(OSError), urllib.request.urlopen(server.url + "/-/ready", timeout=2) as r:
                if r.status == 200:
                    break
            assert time.monotonic() < deadline, f"prometheus not ready in {READY_S:g} s\n{server.tail()}"
            time.sleep(0.1)
        yield server
    finally:
        stop_process(process, timeout=20)
