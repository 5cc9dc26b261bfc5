"""A real `notar serve` (all roles, fs store) on loopback for the hostile-input tests, with short
timeouts so that slow clients are cut off within the test, and its log captured to a file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.index_key import create_index_key
from services.common.tenants import TenantRegistry
from storage.fs import FsStore
from tests.hostile.rawhttp import exchange, request
from tests.seaweed import S3Target
from tests.serving import free_port, wait_ready

NOTAR = str(Path(sys.executable).with_name("notar"))
READ_TIMEOUT_S = 2  # NOTAR_READ_TIMEOUT_S of the servers below: slow clients are cut after it
KEY_CACHE_S = 1  # NOTAR_KEY_CACHE_S: a revoked key stops working after at most this
DOCUMENT_MAX_MB = 1  # NOTAR_DOCUMENT_MAX_MB


@dataclass
class Served:
    url: str
    port: int
    data: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    acme: str  # API keys of two tenants
    globex: str

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def get_json(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def tree_size(self) -> int:
        """The size of the published log (0 before the first checkpoint)."""
        try:
            with urllib.request.urlopen(self.url + "/log/checkpoint", timeout=10) as r:
                return int(r.read().decode().split("\n")[1])
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return 0
            raise

    async def marker(self) -> int:
        """Notarize a fresh digest as acme and return its index. Two markers around a hostile
        request prove nothing was sequenced in between when their indices are consecutive."""
        body = json.dumps({"digests": ["sha256:" + os.urandom(32).hex()]}).encode()
        auth = {"Authorization": f"Bearer {self.acme}", "Content-Type": "application/json"}
        a = await exchange(self.port, request("POST", "/v1/digests", headers=auth, body=body))
        assert a.status == 200, a
        return int(a.json()["receipts"][0]["log"]["index"])

    def peak_rss_kb(self) -> int:
        """The server process's peak resident memory so far (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc/<pid>/status")


async def _tenants(store_dir: Path) -> tuple[str, str]:
    store = FsStore(store_dir)
    try:
        registry = TenantRegistry(store)
        return await registry.add("acme"), await registry.add("globex")
    finally:
        await store.close()


def launch(
    data: Path,
    *,
    role: str = "all",
    keys: tuple[str, str] | None = None,
    env_extra: dict[str, str] | None = None,
    settings: dict[str, str] | None = None,
) -> Served:
    """Start `notar serve --role ROLE` on a free port with `settings` (NOTAR_<NAME>) over the
    defaults below, logging to DATA/serve-ROLE.log; tenants acme and globex are created in its
    fs store unless `keys` are given (on S3, `ready` creates them)."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_ORIGIN": "hostile.notar.test/log",
        "NOTAR_BATCH_MS": "10",
        "NOTAR_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        "NOTAR_KEY_CACHE_S": str(KEY_CACHE_S),
        "NOTAR_DOCUMENT_MAX_MB": str(DOCUMENT_MAX_MB),
        **{f"NOTAR_{k}": v for k, v in (settings or {}).items()},
        **(env_extra or {}),
    }
    if keys is None and env.get("NOTAR_STORE", "fs") == "fs":
        keys = asyncio.run(_tenants(data / "store"))
    log = data / f"serve-{role}.log"
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [NOTAR, "serve", "--role", role], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    acme, globex = keys or ("", "")
    return Served(f"http://127.0.0.1:{port}", port, data, env, proc, log, acme, globex)


def ready(served: Served) -> Served:
    wait_ready(served.url, served.proc, timeout=60)
    if not served.acme:
        served.acme, served.globex = (
            subprocess.run(
                [NOTAR, "tenant", "add", name], env=served.env, capture_output=True, text=True, check=True
            ).stdout.splitlines()[-1]
            for name in ("acme", "globex")
        )
    return served


def stop(served: Served) -> None:
    """SIGTERM; the server must exit 0 with no traceback and no API key in its log."""
    served.proc.send_signal(signal.SIGTERM)
    code = served.proc.wait(timeout=60)
    text = served.log_text()
    assert code == 0, f"notar serve exited {code}:\n{text[-3000:]}"
    assert "Traceback" not in text, f"the server logged a traceback:\n{text[-6000:]}"
    for key in (served.acme, served.globex):
        assert key not in text and key[6:] not in text, "an API key was written to the server's log"


def start_served(data: Path, env_extra: dict[str, str] | None = None, **settings: str) -> Iterator[Served]:
    """`notar serve` (all roles) while the caller uses it, then `stop`."""
    served = launch(data, env_extra=env_extra, settings=settings)
    try:
        yield ready(served)
    finally:
        stop(served)


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server on the fs store for the whole package (tests leave it serving)."""
    yield from start_served(tmp_path_factory.mktemp("hostile") / "data")


@pytest.fixture(scope="package")
def served_s3(tmp_path_factory: pytest.TempPathFactory, s3_target: S3Target) -> Iterator[Served]:
    """The same on SeaweedFS, under a prefix of its own in the shared test bucket."""
    yield from start_served(
        tmp_path_factory.mktemp("hostile-s3") / "data",
        STORE="s3",
        S3_ENDPOINT=s3_target.endpoint,
        S3_BUCKET=s3_target.bucket,
        S3_REGION=s3_target.region,
        S3_PREFIX=f"hostile-{os.urandom(6).hex()}/",
        env_extra={"AWS_ACCESS_KEY_ID": s3_target.access_key, "AWS_SECRET_ACCESS_KEY": s3_target.secret_key},
    )


@pytest.fixture(scope="package")
def split_roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """The three roles as three processes, as in Kubernetes: ingest and verify call the anchor's
    internal routes; all share one fs store."""
    data = tmp_path_factory.mktemp("roles") / "data"
    create_index_key(data / "keys" / "index.key")  # before ingest starts: it never makes one
    anchor = launch(data, role="anchor")
    keys = (anchor.acme, anchor.globex)
    roles = {"anchor": anchor}
    try:
        for role in ("ingest", "verify"):
            roles[role] = launch(data, role=role, keys=keys, settings={"ANCHOR_URL": anchor.url})
        for served in roles.values():
            ready(served)
        yield roles
    finally:
        for served in roles.values():
            stop(served)
