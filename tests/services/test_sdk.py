"""The async client SDK against a running app: receipts come back typed (merkle.Receipt), the keys
as the SPEC §6 document."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from merkle import Receipt, verify_receipt
from services.sdk import ApiError, NotarClient, trusted_keys
from tests.services.conftest import Notar


async def test_sdk_round_trip(notar: Notar) -> None:
    url = str(notar.client.make_url("")).rstrip("/")
    key = notar.acme["Authorization"].split()[1]
    async with NotarClient(url, key) as c:
        digests = [f"sha256:{i:064x}" for i in range(10_005)]  # two requests under the hood
        receipts = await c.notarize(digests)
        assert len(receipts) == 10_005 and isinstance(receipts[-1], Receipt)
        assert [str(r.digest) for r in [*receipts[:3], receipts[-1]]] == [*digests[:3], digests[-1]]
        keys = trusted_keys(await c.keys())
        assert keys == notar.keys
        assert verify_receipt(receipts[-1], keys=keys, digest=digests[-1]).valid
        assert receipts[-1].subject == "acme" and receipts[2:4] == [receipts[2], receipts[3]]
        data = os.urandom(300_000)

        async def body() -> AsyncIterator[bytes]:
            yield data[:100_000]
            yield data[100_000:]

        up = await c.upload(body())
        assert verify_receipt(up.receipt, keys=keys, document=data).valid
        got = b"".join([chunk async for chunk in c.document(up.document["digest"])])
        assert got == data
        again = await c.receipt(digests[3])
        first = receipts[3]
        assert (again.index, again.salt, again.entry) == (first.index, first.salt, first.entry)
        assert await c.receipts(digests[3]) == [again]
        assert len(await c.inclusion_proof(3, again.tree_size)) > 0
        assert (await c.verify(again, digests[3]))["valid"] is True
        assert (await c.verify(again, digests[4]))["valid"] is False
        with pytest.raises(ApiError) as e:
            await c.notarize(["blake3:nope"])
        assert e.value.status == 400 and e.value.kind == "invalid-digest"
    async with NotarClient(url, "notar_wrong") as bad:
        with pytest.raises(ApiError) as e:
            await bad.notarize(digests[:1])
        assert e.value.status == 401


def test_trusted_keys_refuses_what_is_not_a_keys_document() -> None:
    doc = {"logs": [{"origin": "o", "log": "o+1+A", "clock": "o/clock+2+B"}], "witnesses": ["w+3+C"]}
    assert trusted_keys(doc) == ["o+1+A", "o/clock+2+B", "w+3+C"]
    bad: object
    for bad in ({"log": "o+1+A", "clock": "o/clock+2+B"}, {"logs": []}, {"logs": [{"log": 1}]}, [], None):
        with pytest.raises(ValueError):
            trusted_keys(bad)
