"""Inclusion and consistency proofs computed from a log's published tiles over HTTP (SPEC §2),
for when a deployment's `/v1/proofs` cannot be reached: from the verify service's `/log/` routes,
or from any static server, bucket or CDN serving the bucket's `log/` prefix as it is.

    async with aiohttp.ClientSession() as session:
        tiles = TileLog(session, "https://cdn.example.org/log/")
        proof = await tiles.inclusion_proof(index, size, origin)     # hashes, as bytes

A proof is computed as the verify service computes it (`services.published.reader`): over the
tiles of the latest published checkpoint, whose tree holds every perfect subtree of a smaller
one, so only tiles that exist are asked for (each checkpoint's are published before it). A tree
larger than the published one is waited for, at most `WAIT_S`, as the routes of SPEC §2 wait.
Nothing fetched is trusted: the caller checks the proof against a root it trusts (a receipt's,
an anchored checkpoint's), so a wrong tile or checkpoint can only make that check fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from merkle.proofs import NodeSource, consistency_path, inclusion_path
from merkle.tiles import TileId, TileSource, tiles_needed
from services.published.shards import shard_of_origin

WAIT_S = 2.0
POLL_S = 0.1


class TileLogError(Exception):
    """The log's files do not answer what a proof needs: `status` 404 when the tree or the log is
    not published there, else the HTTP status (0: no answer, or an unusable one)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class TileLog:
    """The published logs whose files are at `base` (`…/log/`: shard 0's `checkpoint` and
    `tile/…`, shard i's under `<i>/`), read through `session`."""

    def __init__(self, session: aiohttp.ClientSession, base: str, *, wait: float = WAIT_S) -> None:
        self._session, self._base, self._wait = session, base.rstrip("/") + "/", wait
        self._home: str | None = None  # the origin of shard 0, the checkpoint at `base`

    async def _get(self, path: str) -> bytes:
        url = self._base + path
        try:
            async with self._session.get(url) as r:
                if r.status != 200:
                    raise TileLogError(r.status, f"{url} answered {r.status}")
                return await r.read()
        except aiohttp.ClientError as e:
            raise TileLogError(0, f"{url}: {e}") from e

    async def _size(self, prefix: str, origin: str) -> int:
        note = (await self._get(prefix + "checkpoint")).decode("utf-8", "replace")
        try:
            return parse_checkpoint(parse_note(note).text, origin=origin).size
        except ValueError as e:
            where = f"{self._base}{prefix}checkpoint"
            raise TileLogError(0, f"{where} is not a checkpoint of {origin}: {e}") from e

    async def _prefix(self, origin: str | None) -> tuple[str, str]:
        """(the path of the log of `origin` under `base`, that origin); None: shard 0's."""
        if self._home is None:
            note = (await self._get("checkpoint")).decode("utf-8", "replace")
            self._home = note.partition("\n")[0]
        if origin is None:
            return "", self._home
        shard = shard_of_origin(self._home, origin)
        if shard is None:
            raise TileLogError(404, f"{self._base} publishes the log {self._home}, not {origin[:200]!r}")
        return ("" if shard == 0 else f"{shard}/"), origin

    async def _published(self, prefix: str, origin: str, size: int) -> int:
        """The latest published size once it is `size` or more (waiting up to `wait` s)."""
        deadline = time.monotonic() + self._wait
        while (published := await self._size(prefix, origin)) < size:
            if time.monotonic() >= deadline:
                detail = f"the log {origin} has {published} entries published; no tree of size {size}"
                raise TileLogError(404, detail)
            await asyncio.sleep(POLL_S)
        return published

    async def _prove(
        self, prefix: str, published: int, run: Callable[[NodeSource], list[bytes]]
    ) -> list[bytes]:
        def on(fetch: Callable[[TileId], bytes]) -> list[bytes]:
            return run(TileSource(published, fetch))

        needed = sorted(tiles_needed(on), key=lambda t: (str(t.level), t.index))
        data = await asyncio.gather(*(self._get(prefix + t.path) for t in needed))
        fetched = dict(zip(needed, data, strict=True))
        try:
            return on(fetched.__getitem__)
        except ValueError as e:  # a tile of the wrong length
            raise TileLogError(0, f"{self._base}{prefix}: unusable tile: {e}") from e

    async def checkpoint(self, origin: str | None = None) -> str:
        """The latest published checkpoint of log `origin` (None: shard 0's), as the note it is
        (unverified: the caller checks its signatures)."""
        prefix, name = await self._prefix(origin)
        note = (await self._get(prefix + "checkpoint")).decode("utf-8", "replace")
        await self._size(prefix, name)  # a checkpoint of that log, or TileLogError
        return note

    async def inclusion_proof(self, index: int, size: int, origin: str | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry `index` in the tree of `size` of log `origin`."""
        if not 0 <= index < size:
            raise ValueError(f"index {index} is not below size {size}")
        prefix, name = await self._prefix(origin)
        published = await self._published(prefix, name, size)
        return await self._prove(prefix, published, lambda nodes: inclusion_path(nodes, index, size))

    async def consistency_proof(self, size1: int, size2: int, origin: str | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of `size1` to that of `size2`."""
        if not 0 <= size1 <= size2:
            raise ValueError(f"'from' {size1} is larger than 'to' {size2}")
        prefix, name = await self._prefix(origin)
        published = await self._published(prefix, name, size2)
        return await self._prove(prefix, published, lambda nodes: consistency_path(nodes, size1, size2))
