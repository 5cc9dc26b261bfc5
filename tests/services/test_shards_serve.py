"""SPEC §10 end to end through `notar serve --shards 3` (one process, three sequencers): each
shard's origin, prefix and keys; a request spread over the shards with its receipts in request
order; /v1/keys listing every shard; look-ups, `?all=true` and erasure across shards; the
`/log/<i>/` routes and `?origin=` on proofs and anchors."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from merkle import leaf_hash, verify_consistency, verify_inclusion, verify_receipt
from merkle.checkpoint import parse_checkpoint
from merkle.introduction import open_introduction
from merkle.note import Verifier, parse_note
from merkle.tiles import tile_path
from services.published.shards import load_table
from storage.fs import FsStore
from tests.serving import NotarProcess, free_port, notar_cli, notar_serve

ORIGIN = "shards.test/log"
ORIGINS = [ORIGIN, f"{ORIGIN}/1", f"{ORIGIN}/2"]
SPREAD = 1200  # digests a request needs to be cut over 3 shards (the spreader's parts: 256 or more)


def call(
    notar: NotarProcess, path: str, *, body: Any = None, method: str | None = None, auth: bool = True
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Bearer " + notar.env["NOTAR_API_KEY"]
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(notar.url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ok(notar: NotarProcess, path: str, **kw: Any) -> Any:
    status, body = call(notar, path, **kw)
    assert status == 200, body
    return json.loads(body)


def notarize(notar: NotarProcess, digests: list[str]) -> list[dict[str, Any]]:
    receipts: list[dict[str, Any]] = ok(notar, "/v1/digests", body={"digests": digests})["receipts"]
    return receipts


def digest(n: int, tag: str = "") -> str:
    return "sha256:" + f"{tag}{n:x}".encode().hex().ljust(64, "0")[:64]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotarProcess]:
    with notar_serve(tmp_path_factory.mktemp("shards"), ORIGIN, SHARDS="3") as notar:
        yield notar


def test_each_shard_has_its_origin_prefix_keys_and_table_row(sharded: NotarProcess) -> None:
    keys = ok(sharded, "/v1/keys", auth=False)
    assert [log["origin"] for log in keys["logs"]] == ORIGINS
    assert len({log["log"] for log in keys["logs"]}) == 3  # a key pair per shard, named after it
    for log in keys["logs"]:
        assert log["log"].startswith(log["origin"] + "+") and log["clock"].startswith(
            log["origin"] + "/clock+"
        )
    for origin in ORIGINS:
        assert f"log {next(k['log'] for k in keys['logs'] if k['origin'] == origin)}" in keys["policy"]
    # shard 0's log key introduces every later shard's first keys
    first = Verifier.from_key(keys["logs"][0]["log"])
    introduced = [open_introduction(note, first) for note in keys["introductions"]]
    assert [(i.shard, i.log.to_key(), i.clock.to_key()) for i in introduced] == [
        (log["origin"], log["log"], log["clock"]) for log in keys["logs"][1:]
    ]
    store = FsStore(sharded.data / "store")
    table = asyncio.run(load_table(store))
    assert [(s.id, s.origin, s.state, s.ordinal) for s in table] == [
        (i, o, "active", i) for i, o in enumerate(ORIGINS)
    ]
    for i in (1, 2):  # shard i > 0 keeps its keys and RocksDB under DATA_DIR/shards/<i>/
        assert (sharded.data / "shards" / str(i) / "keys" / "log.key").exists()
        assert (sharded.data / "shards" / str(i) / "index").is_dir()


def test_a_request_spreads_over_the_shards_and_keeps_its_order(sharded: NotarProcess) -> None:
    digests = [digest(n, "spread") for n in range(SPREAD)]
    receipts = notarize(sharded, digests)
    assert [r["digest"] for r in receipts] == digests
    assert {r["log"]["origin"] for r in receipts} == set(ORIGINS)
    for r in receipts[::7]:
        result = verify_receipt(r, keys=sharded.keys, digest=r["digest"])
        assert result.valid, result.failed
        assert parse_checkpoint(parse_note(r["checkpoint"]).text).origin == r["log"]["origin"]
    # the server's own verifier takes receipts of every shard
    for origin in ORIGINS:
        r = next(r for r in receipts if r["log"]["origin"] == origin)
        assert ok(sharded, "/v1/verify", body={"receipt": r, "digest": r["digest"]}, auth=False)["valid"]


def test_log_routes_and_proofs_per_shard(sharded: NotarProcess) -> None:
    receipts = notarize(sharded, [digest(n, "routes") for n in range(SPREAD)])
    for i, origin in enumerate(ORIGINS):
        base = "/log/" if i == 0 else f"/log/{i}/"
        r = next(r for r in receipts if r["log"]["origin"] == origin)
        index, old = r["log"]["index"], r["log"]["tree_size"]
        old_root = parse_checkpoint(parse_note(r["checkpoint"]).text).root
        deadline = time.monotonic() + 10
        while True:  # a receipt comes a moment before its checkpoint is published
            status, note = call(sharded, base + "checkpoint", auth=False)
            assert status == 200
            cp = parse_checkpoint(parse_note(note.decode()).text)
            if cp.size >= old or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert cp.origin == origin and cp.size >= old
        q = f"index={index}&size={old}&origin={quote(origin)}"
        proof = [bytes.fromhex(h) for h in ok(sharded, f"/v1/proofs/inclusion?{q}", auth=False)["proof"]]
        assert verify_inclusion(leaf_hash(bytes.fromhex(r["entry"])), index, old, proof, old_root)
        # the entry bundle of that shard holds the entry, under its own prefix
        n = index // 256
        bundle_path = base + tile_path("entries", n, min(cp.size - 256 * n, 256))
        status, bundle = call(sharded, bundle_path, auth=False)
        assert status == 200 and bytes.fromhex(r["entry"]) in bundle
        q = f"from={old}&to={cp.size}&origin={quote(origin)}"
        proof = [bytes.fromhex(h) for h in ok(sharded, f"/v1/proofs/consistency?{q}", auth=False)["proof"]]
        assert verify_consistency(old, cp.size, proof, old_root, cp.root)
    status, _ = call(sharded, "/v1/proofs/inclusion?index=0&size=1&origin=shards.test/log/9", auth=False)
    assert status == 404
    status, _ = call(sharded, "/log/7/checkpoint", auth=False)
    assert status == 404


def test_lookups_find_the_earliest_notarization_across_shards(sharded: NotarProcess) -> None:
    # a digest first notarized in a shard > 0 ...
    for attempt in range(6):
        late = digest(attempt, "early")
        first = notarize(sharded, [late])[0]
        if first["log"]["origin"] != ORIGINS[0]:
            break
    assert first["log"]["origin"] != ORIGINS[0]
    made = [first]
    time.sleep(1.2)  # the clock signs whole seconds
    # ... and again, later, until shard 0 takes it: the earliest is not the lowest shard's
    for _ in range(6):
        made.append(notarize(sharded, [late])[0])
        if made[-1]["log"]["origin"] == ORIGINS[0]:
            break
    assert made[-1]["log"]["origin"] == ORIGINS[0]
    found = ok(sharded, f"/v1/receipts/{late}")
    assert (found["log"]["origin"], found["log"]["index"]) == (first["log"]["origin"], first["log"]["index"])
    assert verify_receipt(found, keys=sharded.keys, digest=late).valid

    # every notarization, a page at a time, across the shards
    seen, cursor, pages = [], None, 0
    while pages < 10:
        page = ok(sharded, f"/v1/receipts/{late}?all=true&limit=1" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["receipts"]) == 1
        seen += [(r["log"]["origin"], r["log"]["index"]) for r in page["receipts"]]
        cursor, pages = page["next"], pages + 1
        if cursor is None:
            break
    assert sorted(seen) == sorted((r["log"]["origin"], r["log"]["index"]) for r in made)
    every = ok(sharded, f"/v1/receipts/{late}?all=true")
    assert len(every["receipts"]) == len(made) and every["next"] is None
    status, _ = call(sharded, f"/v1/receipts/{late}?all=true&cursor=x:1")
    assert status == 400

    # erasure forgets it in every shard
    status, _ = call(sharded, f"/v1/receipts/{late}", method="DELETE")
    assert status == 204
    assert call(sharded, f"/v1/receipts/{late}")[0] == 404
    assert call(sharded, f"/v1/receipts/{late}", method="DELETE")[0] == 404


def test_anchors_take_the_origin(sharded: NotarProcess) -> None:
    # shard 0's anchor commits (aggregated anchoring of the other shards is issue 17 item 4)
    r = next(
        r
        for r in notarize(sharded, [digest(n, "anchored") for n in range(SPREAD)])
        if r["log"]["origin"] == ORIGIN
    )
    origin = quote(r["log"]["origin"])
    size = r["log"]["tree_size"]
    deadline = time.monotonic() + 20
    while True:
        status, body = call(sharded, f"/v1/anchors?origin={origin}&size={size}", auth=False)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, body
    found = json.loads(body)
    assert found["origin"] == r["log"]["origin"] and found["size"] >= size and found["anchors"]
    status, _ = call(sharded, "/v1/anchors?origin=shards.test/log/9&size=1", auth=False)
    assert status == 404


def test_one_shard_writes_no_table(tmp_path: Path) -> None:
    with notar_serve(tmp_path, ORIGIN) as notar:
        receipts = notarize(notar, [digest(n, "one") for n in range(4)])
        assert {r["log"]["origin"] for r in receipts} == {ORIGIN}
        assert [log["origin"] for log in ok(notar, "/v1/keys", auth=False)["logs"]] == [ORIGIN]
    assert not (tmp_path / "store" / "private" / "shards.json").exists()
    assert not (tmp_path / "shards").exists()


def test_metrics_name_each_shard(sharded: NotarProcess) -> None:
    notarize(sharded, [digest(n, "metrics") for n in range(3)])
    status, body = call(sharded, "/metrics", auth=False)
    assert status == 200
    text = body.decode()
    for origin in ORIGINS:
        assert f'notar_tree_size{{origin="{origin}"}}' in text


def test_a_restart_keeps_every_shard_and_fewer_shards_are_refused(tmp_path: Path) -> None:
    with notar_serve(tmp_path, ORIGIN, SHARDS="2") as notar:
        receipts = notarize(notar, [digest(n, "restart") for n in range(SPREAD)])
        keys = ok(notar, "/v1/keys", auth=False)
        api_key = notar.env["NOTAR_API_KEY"]
    assert {r["log"]["origin"] for r in receipts} == set(ORIGINS[:2])
    with notar_serve(tmp_path, ORIGIN, SHARDS="2", tenant=None) as notar:
        assert ok(notar, "/v1/keys", auth=False)["logs"] == keys["logs"]  # the same keys, per shard
        notar.env["NOTAR_API_KEY"] = api_key
        for r in receipts[:: SPREAD // 8]:
            found = ok(notar, f"/v1/receipts/{r['digest']}")
            assert (found["log"]["origin"], found["log"]["index"]) == (r["log"]["origin"], r["log"]["index"])
    env = {
        **os.environ,
        "NOTAR_DATA_DIR": str(tmp_path),
        "NOTAR_ORIGIN": ORIGIN,
        "NOTAR_SHARDS": "1",
        "NOTAR_LISTEN": f"127.0.0.1:{free_port()}",
    }
    refused = notar_cli("serve", env=env)
    assert refused.returncode == 2 and "SHARDS" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
