"""Real `notar serve` processes on loopback, which a chaos scenario can kill and restart.

Two shapes: ``embedded`` (one `notar serve --role all` on the fs store, the default install) and
``topology`` (one anchor, two ingest, two verify processes on one S3 bucket, as Kubernetes runs
them). Every process keeps its data directory and port across restarts, like a pod with its
volume; its output goes to a log file the scenario shows when something fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from services.common.index_key import create_index_key
from storage.base import ObjectStore
from storage.fs import FsStore
from storage.s3 import S3Config, S3Store

READY_S = 60.0
TOPOLOGY = ("anchor", "ingest", "ingest", "verify", "verify")
INGEST_ROLES = ("all", "ingest")
VERIFY_ROLES = ("all", "verify")


@dataclass(frozen=True)
class S3Bucket:
    """Where the topology's object store is: any S3 endpoint (tests use SeaweedFS)."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def config(self, prefix: str) -> S3Config:
        return S3Config(
            bucket=self.bucket,
            endpoint=self.endpoint,
            region=self.region,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            prefix=prefix,
        )


@dataclass
class Pod:
    """One `notar serve --role ROLE` process, restartable with the same port and data dir."""

    role: str
    port: int
    data: Path
    env: dict[str, str]
    wrapper: tuple[str, ...] = ()  # e.g. a command that runs it under a fake clock
    detached: bool = False  # in a session of its own, to outlive the command that started it
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data.with_suffix(".log")

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.role} is running"
        cmd = [*self.wrapper, sys.executable, "-m", "services.cli", "serve", "--role", self.role]
        with open(self.log, "ab") as out:
            out.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                cmd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.detached,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (drain, publish, exit); its exit code, or None when it had to be killed."""
        return terminate(self.process, timeout)

    def wait_ready(self, timeout: float = READY_S) -> None:
        wait_ready(self.url, self.process, f"{self.role} on {self.url}", self.tail, timeout)

    def tail(self, chars: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.role} {self.url} ---\n{text[-chars:]}"


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> int | None:
    """SIGTERM ``process``; its exit code, or None when it had to be killed (or never ran)."""
    if process is None or process.poll() is not None:
        return None if process is None else process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return None


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes] | None,
    what: str,
    tail: Callable[[], str],
    timeout: float = READY_S,
) -> None:
    """Poll ``url``/readyz until it answers 200; RuntimeError naming ``what``, with ``tail()``,
    when the process exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is None or process.poll() is not None:
            code = process.returncode if process else None
            raise RuntimeError(f"{what} exited with {code}\n{tail()}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready in {timeout:g} s\n{tail()}")


@dataclass
class Cluster:
    """The processes of one deployment, how to reach its object store, and its tenants' keys."""

    workdir: Path
    origin: str
    pods: list[Pod]
    base_env: dict[str, str]
    bucket: S3Bucket | None = None
    prefix: str = ""
    api_keys: dict[str, str] = field(default_factory=dict)

    def of(self, role: str) -> list[Pod]:
        return [p for p in self.pods if p.role == role]

    @property
    def anchor(self) -> Pod:
        return next(p for p in self.pods if p.role in ("anchor", "all"))

    @property
    def ingest_urls(self) -> list[str]:
        return [p.url for p in self.pods if p.role in INGEST_ROLES]

    @property
    def verify_urls(self) -> list[str]:
        return [p.url for p in self.pods if p.role in VERIFY_ROLES]

    async def open_store(self) -> ObjectStore:
        """The deployment's object store, opened afresh (as an auditor would)."""
        if self.bucket is None:
            return FsStore(self.anchor.data / "store")
        return await S3Store.from_config(self.bucket.config(self.prefix))

    def add_tenant(self, name: str) -> str:
        """`notar tenant add NAME` against the deployment's store; the API key it printed."""
        log = self.workdir / "tenant.log"
        env = {**self.base_env, "NOTAR_DATA_DIR": str(self.anchor.data)}
        with open(log, "ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "services.cli", "tenant", "add", name],
                env=env,
                stdout=subprocess.PIPE,
                stderr=out,
                timeout=60,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"notar tenant add {name} failed: {log.read_text()[-2000:]}")
        key = done.stdout.decode().strip().splitlines()[-1]
        self.api_keys[name] = key
        return key

    def start(self) -> None:
        """Start every pod, the anchor first (it creates the keys the others publish)."""
        self.anchor.start()
        self.anchor.wait_ready()
        for p in self.pods:
            if p is not self.anchor:
                p.start()
        for p in self.pods:
            p.wait_ready()

    def stop(self) -> dict[str, int | None]:
        """SIGTERM everything, front ends first; each pod's exit code."""
        order = [p for p in self.pods if p is not self.anchor] + [self.anchor]
        return {f"{p.role} {p.url}": p.terminate() for p in order}

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.pods)


