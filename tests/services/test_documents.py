"""Stored documents (services/ingest/documents.py): encrypted, under names that hold no digest,
read back checked, and erased so that a retry after any failure finishes the job."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import blake3
import pytest

from merkle import parse_digest
from services.ingest.documents import Documents
from storage.errors import CorruptedError, NotFoundError, StorageError
from storage.memory import MemoryStore

KEY = bytes(range(32))
CHUNK = 1024


async def body(data: bytes, piece: int = 700) -> AsyncIterator[bytes]:
    for at in range(0, len(data), piece):
        yield data[at : at + piece]


def docs(store: MemoryStore, key: bytes = KEY) -> Documents:
    return Documents(store, index_key=key, chunk_size=CHUNK)


async def read(d: Documents, tenant: str, digest: str) -> bytes:
    manifest = await d.manifest(tenant, parse_digest(digest))
    return b"".join([await d.chunk(tenant, manifest, i) for i in range(len(manifest.chunks))])


def needles(data: bytes) -> list[bytes]:
    """What a document in clear would show: its digests in every spelling, its chunks' hashes,
    and pieces of its bytes."""
    digests = [blake3.blake3(data).digest(), hashlib.sha256(data).digest()]
    digests += [blake3.blake3(data[at : at + CHUNK]).digest() for at in range(0, len(data), CHUNK)]
    out = [d for x in digests for d in (x, x.hex().encode(), x[:12])]
    return out + [data[at : at + 24] for at in range(0, max(1, len(data) - 24), 97)]


async def test_round_trip_with_nothing_in_clear() -> None:
    store = MemoryStore()
    d = docs(store)
    data = os.urandom(3 * CHUNK + 17)
    manifest = await d.put("acme", body(data))
    assert manifest.summary() == {
        "digest": "blake3:" + blake3.blake3(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "chunks": 4,
    }
    assert await read(d, "acme", manifest.digest) == data
    assert await read(d, "acme", "sha256:" + manifest.sha256) == data
    everything = b"\n".join(k.encode() + b"\n" + v for k, v in store.objects.items())
    assert sorted({k.split("/")[1] for k in store.objects}) == ["chunks", "manifests"]
    assert len(store.objects) == 4 + 2 and b"acme" not in everything
    for needle in needles(data):
        assert needle not in everything, needle
    # the search finds a document kept as the old layout kept it: digests in names (hex), and
    # digests and bytes in bodies
    chunks = [data[at : at + CHUNK] for at in range(0, len(data), CHUNK)]
    digests = [blake3.blake3(data).digest(), hashlib.sha256(data).digest()]
    digests += [blake3.blake3(c).digest() for c in chunks]
    clear = b"\n".join([d.hex().encode() for d in digests] + digests + [data])
    assert all(n in clear for n in needles(data))


async def test_a_tenant_or_a_key_sees_only_its_own_documents() -> None:
    store = MemoryStore()
    manifest = await docs(store).put("acme", body(b"contract"))
    with pytest.raises(NotFoundError):
        await docs(store).manifest("globex", parse_digest(manifest.digest))
    with pytest.raises(NotFoundError):
        await docs(store, os.urandom(32)).manifest("acme", parse_digest(manifest.digest))


async def test_a_second_upload_keeps_the_first_and_leaves_no_orphan() -> None:
    store = MemoryStore()
    d = docs(store)
    data = os.urandom(2 * CHUNK + 1)
    first = await d.put("acme", body(data))
    objects = dict(store.objects)
    second = await d.put("acme", body(data, piece=333))
    assert second == first and second.upload == first.upload
    assert store.objects == objects
    other = await d.put("globex", body(data))  # another tenant: its own copy
    assert other.upload != first.upload and len(store.objects) == 2 * len(objects)


async def test_an_interrupted_upload_leaves_nothing() -> None:
    store = MemoryStore()

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(3 * CHUNK)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await docs(store).put("acme", broken())
    assert store.objects == {}


async def test_tampering_is_refused_never_served() -> None:
    store = MemoryStore()
    d = docs(store)
    data = os.urandom(2 * CHUNK)
    manifest = await d.put("acme", body(data))
    first, second = sorted(k for k in store.objects if "/chunks/" in k)
    store.objects[first], store.objects[second] = store.objects[second], store.objects[first]
    with pytest.raises(CorruptedError, match="chunk 0"):  # chunks bound to their place
        await d.chunk("acme", manifest, 0)
    sealed = store.objects[second]
    store.objects[second] = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(CorruptedError, match="chunk 1"):
        await d.chunk("acme", manifest, 1)
    [name, _] = [k for k in store.objects if "/manifests/" in k]
    store.objects[name] = store.objects[name][:-2] + b"xx"
    for digest in (manifest.digest, "sha256:" + manifest.sha256):
        try:
            await d.manifest("acme", parse_digest(digest))
        except CorruptedError:
            break
    else:
        raise AssertionError("a tampered manifest was read")


@pytest.mark.parametrize("by", ["blake3", "sha256"])
async def test_erasure_deletes_everything_and_says_so_once(by: str) -> None:
    store = MemoryStore()
    d = docs(store)
    data = os.urandom(2 * CHUNK + 5)
    manifest = await d.put("acme", body(data))
    kept = await d.put("acme", body(b"another one"))
    theirs = await d.put("globex", body(data))
    digest = parse_digest(manifest.digest if by == "blake3" else "sha256:" + manifest.sha256)
    assert await d.delete("acme", digest)
    assert not await d.delete("acme", digest)
    for name in (manifest.digest, "sha256:" + manifest.sha256):
        with pytest.raises(NotFoundError):
            await d.manifest("acme", parse_digest(name))
    assert not [k for k in store.objects if manifest.upload.hex() in k]
    assert await read(d, "acme", kept.digest) == b"another one"
    assert await read(d, "globex", theirs.digest) == data


@pytest.mark.parametrize("fail", range(5))
async def test_a_retried_erasure_converges_and_a_new_upload_survives_a_broken_one(fail: int) -> None:
    """Every delete of an erasure can fail: a retry by the same digest finishes it, and an upload
    over what an interrupted erasure left stores the document whole."""
    store = MemoryStore()
    d = docs(store)
    data = os.urandom(3 * CHUNK)
    manifest = await d.put("acme", body(data))
    store.faults.inject("delete", skip=fail)
    with pytest.raises(StorageError):
        await d.delete("acme", parse_digest(manifest.digest))
    store.faults.clear()
    again = await d.put("acme", body(data))
    assert await read(d, "acme", again.digest) == data
    assert await read(d, "acme", "sha256:" + again.sha256) == data
    assert await d.delete("acme", parse_digest(again.digest))
    assert store.objects == {}
    store.faults.inject("delete", skip=fail)
    manifest = await d.put("acme", body(data))
    with pytest.raises(StorageError):
        await d.delete("acme", parse_digest("sha256:" + manifest.sha256))
    store.faults.clear()
    assert await d.delete("acme", parse_digest("sha256:" + manifest.sha256))
    assert store.objects == {}


async def test_an_empty_document() -> None:
    store = MemoryStore()
    d = docs(store)
    manifest = await d.put("acme", body(b""))
    assert manifest.summary()["chunks"] == 0 and await read(d, "acme", manifest.digest) == b""
    assert await d.delete("acme", parse_digest(manifest.digest)) and store.objects == {}
