"""SPEC §10, issue 17 item 5 through `notar serve --shards 2`: once `notar shard freeze 1` is done,
look-ups (`GET /v1/receipts/{digest}`, `?all=true`) and erasures of shard 1 are answered from its
frozen index in the object store, and shard 1's RocksDB directory is gone from the anchor's disk;
after a restart too, when shard 1 runs nowhere."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from merkle import verify_receipt
from services.published.shards import load_table
from storage.fs import FsStore
from tests.services.test_shards_serve import call, digest, notarize, ok
from tests.serving import NotarProcess, notar_cli, notar_serve

ORIGIN = "frozen.test/log"
SPREAD = 1200  # digests a request needs to be cut over the 2 shards
EVERY = 25  # one digest of the request in every EVERY is the same: it lands in both shards
FREEZE_S = 90  # the freezer polls every 5 s, then waits for the anchor of the final checkpoint


def states(data: Path) -> list[tuple[int, str]]:
    async def read() -> list[tuple[int, str]]:
        return [(s.id, s.state) for s in await load_table(FsStore(data / "store"))]

    return asyncio.run(read())


def freeze_and_wait(notar: NotarProcess, shard: int, index_dir: Path) -> None:
    """`notar shard freeze SHARD`, then wait until the table says frozen and its RocksDB is gone."""
    freeze = notar_cli("shard", "freeze", str(shard), env=notar.env)
    assert freeze.returncode == 0, freeze.stderr
    deadline = time.monotonic() + FREEZE_S
    while dict(states(notar.data)).get(shard) != "frozen" or index_dir.exists():
        assert time.monotonic() < deadline, f"shard {shard} not frozen and dropped: {states(notar.data)}"
        time.sleep(0.2)


def place(receipt: dict[str, Any]) -> tuple[str, int, str]:
    return receipt["log"]["origin"], receipt["log"]["index"], receipt["salt"]


def test_a_frozen_shard_answers_lookups_and_erasures_from_the_store(tmp_path: Path) -> None:
    shard_one = f"{ORIGIN}/1"
    with notar_serve(tmp_path, ORIGIN, SHARDS="2") as notar:
        twice = digest(0, "twice")
        digests = [twice if n % EVERY == 0 else digest(n, "frozen") for n in range(SPREAD)]
        receipts = notarize(notar, digests)
        assert {r["log"]["origin"] for r in receipts} == {ORIGIN, shard_one}
        ones = [r for r in receipts if r["log"]["origin"] == shard_one and r["digest"] != twice]
        zeros = [r for r in receipts if r["log"]["origin"] == ORIGIN and r["digest"] != twice]
        repeated = sorted(place(r) for r in receipts if r["digest"] == twice)
        assert {o for o, _, _ in repeated} == {ORIGIN, shard_one}  # the digest is in both shards
        index_dir = tmp_path / "shards" / "1" / "index"
        assert index_dir.is_dir()

        freeze_and_wait(notar, 1, index_dir)
        assert states(tmp_path) == [(0, "active"), (1, "frozen")]
        assert (tmp_path / "store" / "private/log/1/frozen/manifest.json").exists()
        assert (tmp_path / "shards" / "1" / "keys").is_dir()  # only the index went

        # look-ups of shard 1 read its frozen index: the same receipts (index and salt)
        for r in ones[::40] + zeros[::40]:
            found = ok(notar, f"/v1/receipts/{r['digest']}")
            assert place(found) == place(r)
            assert verify_receipt(found, keys=notar.keys, digest=r["digest"]).valid
        # every notarization, across the active shard's RocksDB and the frozen index
        seen, cursor = [], None
        for _ in range(len(repeated) + 1):
            path = f"/v1/receipts/{twice}?all=true&limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = ok(notar, path)
            seen += [place(r) for r in page["receipts"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert sorted(seen) == repeated

        # erasure: a tombstone in the frozen index, honoured at once; the active shard forgets too
        gone = ones[0]["digest"]
        assert call(notar, f"/v1/receipts/{gone}", method="DELETE")[0] == 204
        assert call(notar, f"/v1/receipts/{gone}")[0] == 404
        assert call(notar, f"/v1/receipts/{gone}", method="DELETE")[0] == 404
        assert list((tmp_path / "store" / "private/log/1/frozen/tombstones").iterdir())
        assert call(notar, f"/v1/receipts/{twice}", method="DELETE")[0] == 204
        assert call(notar, f"/v1/receipts/{twice}?all=true")[0] == 404
        kept = ones[1]
        assert place(ok(notar, f"/v1/receipts/{kept['digest']}")) == place(kept)
        # the active shard still takes every new notarization
        fresh = notarize(notar, [digest(n, "after") for n in range(300)])
        assert {r["log"]["origin"] for r in fresh} == {ORIGIN}
        api_key = notar.env["NOTAR_API_KEY"]

    # restarted, ordinal 1 takes a new shard 2; shard 1 runs nowhere and is still looked up; the
    # RocksDB of a frozen shard a crash left behind (before on_frozen dropped it) is dropped then
    (index_dir / "CURRENT").parent.mkdir(parents=True)
    (index_dir / "CURRENT").write_text("left by a crash\n")
    with notar_serve(tmp_path, ORIGIN, SHARDS="2", tenant=None) as notar:
        notar.env["NOTAR_API_KEY"] = api_key
        assert states(tmp_path) == [(0, "active"), (1, "frozen"), (2, "active")]
        assert place(ok(notar, f"/v1/receipts/{kept['digest']}")) == place(kept)
        assert call(notar, f"/v1/receipts/{gone}")[0] == 404
        assert not index_dir.exists()
