"""The /metrics of `notar serve --workers N`: whichever worker a scrape reaches answers for the
whole pod (services.common.pod_metrics), as one process would.

Each worker serves its own lines on a Unix socket of its parent's private directory
(`worker-<index>.sock`: connect, read until it closes); a worker's /metrics reads its siblings'
there and, with role `all`, the anchor's /metrics on the anchor's socket. The pod's counters never
go down when a worker is started again or misses a scrape (services.common.pod_counters)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

from services.common import pod_counters, pod_metrics
from services.common.pod_metrics import Family
from services.common.resources import METRICS, POD_METRICS

READ_S = 5.0  # a sibling or the anchor that does not answer a scrape in this long is left out
COUNTERS = "counters.json"  # what each process last showed (services.common.pod_counters)
COUNTERS_LOCK = "counters.lock"


def worker_info(index: int) -> Callable[[], list[str]]:
    """`notar_worker_info{worker, pid} 1`: which processes the pod's /metrics gathered."""
    line = f'notar_worker_info{{worker="{index}",pid="{os.getpid()}"}} 1'
    help_ = "# HELP notar_worker_info a worker process of notar serve --workers"
    return lambda: [help_, "# TYPE notar_worker_info gauge", line]


def socket_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"worker-{index}.sock"


AnchorMetrics = Callable[[], Awaitable[tuple[int, str]]]
"""GET /metrics of the anchor behind the workers (role all): its status and text."""


def share_metrics(app: web.Application, run_dir: Path, index: int, anchor: AnchorMetrics | None) -> None:
    """Make worker `index`'s /metrics the pod's, and serve its own lines to its siblings."""
    app[METRICS].append(worker_info(index))

    def own() -> bytes:
        return "\n".join(line for provider in app[METRICS] for line in provider()).encode() + b"\n"

    async def serve(app: web.Application) -> AsyncIterator[None]:
        path = socket_path(run_dir, index)
        path.unlink(missing_ok=True)  # the socket of this worker's killed predecessor

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(own())
                await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(answer, path=str(path))
        path.chmod(0o600)
        yield
        server.close()
        await server.wait_closed()
        path.unlink(missing_ok=True)

    async def pod(lines: list[str]) -> list[str]:
        return await pod_lines(lines, run_dir, index, anchor)

    app.cleanup_ctx.append(serve)
    app[POD_METRICS] = pod


async def pod_lines(own: list[str], run_dir: Path, index: int, anchor: AnchorMetrics | None) -> list[str]:
    """This worker's lines (`own`) merged with its siblings' and the anchor's; a process that
    could not be read is named in a comment at the end."""
    siblings = _siblings(run_dir, index)
    names = [p.stem.removeprefix("worker-") for p in siblings]
    reads: list[Awaitable[str]] = [_read_socket(p) for p in siblings]
    if anchor is not None:
        names.append(pod_metrics.ANCHOR)
        reads.append(_read_anchor(anchor))
    texts = await asyncio.gather(*reads, return_exceptions=True)
    sources = [(str(index), pod_metrics.parse(own))]
    missed = []
    for name, text in zip(names, texts, strict=True):
        if isinstance(text, BaseException):
            who = "the anchor" if name == "anchor" else "worker " + name
            missed.append(
                f"# the metrics of {who} could not be read: {text or type(text).__name__}; "
                "its counters are those it last showed"
            )
        else:
            sources.append((name, pod_metrics.parse(text.splitlines())))
    carried = await asyncio.to_thread(_carried, run_dir, sources)
    return pod_metrics.merge_parsed(carried) + missed


def _carried(run_dir: Path, read: list[tuple[str, dict[str, Family]]]) -> list[tuple[str, dict[str, Family]]]:
    """`pod_counters.carry` of `read` with the pod's state in `run_dir`, under an exclusive lock
    (several workers may answer scrapes at once). The state is the pod's life only: no fsync."""
    with (run_dir / COUNTERS_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = run_dir / COUNTERS
        try:
            state = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):  # the first scrape; or not ours
            state = {}
        out = pod_counters.carry(state, read)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(state))
        tmp.replace(path)
        return out


def _siblings(run_dir: Path, index: int) -> list[Path]:
    """The other workers' sockets (a killed one's stays until it is started again: refused)."""
    return sorted(p for p in run_dir.glob("worker-*.sock") if p != socket_path(run_dir, index))


async def _read_socket(path: Path) -> str:
    async with asyncio.timeout(READ_S):
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            return (await reader.read()).decode()
        finally:
            writer.close()


async def _read_anchor(anchor: AnchorMetrics) -> str:
    status, text = await anchor()
    if status != 200:
        raise ConnectionError(f"its /metrics answered {status}")
    return text
