"""The published log's files served as a static file server would (SPEC §2, §6 `/log/…`).

Tiles and entry bundles never change once written, partial ones included (a partial tile names
its width), so they are served from memory with `Cache-Control: immutable`, a strong `ETag`, and
304 to an `If-None-Match` that names it. The memory is `ImmutableCache`, bounded in bytes
(TILE_CACHE_MB), least recently used out first. Only `checkpoint` changes: it is read from the
store at each request (short `Cache-Control`, an `ETag` of its bytes).

Where the store is a directory (STORE=fs), a file asked for the first time is sent with
`sendfile` (aiohttp's `FileResponse`: zero-copy from the page cache) and only a file asked again
is read into memory: a one-off crawl of the whole log (an auditor) does not push the tiles that
clients keep asking out of the cache. A file's ETag is then `FileResponse`'s (its mtime and size,
which never change for an immutable file) on both paths; with any other store it is a hash of the
bytes, the same on every verify pod.

A tile of a tree that is signed but not published yet is waited for, at most 2 s
(`LogReader.tile`), and a tile that does not exist is a 404 problem, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from merkle.tiles import TileId
from services.common.http_server import NOSNIFF
from services.common.traced_store import TracedStore
from services.published import layout
from services.published.reader import LogReader
from storage.base import ObjectStore
from storage.fs import FsStore

OCTETS = "application/octet-stream"
DEFAULT_CACHE_MB = 64
T = TypeVar("T")
_SEEN_KEYS = 65_536  # keys remembered as asked once, for the directory's admission rule


@dataclass(frozen=True, slots=True)
class Held:
    """An immutable object as it is answered: its bytes and headers (ETag among them)."""

    data: bytes
    etag: str
    headers: CIMultiDictProxy[str]

    @classmethod
    def of(cls, data: bytes, etag: str, *, cache: str = layout.IMMUTABLE, content_type: str = OCTETS) -> Held:
        headers = CIMultiDict({hdrs.CONTENT_TYPE: content_type, hdrs.CACHE_CONTROL: cache, hdrs.ETAG: etag})
        headers[NOSNIFF[0]] = NOSNIFF[1]  # answered before routing too, where no signal adds it
        return cls(data, etag, CIMultiDictProxy(headers))


def content_etag(data: bytes) -> str:
    """A strong ETag of `data` (RFC 9110 §8.8.3): 128 bits of its SHA-256, quoted."""
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


class ImmutableCache:
    """Immutable objects by store key, at most `max_bytes` of their bytes in all; the least
    recently used leave first. An object larger than an eighth of the bound is never kept (one
    object must not empty the cache). `max_bytes` 0 keeps nothing."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"a cache bound must be 0 or more bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._held: OrderedDict[str, Held] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def get(self, key: str) -> Held | None:
        held = self._held.get(key)
        if held is not None:
            self._held.move_to_end(key)
        return held

    def put(self, key: str, held: Held) -> None:
        size = len(held.data)
        if size * 8 > self.max_bytes or key in self._held:
            return
        self._held[key] = held
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, out = self._held.popitem(last=False)
            self.bytes -= len(out.data)
            self.evictions += 1

    def asked_before(self, key: str) -> bool:
        """Whether `key` was asked before (of the last `_SEEN_KEYS` keys); notes that it was."""
        if key in self._seen:
            del self._seen[key]
            return True
        self._seen[key] = None
        if len(self._seen) > _SEEN_KEYS:
            self._seen.popitem(last=False)
        return False


def answer(request: web.Request, held: Held) -> web.Response:
    """`held` as the answer to `request`: 304 when its If-None-Match names the ETag."""
    if hdrs.IF_NONE_MATCH in request.headers and _matches(request, held.etag):
        kept = {name: held.headers[name] for name in (hdrs.ETAG, hdrs.CACHE_CONTROL, NOSNIFF[0])}
        return web.Response(status=304, headers=kept)
    return web.Response(body=held.data, headers=held.headers)


def _matches(request: web.Request, etag: str) -> bool:
    """RFC 9110 §13.1.2: If-None-Match compares weakly; `*` matches any current representation."""
    wanted = request.if_none_match or ()
    return any(e.value == "*" or f'"{e.value}"' == etag for e in wanted)


class LogFiles:
    """The `/log/` routes' answers for the log files in `store`, kept in `cache`."""

    def __init__(self, store: ObjectStore, cache: ImmutableCache) -> None:
        inner = store.inner if isinstance(store, TracedStore) else store
        self.root: Path | None = inner.root if isinstance(inner, FsStore) else None
        self.cache = cache

    async def tile(
        self, request: web.Request, reader: LogReader, key: str, tid: TileId
    ) -> web.StreamResponse:
        """Tile or bundle `tid` of the log `reader` reads, whose store key is `key`."""
        held = self.cache.get(key)
        if held is not None:
            return answer(request, held)
        if self.root is None:
            held = Held.of(data := await reader.tile(tid), content_etag(data))
        else:
            path = self.root / key
            if self.cache.max_bytes == 0 or not self.cache.asked_before(key):
                if not await _run(path.is_file):
                    await reader.tile(tid)  # waits for its tree, else NotFoundError
                return web.FileResponse(
                    path, headers={hdrs.CONTENT_TYPE: OCTETS, hdrs.CACHE_CONTROL: layout.IMMUTABLE}
                )
            try:
                held = await _run(lambda: _read_file(path))
            except (FileNotFoundError, NotADirectoryError):
                await reader.tile(tid)
                held = await _run(lambda: _read_file(path))
        self.cache.put(key, held)
        return answer(request, held)

    @staticmethod
    async def checkpoint(request: web.Request, reader: LogReader) -> web.Response:
        """The log's latest checkpoint, read now (it changes with every batch)."""
        data = await reader.raw(layout.CHECKPOINT)
        text = "text/plain; charset=utf-8"
        held = Held.of(data, content_etag(data), cache=layout.CHECKPOINT_CACHE, content_type=text)
        return answer(request, held)


def _read_file(path: Path) -> Held:
    """The file's bytes with FileResponse's ETag (mtime and size: an immutable file keeps both)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read()
    return Held.of(data, f'"{st.st_mtime_ns:x}-{st.st_size:x}"')


async def _run(call: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, call)
