"""`notar serve --workers N` (WORKERS): N processes serve the public port, in front of one sequencer.

With N > 1 the process started (the parent) serves no public route. It runs what there must be
one of — with role `all`, the anchor: the sequencer, committer, backups, on the embedded store as
`notar serve` always did — and N worker processes, each of which binds LISTEN with SO_REUSEPORT:
the kernel spreads the connections over them. Role `all`'s workers serve ingest, verify and
SCITT and reach the parent's anchor over its internal routes on a Unix socket in a directory only
the parent's user can enter (those routes take no API key: the socket's permissions keep other
users out, as the NetworkPolicy keeps other pods out of an anchor pod's port). An ingest or
verify pod's workers are that role, each reaching the anchor at ANCHOR_URL as one process does.
An anchor pod is always one process (one writer per log). A worker of role `all` merges the
submissions that arrive together into one internal request (services.internal.coalesce): one
internal request per digest cost the anchor more than the whole request costs in one process.

- A worker tells the parent over a pipe when it listens and, as it exits, how many requests it
  served (the parent's summary line adds them up; a worker killed says nothing).
- "listening" is printed once every worker listens; a worker that exits during start-up stops
  everything with its exit status, and its own message is the only one (the first worker starts
  alone, the others once it listens).
- A worker that exits afterwards is logged and started again (after RESTART_S, longer while it
  keeps failing): the anchor holds everything acknowledged, a worker only requests in flight.
- A worker dies with its parent (PR_SET_PDEATHSIG), so none is left holding the port; the
  workers remove the socket directory a killed parent left behind.
- A worker's /readyz and /healthz follow the anchor's too (/readyz with its lines); its /metrics
  is the whole pod's: its own, its siblings' and the anchor's (services.cli.worker_metrics).
- SIGTERM or SIGINT to the parent: every worker gets SIGTERM and drains (DRAIN_S), then the
  anchor stops as one process does (it publishes what it holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from merkle.digests import Digest
from services.cli.worker_metrics import share_metrics
from services.common.components import NotarConfig
from services.common.cpus import usable_cpus
from services.common.resources import DETAILS, LIVENESS, new_app
from services.internal.client import AnchorClient
from services.internal.coalesce import Coalescer
from services.model import Digests, Found
from storage.errors import ConfigError, NotarError

log = logging.getLogger("notar.workers")
ANCHOR_HOST = "http://notar-anchor"  # the Host of requests on the anchor's Unix socket
ANCHOR_SOCKET = "anchor.sock"  # in the parent's private directory (`--run-dir`), with role all
START_S = 120.0
RESTART_S = 1.0
RESTART_MAX_S = 30.0
HEALTH_S = 2.0  # how often a worker reads the anchor's /healthz
HEALTHY_S = 30.0  # a worker that ran this long and exits is restarted after RESTART_S again


class WorkerFailed(NotarError):
    """A worker exited during start-up with `returncode` (it said why on stderr itself). Not
    `status`: that is every NotarError's HTTP status."""

    def __init__(self, message: str, *, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode

    @property
    def exit_status(self) -> int:
        """The parent's: the worker's own (2: a setting), 1 when a signal ended it."""
        return self.returncode if self.returncode > 0 else 1


def worker_count(role: str, config: NotarConfig, *, cpus: Callable[[], int] = usable_cpus) -> int:
    """How many processes serve the port: WORKERS (1 by default), with `auto` the CPUs this
    process may use;
    1 for an anchor pod, and for `all` with several shards (ConfigError when WORKERS asks more:
    its workers would reach only the home shard's internal routes)."""
    wanted = config.http.workers
    if role == "anchor":
        return 1
    if role == "all" and config.shards.count > 1:
        if wanted is not None and wanted > 1:
            raise ConfigError(
                f"WORKERS={wanted} needs SHARDS=1 in one process; with SHARDS={config.shards.count} run "
                "split roles (an ingest and a verify process may each have WORKERS) or set WORKERS=1",
                setting="WORKERS",
            )
        return 1
    return wanted if wanted is not None else cpus()


@dataclass
class _Running:
    proc: asyncio.subprocess.Process
    reports: asyncio.StreamReader
    pipe: asyncio.BaseTransport
    started: float


class Workers:
    """The worker processes of one parent: started, watched and restarted, stopped."""

    def __init__(self, count: int, command: list[str], env: Mapping[str, str]) -> None:
        self.count, self._command, self._env = count, command, dict(env)
        self._running: dict[int, _Running] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self.served = 0  # requests the workers that exited cleanly reported
        self.restarts = 0

    def pids(self) -> list[int]:
        return [r.proc.pid for r in self._running.values() if r.proc.returncode is None]

    async def start(self) -> None:
        """Every worker, once each listens; WorkerFailed (the others stopped) when one does not."""
        try:  # the first alone: a start-up that fails (a store down) is said once, by it
            await self._spawn(1)
            await asyncio.gather(*(self._spawn(i) for i in range(2, self.count + 1)))
        except BaseException:
            await self.stop(5.0)
            raise
        self._watchers = [
            asyncio.create_task(self._watch(i), name=f"notar-worker-{i}") for i in range(1, self.count + 1)
        ]

    async def _spawn(self, index: int) -> None:
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command,
                "--worker",
                f"{index}:{write_fd}:{os.getpid()}",
                pass_fds=(write_fd,),
                env=self._env,
            )
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        reports = asyncio.StreamReader()
        pipe, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reports), os.fdopen(read_fd, "rb", buffering=0)
        )
        self._running[index] = _Running(proc, reports, pipe, time.monotonic())
        try:
            line = await asyncio.wait_for(reports.readline(), START_S)
        except TimeoutError:
            proc.kill()
            line = b""
        if line != b"listening\n":
            status = await proc.wait()
            pipe.close()
            raise WorkerFailed(
                f"worker {index} exited during start-up ({_status(status)})", returncode=status
            )

    async def _watch(self, index: int) -> None:
        backoff = RESTART_S
        while True:
            running = self._running[index]
            status = await running.proc.wait()
            with contextlib.suppress(TimeoutError, ValueError):
                report = await asyncio.wait_for(running.reports.readline(), 1.0)
                if report.startswith(b"served "):
                    self.served += int(report.split()[1])
            running.pipe.close()
            if self._stopping:
                return
            ran = time.monotonic() - running.started
            backoff = RESTART_S if ran >= HEALTHY_S else min(backoff * 2, RESTART_MAX_S)
            log.warning(
                "worker %d (pid %d) exited (%s) after %.0f s; starting it again",
                index, running.proc.pid, _status(status), ran,
            )
            while not self._stopping:
                await asyncio.sleep(backoff)
                if self._stopping:
                    return
                try:
                    await self._spawn(index)
                except WorkerFailed as e:
                    log.error("%s; trying again in %g s", e, backoff)
                    backoff = min(backoff * 2, RESTART_MAX_S)
                    continue
                self.restarts += 1
                restarted = self._running[index].proc
                log.info("worker %d started again (pid %d)", index, restarted.pid)
                if self._stopping:  # `stop` came while it started: it signalled the one before
                    with contextlib.suppress(ProcessLookupError):
                        restarted.send_signal(signal.SIGTERM)
                break

    async def stop(self, grace_s: float) -> None:
        """SIGTERM to every worker; those still running after `grace_s` seconds are killed."""
        self._stopping = True
        procs = [r.proc for r in self._running.values()]
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        waiting = asyncio.gather(*(p.wait() for p in procs))
        try:
            await asyncio.wait_for(asyncio.shield(waiting), grace_s)
        except TimeoutError:
            for proc in procs:
                if proc.returncode is None:
                    log.warning("worker pid %d did not stop in %g s: killed", proc.pid, grace_s)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await waiting
        await asyncio.gather(*self._watchers, return_exceptions=True)


