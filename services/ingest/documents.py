"""Documents: streamed in, cut into fixed chunks, encrypted and stored under names that hold no
digest in the bucket's private `documents/` prefix, described by an encrypted manifest, streamed
back with every chunk checked, and erased on request. See docs/documents.md and docs/privacy.md.

Every key comes from the index key (services/common/index_key.py), through BLAKE3's
key-derivation and keyed modes; `t` below is u8(len(tenant)) || tenant:

- An upload gets a random 16-byte id; its chunks are `documents/chunks/<upload>/<position>`,
  each AES-256-GCM under K_chunks = BLAKE3-keyed(derive("…document chunks v1"), upload || t),
  nonce = u32(0) || u64be(position), the object key as associated data. The chunks are written
  before the document's digest is known (it is known at the end of the body), so the key is the
  upload's: a fresh random key per upload, each position encrypted once under it (a retried put
  sends the same bytes), hence no nonce is ever used twice with one key.
- The manifest (digest, SHA-256, size, chunk size, each chunk's BLAKE3) is stored twice, under
  the document's BLAKE3 and SHA-256 digests, at `documents/manifests/<name>` with
  name = hex(BLAKE3-keyed(derive("…document names v1"), t || multihash)[:16]); the object is
  upload || AES-256-GCM(K_doc, nonce = upload[:12], manifest, the object key), with
  K_doc = BLAKE3-keyed(derive("…document manifests v1"), t || multihash). Deterministic for one
  upload (a retry writes the same bytes), and a K_doc nonce repeats only if two uploads of one
  document draw ids with the same 12 first bytes (2^-96).

A copy of the bucket without the index key holds no digest, no chunk hash, no byte of a
document in clear, and no tenant name; sizes and times are visible.

Reading (`read`) checks more than each chunk: the manifest must name the digest asked for, and the
whole stream is hashed (BLAKE3 and SHA-256) as it is read; its last chunk is given out only once
both hashes and the size are the manifest's. So whoever can write the store — even with the index
key, resealing another document's manifest under this one's name — can make a read fail, never
make it deliver other bytes in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import blake3
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from merkle.digests import Digest, parse_digest
from services.common.index_key import derive
from services.model import check_tenant
from services.published import layout
from storage.base import ObjectStore
from storage.errors import ConflictError, CorruptedError, NotFoundError, StorageError

log = logging.getLogger("notar.ingest")

CHUNK_SIZE = 4 * 1024 * 1024
UPLOADS_IN_FLIGHT = 2
UPLOAD_ID_SIZE = 16
NAMES_CONTEXT = "notar 2026 document names v1"
MANIFESTS_CONTEXT = "notar 2026 document manifests v1"
CHUNKS_CONTEXT = "notar 2026 document chunks v1"
_ERASE_IN_FLIGHT = 16


@dataclass(frozen=True)
class Manifest:
    digest: str
    sha256: str
    size: int
    chunk_size: int
    chunks: list[str]
    upload: bytes = field(default=b"", compare=False)  # where the chunks are (not in the JSON)

    def summary(self) -> dict[str, object]:
        return {"digest": self.digest, "sha256": self.sha256, "size": self.size, "chunks": len(self.chunks)}

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "digest": self.digest,
                "sha256": self.sha256,
                "size": self.size,
                "chunk_size": self.chunk_size,
                "chunks": self.chunks,
            }
        )

    @classmethod
    def from_json(cls, data: bytes, upload: bytes) -> Manifest:
        m = orjson.loads(data)
        return cls(m["digest"], m["sha256"], m["size"], m["chunk_size"], list(m["chunks"]), upload)

    def multihashes(self) -> tuple[bytes, bytes]:
        """Its BLAKE3 and SHA-256 digests as multihashes: the two names it is stored under."""
        return parse_digest(self.digest).multihash, parse_digest(f"sha256:{self.sha256}").multihash

    def names(self, digest: Digest) -> bool:
        """Whether `digest` is one of this document's two digests."""
        return digest.multihash in self.multihashes()


class _Whole:
    """The BLAKE3, SHA-256 and size of a document's bytes as they are read, to compare with its
    manifest at the end (`mismatch`)."""

    def __init__(self) -> None:
        self._b3: Any = blake3.blake3()
        self._sha: Any = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._b3.update(data)
        self._sha.update(data)
        self.size += len(data)

    def mismatch(self, manifest: Manifest) -> str | None:
        if self.size != manifest.size:
            return f"the chunks hold {self.size} bytes, the manifest says {manifest.size}"
        if f"blake3:{self._b3.hexdigest()}" != manifest.digest or self._sha.hexdigest() != manifest.sha256:
            return "the chunks' bytes are not the document the manifest names"
        return None


def _tenant(tenant: str) -> bytes:
    name = check_tenant(tenant).encode()
    return bytes([len(name)]) + name


