"""The async client SDK against a running app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from merkle.receipt import verify_receipt
from services.sdk import ApiError, NotarClient
from tests.services.conftest import Notar


async def test_sdk_round_trip(notar: Notar) -> None:
    url = str(notar.client.make_url("")).rstrip("/")
    key = notar.acme["Authorization"].split()[1]
    async with NotarClient(url, key) as c:
        digests = [f"sha256:{i:064x}" for i in range(10_005)]  # two requests under the hood
        receipts = await c.notarize(digests)
        assert [r["digest"] for r in receipts] == digests
        keys = await c.keys()
        assert verify_receipt(receipts[-1], keys=[keys["log"], keys["clock"]], digest=digests[-1]).valid
        data = os.urandom(300_000)

        async def body() -> AsyncIterator[bytes]:
            yield data[:100_000]
            yield data[100_000:]

        up = await c.upload(body())
        got = b"".join([chunk async for chunk in c.document(up["document"]["digest"])])
        assert got == data
        again = await c.receipt(digests[3])
        assert again["log"]["index"] == receipts[3]["log"]["index"]
        assert len(await c.receipts(digests[3])) == 1
        size = again["log"]["tree_size"]
        assert len(await c.inclusion_proof(3, size)) > 0
        assert (await c.verify(again, digests[3]))["valid"] is True
        with pytest.raises(ApiError) as e:
            await c.notarize(["blake3:nope"])
        assert e.value.status == 400 and e.value.kind == "invalid-digest"
    async with NotarClient(url, "notar_wrong") as bad:
        with pytest.raises(ApiError) as e:
            await bad.notarize(digests[:1])
        assert e.value.status == 401
