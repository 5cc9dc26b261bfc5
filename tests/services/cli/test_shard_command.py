"""`notar shard list|freeze I` on a real `notar` process over the directory store: freeze sets the
shard `freezing` in the table; a freeze that would leave no active shard, of a frozen or unknown
shard, is refused with one line and exit status 2, the table unchanged."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from services.published.shards import SHARD_TABLE, Shard, format_table, load_table
from storage.fs import FsStore
from tests.services.cli.test_cli import run

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