def _free_ports(count: int) -> list[int]:
    import socket

    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _clean_env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("NOTAR_", "AWS_", "OTEL_"))}
    return {**keep, "PYTHONUNBUFFERED": "1"}


def make_cluster(
    workdir: Path,
    *,
    origin: str = "chaos.notar.test/log",
    bucket: S3Bucket | None = None,
    roles: tuple[str, ...] | None = None,
    env: Mapping[str, str] | None = None,
    wrapper: tuple[str, ...] = (),
) -> Cluster:
    """A cluster, not started: ``embedded`` (role all, fs store) without a bucket, else the
    Kubernetes topology on that bucket. ``env`` adds NOTAR_* settings for every pod."""
    roles = roles or (("all",) if bucket is None else TOPOLOGY)
    if bucket is None and roles != ("all",):
        raise ValueError("separate roles share one object store: give an S3 bucket")
    base = {
        **_clean_env(),
        "NOTAR_ORIGIN": origin,
        "NOTAR_BATCH_MS": "20",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        "NOTAR_LOG_FORMAT": "json",
        **(env or {}),
    }
    prefix = ""
    if bucket is not None:
        prefix = f"chaos-{uuid.uuid4().hex[:12]}/"
        base |= {
            "NOTAR_STORE": "s3",
            "NOTAR_S3_ENDPOINT": bucket.endpoint,
            "NOTAR_S3_BUCKET": bucket.bucket,
            "NOTAR_S3_REGION": bucket.region,
            "NOTAR_S3_PREFIX": prefix,
            "AWS_ACCESS_KEY_ID": bucket.access_key,
            "AWS_SECRET_ACCESS_KEY": bucket.secret_key,
        }
        # one index key for every pod, as a Kubernetes Secret would be (ingest never makes one)
        create_index_key(workdir / "index.key")
        base["NOTAR_INDEX_KEY_FILE"] = str(workdir / "index.key")
    ports = _free_ports(len(roles))
    anchor_port = ports[roles.index("anchor")] if "anchor" in roles else ports[0]
    pods = []
    for role, port in zip(roles, ports, strict=True):
        data = workdir / f"{role}-{port}"
        data.mkdir(parents=True)
        pod_env = {**base, "NOTAR_DATA_DIR": str(data), "NOTAR_LISTEN": f"127.0.0.1:{port}"}
        if role in ("ingest", "verify"):
            pod_env["NOTAR_ANCHOR_URL"] = f"http://127.0.0.1:{anchor_port}"
        pods.append(Pod(role, port, data, pod_env, wrapper))
    return Cluster(workdir, origin, pods, base, bucket, prefix)


@contextmanager
def running(cluster: Cluster, tenants: tuple[str, ...] = ("acme",)) -> Iterator[Cluster]:
    """Start the cluster and its tenants; stop every process afterwards, whatever happened."""
    try:
        cluster.start()
        for t in tenants:
            cluster.add_tenant(t)
        yield cluster
    finally:
        for p in cluster.pods:
            if p.alive():
                p.terminate(timeout=30)
