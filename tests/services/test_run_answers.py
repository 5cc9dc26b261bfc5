"""The internal `RUN` answer (services.internal.wire): the anchor sends a default answer's
material, and the ingest side writes the receipts with the anchor's own writer. They are the
bytes the anchor would have written, whether the run carries each proof (`RUN`) or the nodes of
the compact part (`RUN_NODES`); a malformed run is refused, and so is a node that does not give
the checkpoint's root; an anchor that answers JSON (one from before RUN) is passed through, an
anchor from before RUN_NODES answers RUN, and a client from before it is sent RUN."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from aiohttp import ClientSession, web
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.receipt import Receipt
from merkle.verdict import verify_receipt
from services.internal.client import ACCEPT_RUN, AnchorClient
from services.internal.wire import RUN, RUN_NODES, accepts_run, decode_run, encode_answer, encode_run
from services.model import Digests, SequencedGroup
from storage.errors import StorageError
from tests.services.test_anchor_client import anchor_answering
from tests.services.test_compact_answers import _batch, anchor_serving

ORIGIN = "compact.test/log"


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3000), st.integers(1, 1500), st.booleans(), st.data())
def test_receipts_written_from_a_run_are_the_anchors_bytes(
    before: int, batch: int, nodes: bool, data: st.DataObject
) -> None:
    mine = data.draw(st.integers(1, batch))
    digests, results = _batch(before, batch, mine, data.draw(st.integers(0, 2**32)))
    anchors = encode_answer(origin=ORIGIN, tenant="acme", digests=digests.digests(), results=results)
    origin, run = decode_run(encode_run(origin=ORIGIN, results=results, nodes=nodes))
    assert run.has_proofs is not nodes  # RUN_NODES: the proofs are hashed out of the nodes here
    assert origin == ORIGIN
    assert (run.indices, run.entries, run.salts, run.tree_size, run.checkpoint) == (
        results.indices, results.entries, results.salts, results.tree_size, results.checkpoint
    )
    # what AnchorClient writes: the request's digest texts, not Digest objects
    assert encode_answer(origin=origin, tenant="acme", digests=digests.texts, results=run) == anchors


def _run() -> tuple[Digests, bytes]:
    digests, results = _batch(100, 40, 5, seed=7)
    return digests, encode_run(origin=ORIGIN, results=results)


def _head(run: bytes) -> dict[str, object]:
    head: dict[str, object] = orjson.loads(run.partition(b"\n")[0])
    return head


def _with_head(run: bytes, **changes: object) -> bytes:
    return orjson.dumps({**_head(run), **changes}) + b"\n" + run.partition(b"\n")[2]


def test_what_a_request_asks_for() -> None:
    assert accepts_run(ACCEPT_RUN) == RUN_NODES  # what AnchorClient asks for
    assert RUN in ACCEPT_RUN  # how an anchor from before RUN_NODES saw a request for RUN
    assert accepts_run("application/vnd.notar.run, application/json;q=0.5") == RUN  # an older ingest
    assert accepts_run("application/json") is None and accepts_run(None) is None


def _nodes_run() -> tuple[Digests, SequencedGroup, bytes]:
    digests, results = _batch(100, 40, 5, seed=7)
    return digests, results, encode_run(origin=ORIGIN, results=results, nodes=True)


def test_a_malformed_nodes_run_is_refused() -> None:
    digests, results, run = _nodes_run()
    head = _head(run)
    count = head["nodes"]
    assert isinstance(count, int) and count > 0 and "lengths" not in head
    bad = {
        "a node missing": _with_head(run, nodes=count - 1)[:-32],
        "a node too many": _with_head(run, nodes=count + 1) + bytes(32),
        "nodes and lengths": _with_head(run, lengths=[20] * 5),
        "a negative count": _with_head(run, nodes=-1),
        "a count that is not a number": _with_head(run, nodes="3"),
        "truncated": run[:-1],
    }
    for answer in bad.values():
        with pytest.raises(ValueError, match=r"run answer|nodes|root"):
            _, group = decode_run(answer)
            encode_answer(origin=ORIGIN, tenant="acme", digests=digests.texts, results=group)
    # a node changed: the sizes fit, the proofs hashed out of it do not give the checkpoint's root
    changed = run[:-1] + bytes([run[-1] ^ 1])
    _, group = decode_run(changed)
    with pytest.raises(ValueError):
        encode_answer(origin=ORIGIN, tenant="acme", digests=digests.texts, results=group)
    _, group = decode_run(run)
    assert encode_answer(origin=ORIGIN, tenant="acme", digests=digests.texts, results=group) == encode_answer(
        origin=ORIGIN, tenant="acme", digests=digests.digests(), results=results
    )


async def test_a_changed_node_is_a_storage_error_and_an_older_anchors_run_is_written() -> None:
    digests, results, run = _nodes_run()
    changed = run[:-1] + bytes([run[-1] ^ 1])
    async with anchor_answering(web.Response(body=changed, content_type=RUN_NODES)) as client:
        with pytest.raises(StorageError, match="malformed answer"):
            await client.submit("acme", digests)
    older = encode_run(origin=ORIGIN, results=results)  # an anchor from before RUN_NODES: RUN
    expected = encode_answer(origin=ORIGIN, tenant="acme", digests=digests.texts, results=results)
    for body, kind in ((older, RUN), (run, RUN_NODES)):
        async with anchor_answering(web.Response(body=body, content_type=kind)) as client:
            assert await client.submit("acme", digests) == expected


def test_a_malformed_run_is_refused() -> None:
    _, run = _run()
    head = _head(run)
    indices, lengths = head["indices"], head["lengths"]
    assert isinstance(indices, list) and isinstance(lengths, list)
    bad = {
        "truncated": run[:-1],
        "a byte too many": run + b"\x00",
        "no header line": run.partition(b"\n")[2],
        "not JSON": b"{receipts\n" + run.partition(b"\n")[2],
        "an index past the tree": _with_head(run, indices=[head["tree_size"], *indices[1:]]),
        "a negative index": _with_head(run, indices=[-1, *indices[1:]]),
        "a proof too long": _with_head(run, lengths=[65, *lengths[1:]]),
        "a length missing": _with_head(run, lengths=lengths[1:]),
        "no checkpoint": _with_head(run, checkpoint=None),
    }
    for answer in bad.values():
        with pytest.raises(ValueError, match="run answer"):
            decode_run(answer)


async def test_an_anchor_sends_runs_to_whom_asks_and_ingest_writes_valid_receipts(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with anchor_serving(tmp_path, request) as (server, trusted):
        texts = ["blake3:" + os.urandom(32).hex() for _ in range(20)]
        body = orjson.dumps({"tenant": "acme", "digests": texts})
        async with ClientSession() as http:
            url = str(server.make_url("/internal/v1/entries"))
            async with http.post(url, data=body, headers={"Accept": RUN}) as r:  # an older ingest
                assert (r.status, r.content_type) == (200, RUN)
                origin, run = decode_run(await r.read())
                assert run.has_proofs
            again = orjson.dumps({"tenant": "acme", "digests": texts[:3]})
            async with http.post(url, data=again, headers={"Accept": f"{RUN_NODES}, {RUN};q=0.9"}) as r:
                assert (r.status, r.content_type) == (200, RUN_NODES)
                _, nodes = decode_run(await r.read())
                assert not nodes.has_proofs and len(nodes.proofs()) == 3
            async with http.post(url, data=body) as r:  # a client that does not ask: receipts
                assert (r.status, r.content_type) == (200, "application/json")
        assert isinstance(run, SequencedGroup) and len(run) == 20
        assert origin == run.checkpoint.partition("\n")[0]  # the log's: its checkpoint's first line
        client = AnchorClient(str(server.make_url("/")))
        try:
            answer = await client.submit("acme", Digests.parse(texts))
        finally:
            await client.close()
        receipts = [Receipt.from_json(orjson.dumps(r)) for r in orjson.loads(answer)["receipts"]]
        assert [str(r.digest) for r in receipts] == texts and {r.subject for r in receipts} == {"acme"}
        assert all(verify_receipt(r, keys=trusted).valid for r in receipts)


async def test_an_anchor_that_answers_json_is_passed_through() -> None:
    receipts = b'{"receipts":[{"format":"notar.receipt.v2"}]}'
    async with anchor_answering(web.Response(body=receipts, content_type="application/json")) as client:
        assert await client.submit("acme", Digests.parse(["blake3:" + "ab" * 32])) == receipts


async def test_a_malformed_run_from_the_anchor_is_a_storage_error() -> None:
    digests, run = _run()
    async with anchor_answering(web.Response(body=run[:-5], content_type=RUN)) as client:
        with pytest.raises(StorageError, match="malformed answer"):
            await client.submit("acme", digests)
