"""`notar shard list|freeze I` on a real `notar` process over the directory store: freeze sets the
shard `freezing` in the table; a freeze that would leave no active shard, of a frozen or unknown
shard, is refused with one line and exit status 2, the table unchanged."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from services.published.shards import SHARD_TABLE, Shard, format_table, load_table
from storage.fs import FsStore
from tests.services.cli.test_backup_restore import Serve, call, notarize, published_size, until
from tests.services.cli.test_cli import run
from tests.serving import free_port

BASE = "shards.notar.test/log"


def table(data: Path) -> list[tuple[int, str]]:
    async def read() -> list[tuple[int, str]]:
        return [(s.id, s.state) for s in await load_table(FsStore(data / "store"))]

    return asyncio.run(read())


def test_freeze_sets_freezing_and_refuses_what_would_stop_notarization(tmp_path: Path) -> None:
    env = {**os.environ, "NOTAR_DATA_DIR": str(tmp_path), "NOTAR_ORIGIN": BASE}
    listed = run("shard", "list", env=env, check=True)
    assert "no shard table yet" in listed.stdout
    (tmp_path / "store" / "private").mkdir(parents=True)
    shards = [
        Shard(0, BASE, "frozen", None),
        Shard(1, BASE + "/1", "active", 0),
        Shard(2, BASE + "/2", "active", 1),
    ]
    (tmp_path / "store" / SHARD_TABLE).write_bytes(format_table(shards))

    frozen = run("shard", "freeze", "1", env=env, check=True)
    assert "shard 1 (shards.notar.test/log/1) is freezing" in frozen.stdout
    assert table(tmp_path) == [(0, "frozen"), (1, "freezing"), (2, "active")]
    assert "1  freezing  shards.notar.test/log/1  anchor ordinal 0" in run("shard", "list", env=env).stdout

    for shard, why in (("2", "only active shard"), ("0", "frozen already"), ("7", "no shard 7")):
        r = run("shard", "freeze", shard, env=env)
        assert r.returncode == 2 and r.stdout == "", r
        assert r.stderr.startswith("notar: ") and why in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert table(tmp_path) == [(0, "frozen"), (1, "freezing"), (2, "active")]
    r = run("shard", "freeze", "one", env=env)
    assert r.returncode == 2 and "invalid int value" in r.stderr


def test_a_running_anchor_freezes_its_shard(tmp_path: Path) -> None:
    """`notar shard freeze 0` against a running `notar serve` (shard 0 of a table whose shard 1 takes
    the writes): the anchor stops taking entries, its final checkpoint is anchored, its tenant index
    is in the store, the table says frozen; it stays ready and alive for look-ups."""
    port = free_port()
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NOTAR_", "AWS_", "OTEL_"))},
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_ORIGIN": BASE,
        "NOTAR_BATCH_MS": "10",
        "NOTAR_ANCHOR_INTERVAL_S": "1",
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_URL": f"http://127.0.0.1:{port}",
    }
    (data / "store" / "private").mkdir(parents=True)
    # shard 1 owned by no anchor ordinal: one with ordinal 1 would need SHARDS=2 here (the anchor
    # refuses to start with fewer SHARDS than the ordinals owning unfrozen shards)
    shards = [Shard(0, BASE, "active", 0), Shard(1, BASE + "/1", "active", None)]
    (data / "store" / SHARD_TABLE).write_bytes(format_table(shards))
    server = Serve(env, tmp_path / "serve.log")
    try:
        key = run("tenant", "add", "acme", env=env, check=True).stdout.strip().splitlines()[-1]
        receipts = notarize(server.url, key, 30)
        run("shard", "freeze", "0", env=env, check=True)
        until("shard 0 frozen", lambda: table(data) == [(0, "frozen"), (1, "active")])
        status, body = call(f"{server.url}/v1/digests", "POST", {"digests": ["sha256:" + "ab" * 32]}, key)
        assert status == 503 and b"freezing" in body, body
        assert call(f"{server.url}/readyz")[0] == 200 and call(f"{server.url}/healthz")[0] == 200
        manifest = json.loads((data / "store" / "private/log/frozen/manifest.json").read_bytes())
        assert manifest["size"] == published_size(server.url) == 30 and manifest["generation"] == 0
        assert sum(f["rows"] for f in manifest["files"]) == 30
        files = b"".join(p.read_bytes() for p in (data / "store" / "private/log/frozen/files").iterdir())
        assert len(files) == 30 * 40 + 16  # the rows are there (and a fence), but nothing in clear:
        for digest, receipt in receipts.items():
            raw, salt = bytes.fromhex(digest.split(":")[1]), bytes.fromhex(receipt["salt"])
            assert raw not in files and salt not in files and digest.split(":")[1].encode() not in files
        assert (data / "store" / "private/log/anchors/record/00000000000000000030/local.json").exists()
        digest = next(iter(receipts))
        status, body = call(f"{server.url}/v1/receipts/{digest}", key=key)
        assert status == 200 and json.loads(body)["log"]["index"] == receipts[digest]["log"]["index"]
    finally:
        server.stop()
