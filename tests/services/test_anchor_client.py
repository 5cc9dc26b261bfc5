"""How the ingest pods' AnchorClient reads the anchor's 503s: a pushback (or a bare 503, as a
proxy gives with no anchor behind it) is PushbackError, nothing of the request taken; any other
503 problem (a stopped sequencer, a store failure) is a transient StorageError, since the anchor
may have queued the request before it failed (services/ingest/spread.py tells the two apart)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.anchor.sequenced import SequencerSealed
from services.common.problems import to_response
from services.internal.client import AnchorClient
from services.model import Digests
from storage.errors import NotarError, PushbackError, StorageError


@asynccontextmanager
async def anchor_answering(answer: web.Response) -> AsyncIterator[AnchorClient]:
    """An AnchorClient of an anchor whose /internal/v1/entries always gives `answer`."""

    async def entries(_: web.Request) -> web.Response:
        return answer

    app = web.Application()
    app.router.add_post("/internal/v1/entries", entries)
    server = TestServer(app)
    await server.start_server()
    client = AnchorClient(str(server.make_url("/")))
    try:
        yield client
    finally:
        await client.close()
        await server.close()


def one_digest() -> Digests:
    return Digests.parse(["blake3:" + os.urandom(32).hex()])


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (to_response(PushbackError("queue full", retry_after=2)), PushbackError),
        (web.Response(status=503, text="no server is available"), PushbackError),
        (to_response(NotarError("the sequencer stopped: lease lost")), StorageError),
        (to_response(StorageError("bucket unreachable", transient=True)), StorageError),
    ],
)
async def test_only_a_pushback_503_is_a_pushback(answer: web.Response, raised: type[NotarError]) -> None:
    async with anchor_answering(answer) as client:
        with pytest.raises(NotarError) as e:
            await client.submit("acme", one_digest())
    assert type(e.value) is raised
    if raised is StorageError:
        assert isinstance(e.value, StorageError) and e.value.transient
        assert "lease" not in str(e.value) and "bucket" not in str(e.value), "its detail stays inside"
    else:
        assert isinstance(e.value, PushbackError)
        assert e.value.retry_after == float(answer.headers.get("Retry-After", "1"))


async def test_a_sealed_shards_refusal_is_relayed_with_its_detail() -> None:
    """A freezing shard's sequencer refusal (`sealed: true`) is for the client: an ingest pod or a
    worker passes its detail on, as one process answers it."""
    sealed = SequencerSealed("shard 0 (notar.test/log) is freezing: it takes no more entries")
    async with anchor_answering(to_response(sealed)) as client:
        with pytest.raises(StorageError) as e:
            await client.submit("acme", one_digest())
    relayed = to_response(e.value)
    assert relayed.status == 503 and e.value.transient
    assert relayed.body == to_response(sealed).body, "the same problem as one process answers"
