"""Documents: streamed in, cut into fixed chunks stored content-addressed per tenant, described by
a manifest, streamed back with every chunk checked. See docs/documents.md for the chunk size."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import blake3
import orjson

from merkle.digests import Digest
from services.common.problems import CorruptedError
from services.model import check_tenant
from services.published import layout
from storage.base import ObjectStore
from storage.errors import NotFoundError

CHUNK_SIZE = 4 * 1024 * 1024
UPLOADS_IN_FLIGHT = 2


@dataclass(frozen=True)
class Manifest:
    digest: str
    sha256: str
    size: int
    chunk_size: int
    chunks: list[str]

    def summary(self) -> dict[str, object]:
        return {"digest": self.digest, "sha256": self.sha256, "size": self.size, "chunks": len(self.chunks)}


def _hash_chunk(chunk: bytes, doc_b3: blake3.blake3, doc_sha: hashlib._Hash) -> str:
    doc_b3.update(chunk)
    doc_sha.update(chunk)
    return blake3.blake3(chunk).hexdigest()


class Documents:
    """A tenant's documents under `documents/<tenant>/` of the object store."""

    def __init__(
        self, store: ObjectStore, *, chunk_size: int = CHUNK_SIZE, prefix: str = layout.DOCUMENTS_PREFIX
    ) -> None:
        self._store = store
        self._chunk_size = chunk_size
        self._prefix = prefix

    def _key(self, tenant: str, kind: str, name: str) -> str:
        return layout.document_key(check_tenant(tenant), kind, name, self._prefix)

    async def put(self, tenant: str, body: AsyncIterator[bytes]) -> Manifest:
        """Store a document read from `body` in bounded memory and return its manifest. The
        manifest is written last: a body that fails midway leaves no visible document."""
        loop = asyncio.get_running_loop()
        doc_b3, doc_sha = blake3.blake3(), hashlib.sha256()
        chunks: list[str] = []
        uploads: set[asyncio.Task[None]] = set()
        buf = bytearray()
        size = 0

        async def flush(chunk: bytes) -> None:
            cid = await loop.run_in_executor(None, _hash_chunk, chunk, doc_b3, doc_sha)
            chunks.append(cid)
            while len(uploads) >= UPLOADS_IN_FLIGHT:
                done, _ = await asyncio.wait(uploads, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    uploads.discard(t)
                    t.result()
            uploads.add(
                asyncio.create_task(self._store.put_if_absent(self._key(tenant, layout.CHUNKS, cid), chunk))
            )

        try:
            async for data in body:
                size += len(data)
                buf += data
                while len(buf) >= self._chunk_size:
                    await flush(bytes(buf[: self._chunk_size]))
                    del buf[: self._chunk_size]
            if buf:
                await flush(bytes(buf))
            for t in asyncio.as_completed(list(uploads)):
                await t
        except BaseException:
            for t in uploads:
                t.cancel()
            await asyncio.gather(*uploads, return_exceptions=True)
            raise
        manifest = Manifest(
            f"blake3:{doc_b3.hexdigest()}", doc_sha.hexdigest(), size, self._chunk_size, chunks
        )
        raw = orjson.dumps(asdict(manifest))
        await self._store.put_if_absent(self._key(tenant, layout.MANIFESTS, doc_b3.hexdigest()), raw)
        await self._store.put_if_absent(
            self._key(tenant, layout.BY_SHA256, manifest.sha256), manifest.digest.encode()
        )
        return manifest

    async def manifest(self, tenant: str, digest: Digest) -> Manifest:
        """The manifest of a tenant's document by its blake3 or sha256 digest; NotFoundError."""
        try:
            b3 = digest.value.hex()
            if digest.algorithm == "sha256":
                b3 = (
                    (await self._store.get(self._key(tenant, layout.BY_SHA256, b3)))
                    .decode()
                    .removeprefix("blake3:")
                )
            m = orjson.loads(await self._store.get(self._key(tenant, layout.MANIFESTS, b3)))
            return Manifest(m["digest"], m["sha256"], m["size"], m["chunk_size"], list(m["chunks"]))
        except NotFoundError:
            raise NotFoundError(f"no document {digest} for this tenant") from None

    async def chunk(self, tenant: str, cid: str) -> bytes:
        """One chunk, checked against its hash; CorruptedError if storage changed it."""
        data = await self._store.get(self._key(tenant, layout.CHUNKS, cid))
        actual = await asyncio.get_running_loop().run_in_executor(
            None, lambda: blake3.blake3(data).hexdigest()
        )
        if actual != cid:
            raise CorruptedError(
                f"chunk {cid} of this document is corrupted in storage; refusing to serve it"
            )
        return data