def _hash_chunk(chunk: bytes, doc_b3: blake3.blake3, doc_sha: hashlib._Hash) -> str:
    doc_b3.update(chunk)
    doc_sha.update(chunk)
    return blake3.blake3(chunk).hexdigest()


class Documents:
    """Tenants' documents under `prefix` of the object store, keyed by `index_key`."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        index_key: bytes,
        chunk_size: int = CHUNK_SIZE,
        prefix: str = layout.DOCUMENTS_PREFIX,
    ) -> None:
        self._store = store
        self._chunk_size = chunk_size
        self._prefix = prefix
        self._names = derive(index_key, NAMES_CONTEXT)
        self._manifests = derive(index_key, MANIFESTS_CONTEXT)
        self._chunks = derive(index_key, CHUNKS_CONTEXT)

    def __repr__(self) -> str:
        return f"Documents({self._prefix!r})"  # never the keys

    # -- names and keys --------------------------------------------------------------------------
    def _manifest_key(self, tenant: bytes, multihash: bytes) -> str:
        name = blake3.blake3(tenant + multihash, key=self._names).digest(16).hex()
        return layout.document_manifest_key(name, self._prefix)

    def _chunk_key(self, upload: bytes, position: int) -> str:
        return layout.document_chunk_key(upload.hex(), position, self._prefix)

    def _chunk_cipher(self, tenant: bytes, upload: bytes) -> AESGCM:
        return AESGCM(blake3.blake3(upload + tenant, key=self._chunks).digest())

    def _seal(self, tenant: bytes, multihash: bytes, manifest: Manifest) -> tuple[str, bytes]:
        """(object key, bytes) of `manifest` under the name of `multihash`."""
        key = self._manifest_key(tenant, multihash)
        cipher = AESGCM(blake3.blake3(tenant + multihash, key=self._manifests).digest())
        upload = manifest.upload
        return key, upload + cipher.encrypt(upload[:12], manifest.to_json(), key.encode())

    def _open(self, tenant: bytes, multihash: bytes, key: str, sealed: bytes) -> Manifest:
        upload = sealed[:UPLOAD_ID_SIZE]
        cipher = AESGCM(blake3.blake3(tenant + multihash, key=self._manifests).digest())
        try:
            plain = cipher.decrypt(upload[:12], sealed[UPLOAD_ID_SIZE:], key.encode())
            return Manifest.from_json(plain, upload)
        except (InvalidTag, ValueError, KeyError, TypeError) as e:
            raise CorruptedError("the manifest of this document is corrupted in storage") from e

    # -- writing ---------------------------------------------------------------------------------
    async def put(self, tenant: str, body: AsyncIterator[bytes]) -> Manifest:
        """Store a document read from `body` in bounded memory and return its manifest. The
        manifests are written last: a body that fails midway leaves no visible document (and
        its chunks are deleted, as far as the store lets). A document the tenant already
        stored keeps its first copy; this upload's chunks are deleted."""
        loop = asyncio.get_running_loop()
        who = _tenant(tenant)
        upload = os.urandom(UPLOAD_ID_SIZE)
        cipher = self._chunk_cipher(who, upload)
        doc_b3, doc_sha = blake3.blake3(), hashlib.sha256()
        chunks: list[str] = []
        uploads: set[asyncio.Task[None]] = set()
        buf = bytearray()
        size = 0

        def seal(chunk: bytes, key: str, position: int) -> tuple[str, bytes]:
            cid = _hash_chunk(chunk, doc_b3, doc_sha)
            return cid, cipher.encrypt(bytes(4) + position.to_bytes(8, "big"), chunk, key.encode())

        async def flush(chunk: bytes) -> None:
            key = self._chunk_key(upload, len(chunks))
            cid, sealed = await loop.run_in_executor(None, seal, chunk, key, len(chunks))
            chunks.append(cid)
            while len(uploads) >= UPLOADS_IN_FLIGHT:
                done, _ = await asyncio.wait(uploads, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    uploads.discard(t)
                    t.result()
            uploads.add(asyncio.create_task(self._store.put_if_absent(key, sealed)))

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
        except BaseException as e:
            for t in uploads:
                t.cancel()
            await asyncio.gather(*uploads, return_exceptions=True)
            if isinstance(e, Exception):
                with contextlib.suppress(StorageError):
                    await self._delete_upload(upload)
            raise
        manifest = Manifest(
            f"blake3:{doc_b3.hexdigest()}", doc_sha.hexdigest(), size, self._chunk_size, chunks, upload
        )
        b3, sha = manifest.multihashes()
        kept = await self._keep(who, b3, manifest)
        if kept.upload != upload:
            await self._delete_upload(upload)
        return await self._keep(who, sha, kept)

    async def _keep(self, tenant: bytes, multihash: bytes, manifest: Manifest) -> Manifest:
        """Store `manifest` under the name of `multihash`, unless a whole copy of that document
        is stored there already: then that one is kept and returned. What an interrupted
        erasure left there (a manifest whose chunks are not all there) is erased first."""
        key, sealed = self._seal(tenant, multihash, manifest)
        try:
            await self._store.put_if_absent(key, sealed)
            return manifest
        except ConflictError:
            existing = self._open(tenant, multihash, key, await self._store.get(key))
        if len(await self._chunk_keys(existing.upload)) == len(existing.chunks):
            return existing
        await self._delete_upload(existing.upload)
        await self._store.delete(key)
        await self._store.put_if_absent(key, sealed)
        return manifest

    async def _chunk_keys(self, upload: bytes) -> list[str]:
        return [k async for k in self._store.list(layout.document_chunks(upload.hex(), self._prefix))]

    async def _delete_upload(self, upload: bytes) -> None:
        """Delete every chunk of an upload."""
        keys = await self._chunk_keys(upload)
        for at in range(0, len(keys), _ERASE_IN_FLIGHT):
            await asyncio.gather(*(self._store.delete(k) for k in keys[at : at + _ERASE_IN_FLIGHT]))

    # -- reading ---------------------------------------------------------------------------------
    async def manifest(self, tenant: str, digest: Digest) -> Manifest:
        """The manifest of a tenant's document by its BLAKE3 or SHA-256 digest; NotFoundError,
        CorruptedError when it does not decrypt."""
        who = _tenant(tenant)
        key = self._manifest_key(who, digest.multihash)
        try:
            sealed = await self._store.get(key)
        except NotFoundError:
            raise NotFoundError(f"no document {digest} for this tenant") from None
        return self._open(who, digest.multihash, key, sealed)

    async def read(self, tenant: str, digest: Digest) -> tuple[Manifest, AsyncIterator[bytes]]:
        """The manifest of a tenant's document (`manifest`), checked to name `digest`, and its
        bytes chunk by chunk (`chunk`), the whole hashed on the way: the last chunk comes only
        once the whole is the manifest's document (module doc). CorruptedError (from the
        iterator too) when it is not, NotFoundError when a chunk is gone."""
        manifest = await self.manifest(tenant, digest)
        if not manifest.names(digest):
            raise CorruptedError(
                f"the manifest stored under the name of {digest} names another document; refusing to serve it"
            )
        return manifest, self._checked(tenant, manifest)

    async def _checked(self, tenant: str, manifest: Manifest) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        whole = _Whole()
        last = len(manifest.chunks) - 1
        for position in range(len(manifest.chunks)):
            data = await self.chunk(tenant, manifest, position)
            await loop.run_in_executor(None, whole.update, data)
            if position == last:
                self._check_whole(whole, manifest)
            yield data
        if last < 0:
            self._check_whole(whole, manifest)

    @staticmethod
    def _check_whole(whole: _Whole, manifest: Manifest) -> None:
        why = whole.mismatch(manifest)
        if why is not None:
            raise CorruptedError(f"this document is corrupted in storage ({why}); refusing to serve its end")

    async def chunk(self, tenant: str, manifest: Manifest, position: int) -> bytes:
        """Chunk `position` of a document, decrypted and checked against its hash while it is
        read; CorruptedError if storage changed it, NotFoundError if it is gone (erased)."""
        key = self._chunk_key(manifest.upload, position)
        try:
            sealed = await self._store.get(key)
        except NotFoundError:
            raise NotFoundError(f"chunk {position} of this document is gone (erased?)") from None
        cipher = self._chunk_cipher(_tenant(tenant), manifest.upload)

        def open_chunk() -> bytes | None:
            try:
                data = cipher.decrypt(bytes(4) + position.to_bytes(8, "big"), sealed, key.encode())
            except InvalidTag:
                return None
            return data if blake3.blake3(data).hexdigest() == manifest.chunks[position] else None

        data = await asyncio.get_running_loop().run_in_executor(None, open_chunk)
        if data is None:
            raise CorruptedError(
                f"chunk {position} of this document is corrupted in storage; refusing to serve it"
            )
        return data

    # -- erasure ---------------------------------------------------------------------------------
    async def delete(self, tenant: str, digest: Digest) -> bool:
        """Erase a tenant's document asked for by its BLAKE3 or SHA-256 digest: its chunks, then
        its manifest under the other digest, then the one asked by (a retry by the same digest
        finds what is left and finishes). False when there is no such document."""
        who = _tenant(tenant)
        asked = self._manifest_key(who, digest.multihash)
        try:
            sealed = await self._store.get(asked)
        except NotFoundError:
            return False
        await self._delete_upload(sealed[:UPLOAD_ID_SIZE])
        names: tuple[bytes, ...]
        try:
            names = self._open(who, digest.multihash, asked, sealed).multihashes()
        except CorruptedError:
            log.warning("erasing a document whose manifest does not decrypt: its other name stays")
            names = ()
        for other in names:
            if other != digest.multihash:
                await self._store.delete(self._manifest_key(who, other))
        await self._store.delete(asked)
        return True
