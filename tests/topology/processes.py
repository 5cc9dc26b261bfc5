"""Single `notar serve --role …` processes for topology tests that assemble their own deployment
(test_rotation.py: an anchor whose keys are rotated in between): start, wait until ready, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.seaweed import S3Target

START_S = 60.0


@dataclass
class Pod:
    role: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return f"--- {self.role} {self.url} ---\n" + self.log.read_text(errors="replace")[-3000:]


def run_notar(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def start_pod(role: str, port: int, env: dict[str, str], tmp: Path) -> Pod:
    """`notar serve --role ROLE` on 127.0.0.1:`port` with `env`, its own DATA_DIR and log under `tmp`."""
    data = tmp / f"{role}-{port}"
    data.mkdir()
    env = {**env, "NOTAR_DATA_DIR": str(data), "NOTAR_LISTEN": f"127.0.0.1:{port}"}
    log = tmp / f"{role}-{port}.log"
    return Pod(role, f"http://127.0.0.1:{port}", run_notar("serve", "--role", role, env=env, log=log), log)


def wait_ready(pod: Pod, deadline: float) -> None:
    while time.monotonic() < deadline:
        if pod.process.poll() is not None:
            raise AssertionError(f"{pod.role} exited with {pod.process.returncode}\n{pod.tail()}")
        try:
            with urllib.request.urlopen(pod.url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{pod.role} at {pod.url} not ready in {START_S:g} s\n{pod.tail()}")


def stop(pods: list[Pod]) -> dict[str, int | None]:
    for p in pods:
        if p.process.poll() is None:
            p.process.send_signal(signal.SIGTERM)
    codes: dict[str, int | None] = {}
    for p in pods:
        try:
            codes[f"{p.role} {p.url}"] = p.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.process.kill()
            p.process.wait(timeout=10)
            codes[f"{p.role} {p.url}"] = None
    return codes


def pod_env(s3_target: S3Target, prefix: str, origin: str) -> dict[str, str]:
    """What every pod of a topology on ``s3_target`` gets: the bucket, its credentials, the origin,
    short batches and local anchoring every second."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NOTAR_", "AWS_", "OTEL_"))},
        "PYTHONUNBUFFERED": "1",
        "NOTAR_STORE": "s3",
        "NOTAR_S3_ENDPOINT": s3_target.endpoint,
        "NOTAR_S3_BUCKET": s3_target.bucket,
        "NOTAR_S3_REGION": s3_target.region,
        "NOTAR_S3_PREFIX": prefix,
        "NOTAR_ORIGIN": origin,
        "NOTAR_BATCH_MS": "20",
        "NOTAR_ANCHORS": "local",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        "AWS_ACCESS_KEY_ID": s3_target.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_target.secret_key,
    }