def _status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when `parent` exits (Linux PR_SET_PDEATHSIG), so no worker is
    left holding the port; and exit now if it already has."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(1)


def parent_gone(parent: int) -> bool:
    """Whether the process `parent` exited (or is exiting: a SIGKILL reaches PR_SET_PDEATHSIG as
    its first thread ends, before this process is handed to another parent)."""
    if os.getppid() != parent:
        return True
    try:
        state = Path(f"/proc/{parent}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


@dataclass(frozen=True)
class WorkerArgs:
    """`--worker INDEX:FD:PARENT`: which worker this is, the pipe to its parent, the parent's pid."""

    index: int
    pipe: int
    parent: int

    @classmethod
    def parse(cls, raw: str) -> WorkerArgs:
        index, pipe, parent = (int(x) for x in raw.split(":"))
        return cls(index, pipe, parent)


WORKER_HEADER = "X-Notar-Worker"


def mark_worker(app: web.Application, index: int, run_dir: Path, anchor: SocketAnchor | None) -> None:
    """Every answer of the worker says which it is (`X-Notar-Worker: 2`), for operators and tests;
    its /metrics is the pod's (services.cli.worker_metrics: its siblings' and `anchor`'s too)."""

    async def header(request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = str(index)

    app.on_response_prepare.append(header)
    share_metrics(app, run_dir, index, None if anchor is None else lambda: anchor.get("/metrics"))


# --- role all's workers: ingest, verify and SCITT over the parent's anchor -------------------

class SocketAnchor:
    """The parent's anchor over its Unix socket, as services.model's Submitter, Lookup and
    Registrations: an AnchorClient whose connections open once the app runs (`open`)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.session: aiohttp.ClientSession | None = None
        self._client: AnchorClient | None = None
        self._coalescer: Coalescer | None = None
        self.dead: str | None = None  # why the anchor's /healthz says restart (`watch_health`)
        self.details: list[str] = []  # the lines of its last /readyz under `ready` (`anchor_ready`)

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(self._path)),
            timeout=aiohttp.ClientTimeout(total=60, sock_connect=5),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )
        self._client = AnchorClient(ANCHOR_HOST, session=self.session)
        self._coalescer = Coalescer(self._client.submit)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    @property
    def client(self) -> AnchorClient:
        if self._client is None:
            raise RuntimeError("the anchor's socket is not open yet")
        return self._client

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        """Merged with the same tenant's submissions of this loop round (services.internal.coalesce);
        a compact answer (a bulk caller's, merkle.compact) is asked for alone: its proof nodes are
        the request's own."""
        if self._coalescer is None:
            raise RuntimeError("the anchor's socket is not open yet")
        if compact:
            return await self.client.submit(tenant, digests, compact=True)
        return await self._coalescer.submit(tenant, digests)

    def refusal(self, count: int = 1) -> NotarError | None:
        return None  # only the anchor knows; it refuses before reading the body

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]:
        return await self.client.lookup(tenant, digest, limit=limit, after=after)

    async def forget(self, tenant: str, digest: Digest) -> int:
        return await self.client.forget(tenant, digest)

    async def register(self, entry: bytes, wait_s: float) -> bytes | None:
        return await self.client.register(entry, wait_s)

    async def receipt(self, entry: bytes) -> bytes | None:
        return await self.client.receipt(entry)

    async def watch_health(self) -> None:
        """Keep `dead` as the anchor's /healthz says, every HEALTH_S: a sequencer stopped for good
        makes the worker's /healthz fail too, so that the whole `notar serve` is restarted (a worker
        alone restarted would not resume it). An anchor that does not answer is no such reason."""
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, text = await self.get("/healthz")
                self.dead = None if status != 503 else "anchor: " + _detail(text)
            await asyncio.sleep(HEALTH_S)

    async def get(self, path: str) -> tuple[int, str]:
        """GET `path` of the anchor: its status and text (ClientError, TimeoutError)."""
        if self.session is None:
            raise aiohttp.ClientConnectionError("not open yet")
        async with self.session.get(ANCHOR_HOST + path, timeout=aiohttp.ClientTimeout(5)) as r:
            return r.status, await r.text()


ANCHOR = web.AppKey("socket_anchor", SocketAnchor)


def _detail(problem: str) -> str:
    """The `detail` of a problem+json answer, else its text, short."""
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        return str(orjson.loads(problem).get("detail", problem))[:500]
    return problem[:500]


def front_app(config: NotarConfig, env: Mapping[str, str], anchor_socket: Path) -> web.Application:
    """Ingest, verify and SCITT, reaching the anchor (`app[ANCHOR]`) on `anchor_socket`; ready
    when the store and the anchor are, /readyz with the anchor's lines."""
    # imported here: only a worker of role all loads them through this module
    from services.anchor.app import MAX_BODY
    from services.ingest import app as ingest_app
    from services.scitt import app as scitt_app
    from services.verify import app as verify_app

    anchor = SocketAnchor(anchor_socket)
    app = new_app(config, env, readiness=[anchor_ready], client_max_size=MAX_BODY)
    app[ANCHOR] = anchor

    async def connect(app: web.Application) -> AsyncIterator[None]:
        await anchor.open()
        watching = asyncio.create_task(anchor.watch_health(), name="notar-anchor-health")
        yield
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await anchor.close()

    app.cleanup_ctx.append(connect)
    app[LIVENESS].append(lambda app: anchor.dead)
    app[DETAILS].append(lambda: anchor.details)  # read by /readyz right after `anchor_ready`
    ingest_app.setup(app, config, submitter=anchor)
    verify_app.setup(app, config, lookup=anchor)
    scitt_app.setup(app, config, registrations=anchor)
    return app


async def anchor_ready(app: web.Application) -> str | None:
    """The anchor's /readyz: a worker is ready only when the anchor behind it is. A ready
    anchor's lines under `ready` (one per anchor kind, per witness) are kept in its `details`,
    which the worker's /readyz shows next."""
    anchor = app[ANCHOR]
    try:
        status, text = await anchor.get("/readyz")
    except (aiohttp.ClientError, TimeoutError) as e:
        anchor.details = []
        return f"anchor unreachable: {e or type(e).__name__}"
    anchor.details = text.splitlines()[1:] if status == 200 else []  # else they are in the reason
    return None if status == 200 else "anchor: " + text.strip().replace("\n", "; ")[:500]


def anchor_socket(path: Path) -> socket.socket:
    """The Unix socket the anchor of role all's parent listens on, at `path` in a 0700 directory."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o600)
    sock.listen(1024)  # connections wait in the backlog until the anchor's app accepts them
    return sock


def workers_context(workers: Workers) -> Callable[[web.Application], AsyncIterator[None]]:
    """Starts the workers once the anchor has started (a cleanup context, last of the parent's)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await workers.start()
        yield
        await workers.stop(5.0)

    return ctx
