"""A store writer can break a document's read, never substitute its bytes (issue 15, item 7).

Against a real `notar serve`, the test plays someone who can write the bucket and holds the index
key (a compromised ingest pod): it reseals another document's manifest under the name of the
document asked for. `GET /v1/documents/X` then refuses before the first byte, or cuts the
connection before the last one — never a whole body of other bytes with 200 and
`X-Notar-Digest: X`, as it did — and the SDK refuses a server that sends other bytes whole."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator

import aiohttp
import blake3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from merkle import parse_digest
from services.common.components import load
from services.common.index_key import load_index_key
from services.ingest.documents import CHUNK_SIZE, Documents, Manifest, _tenant
from services.sdk import DocumentMismatch, NotarClient
from storage.fs import FsStore
from tests.serving import NotarProcess, notar_serve

ORIGIN = "documents.notar.test/log"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotarProcess]:
    with notar_serve(tmp_path_factory.mktemp("served"), ORIGIN) as s:
        yield s


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


async def upload(server: NotarProcess, data: bytes) -> str:
    async with NotarClient(server.url, server.env["NOTAR_API_KEY"]) as client:

        async def body() -> AsyncIterator[bytes]:
            yield data

        return str((await client.upload(body())).document["digest"])


def bucket(server: NotarProcess) -> tuple[FsStore, Documents]:
    config = load(flags={"DATA_DIR": str(server.data)}, env={}, config_file=None)
    store = FsStore(server.data / "store")
    return store, Documents(store, index_key=load_index_key(config.keys))


async def reseal(server: NotarProcess, victim: str, donor: str, *, claim_victim: bool) -> None:
    """Store under the victim's two names the donor's manifest, claiming (or not) to be the victim."""
    store, docs = bucket(server)
    was = await docs.manifest("acme", parse_digest(victim))
    given = await docs.manifest("acme", parse_digest(donor))
    digest, sha = (was.digest, was.sha256) if claim_victim else (given.digest, given.sha256)
    forged = Manifest(digest, sha, given.size, given.chunk_size, given.chunks, given.upload)
    for multihash in was.multihashes():
        key, sealed = docs._seal(_tenant("acme"), multihash, forged)
        await store.put(key, sealed)


async def fetch(server: NotarProcess, digest: str) -> tuple[int, dict[str, str], bytes, str | None]:
    """Status, headers, the bytes that came, and the error that cut them (None: a whole body)."""
    headers = {"Authorization": "Bearer " + server.env["NOTAR_API_KEY"]}
    url = f"{server.url}/v1/documents/{digest}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        got = b""
        try:
            async for chunk in r.content.iter_chunked(1 << 16):
                got += chunk
        except aiohttp.ClientPayloadError as e:
            return r.status, dict(r.headers), got, type(e).__name__
        return r.status, dict(r.headers), got, None


async def test_a_resealed_manifest_never_serves_the_other_document(server: NotarProcess) -> None:
    big_victim, big_donor = os.urandom(2 * CHUNK_SIZE + 5), os.urandom(2 * CHUNK_SIZE + 77)
    small_victim, small_donor = os.urandom(1000), os.urandom(3000)
    digests = [await upload(server, d) for d in (big_victim, big_donor, small_victim, small_donor)]
    victim, donor, small, small_other = digests
    status, _, got, cut = await fetch(server, victim)
    assert (status, got, cut) == (200, big_victim, None)

    await reseal(server, victim, donor, claim_victim=True)  # the donor's chunks, the victim's hashes
    status, headers, got, cut = await fetch(server, victim)
    assert status == 200 and headers["X-Notar-Digest"] == victim  # the head was sent...
    assert cut is not None and len(got) < len(big_donor) and got == big_donor[: len(got)]  # ...not all
    sha = "sha256:" + hashlib.sha256(big_victim).hexdigest()
    status, _, got, cut = await fetch(server, sha)  # by its other name: the same
    assert cut is not None and len(got) < len(big_donor)
    async with NotarClient(server.url, server.env["NOTAR_API_KEY"]) as client:
        pieces: list[bytes] = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async for piece in client.document(victim):
                pieces.append(piece)
        assert len(b"".join(pieces)) < len(big_donor)

    await reseal(server, small, small_other, claim_victim=True)  # one chunk: known before any byte
    status, headers, got, _ = await fetch(server, small)
    assert status == 500 and b"corrupted" in got and small_donor not in got, (status, got[:200])
    await reseal(server, small, small_other, claim_victim=False)  # an honest manifest, misplaced
    status, headers, got, _ = await fetch(server, small)
    assert status == 500 and b"names another document" in got, got[:300]
    status, _, got, cut = await fetch(server, small_other)  # the donor itself is untouched
    assert (status, got, cut) == (200, small_donor, None)


async def test_the_sdk_refuses_other_bytes_sent_whole() -> None:
    """A server (spoofed, or compromised) that sends another document whole with 200."""
    asked, sent = os.urandom(5000), os.urandom(3 << 20)

    async def lying(request: web.Request) -> web.Response:
        return web.Response(body=sent, headers={"X-Notar-Digest": request.match_info["digest"]})

    app = web.Application()
    app.router.add_get("/v1/documents/{digest}", lying)
    async with TestServer(app, host="127.0.0.1") as liar, NotarClient(str(liar.make_url("")), "k") as client:
        pieces: list[bytes] = []
        with pytest.raises(DocumentMismatch, match="not the document"):
            async for piece in client.document(b3(asked)):
                pieces.append(piece)
        assert 0 < len(b"".join(pieces)) < len(sent)
        whole = [p async for p in client.document(b3(sent))]
        assert b"".join(whole) == sent
        by_sha = [p async for p in client.document("sha256:" + hashlib.sha256(sent).hexdigest())]
        assert b"".join(by_sha) == sent

