"""The processes the API benchmark measures: `notar serve` on a free loopback port with its own
data directory and tenant, the aiohttp hello world it is compared with, and SeaweedFS behind a
`notar serve` with STORE=s3; each stopped on exit, with the CPU it used readable from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web

ORIGIN = "bench.notar.localhost/log"
REPO = Path(__file__).resolve().parent.parent
TENANT = "bench"
HELLO_SIZE = 1 << 20
HELLO_PROOF = {"index": 0, "size": HELLO_SIZE, "proof": ["ab" * 32] * 20}


# ------------------------------------------------------------------------- the hello world


def hello_app() -> web.Application:
    """The reference point: aiohttp answering the SDK's calls with constant bodies."""
    receipts = orjson.dumps({"receipts": [{"hello": "world"}]})
    proof = orjson.dumps(HELLO_PROOF)

    async def digests(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=receipts, content_type="application/json")

    async def inclusion(request: web.Request) -> web.Response:
        return web.Response(body=proof, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    app = web.Application()
    app.router.add_post("/v1/digests", digests)
    app.router.add_get("/v1/proofs/inclusion", inclusion)
    app.router.add_get("/readyz", ready)
    return app


# -------------------------------------------------------------------------------- servers


def free_port() -> int:
    from tests.serving import free_port as never_handed_out_before

    return never_handed_out_before()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (a `notar serve`'s workers), from /proc."""
    out = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes `pids` (see `process_tree`)."""
    return sum(cpu_seconds(p) for p in pids)


def notar_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def add_tenant(flags: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    """`notar tenant add bench …`: the API key printed on the last line."""
    out = subprocess.run(
        notar_command("tenant", "add", TENANT, *flags),
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"notar tenant add failed: {out.stderr.strip()[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def start_server(name: str, command: list[str], url: str, env: dict[str, str], cwd: Path) -> Server:
    log = cwd / f"{name.replace(' ', '-')}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Server(name, process, url, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            import urllib.request

            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return server
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"{name} was not ready within 90 s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def notar_server(name: str, root: Path, flags: Sequence[str] = (), env: dict[str, str] | None = None,
                 cprofile: Path | None = None) -> Iterator[tuple[Server, str]]:
    """`notar serve` (all roles) on a free loopback port with its own DATA_DIR and tenant; with
    `cprofile`, every thread under cProfile, the merged profile written there when it stops
    (loadtest/profiled.py)."""
    data = root / name.replace(" ", "-")
    data.mkdir(parents=True)
    env = {**os.environ, **(env or {})}
    common = ["--data-dir", str(data), "--origin", ORIGIN, *flags]
    key = add_tenant(common, env, data)
    port = free_port()
    command = notar_command("serve", "--listen", f"127.0.0.1:{port}", *common)
    if cprofile is not None:
        command[1:3] = ["-m", "loadtest.profiled"]
        env |= {"CPROFILE_OUT": str(cprofile),
                # the caller's PYTHONPATH first: a base tree's packages (bench_single --base)
                "PYTHONPATH": os.pathsep.join([env.get("PYTHONPATH", ""), str(REPO)]).lstrip(os.pathsep)}
    server = start_server(
        name,
        command,
        f"http://127.0.0.1:{port}",
        env,
        data,
    )
    try:
        yield server, key
    finally:
        server.stop()


@contextlib.contextmanager
def hello_server(root: Path) -> Iterator[Server]:
    port = free_port()
    server = start_server(
        "hello",
        [sys.executable, "-m", "loadtest.bench_api", "hello", "--port", str(port)],
        f"http://127.0.0.1:{port}",
        {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
        root,
    )
    try:
        yield server
    finally:
        server.stop()



@dataclass
class S3Side:
    server: Server
    key: str
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    weed_pid: int


@contextlib.contextmanager
def seaweed(root: Path, stack: contextlib.ExitStack) -> Iterator[S3Side]:
    from tests.seaweed import S3Target, ensure_bucket, start_seaweed

    weed = stack.enter_context(start_seaweed())
    target = S3Target(weed.endpoint, "notar-bench", weed.access_key, weed.secret_key, weed.region)
    ensure_bucket(target)
    flags = [
        "--store", "s3", "--s3-endpoint", target.endpoint, "--s3-bucket", target.bucket,
        "--s3-prefix", "notar/", "--s3-region", target.region,
    ]
    env = {"AWS_ACCESS_KEY_ID": target.access_key, "AWS_SECRET_ACCESS_KEY": target.secret_key}
    with notar_server("notar-s3", root, flags, env) as (server, key):
        yield S3Side(server, key, target.endpoint, target.bucket, target.access_key, target.secret_key,
                     target.region, weed.pid)

