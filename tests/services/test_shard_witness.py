"""An anchor pod of split roles serving shard 1 (SHARDS=2, SHARD_ORDINAL=1) submits its own shard's
checkpoints, published under `log/1/`, to its WITNESSES: a real `notar witness serve` that knows
only shard 1's log key cosigns them, and the cosignatures are stored under the shard's private
prefix."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from merkle.note import Verifier
from services.published import layout
from services.published.shards import shard_prefix
from storage.fs import FsStore
from tests.services.witness.harness import WitnessProcess, keygen
from tests.serving import NOTAR, free_port, stop_process, wait_ready

BASE = "shardwitness.notar.test/log"


def test_shard_ones_anchor_gets_its_checkpoints_witnessed(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "anchor-1"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")},
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_ORIGIN": BASE,
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_BATCH_MS": "20",
        "NOTAR_SHARDS": "2",
        "NOTAR_SHARD_ORDINAL": "1",
        "NOTAR_WITNESS_INTERVAL_S": "1",
        "NOTAR_INDEX_KEY_FILE": str(tmp_path / "index.key"),  # as a pod mounts it from a Secret
    }
    # shard 1's keys made beforehand, as an operator does to give its log key to witnesses: an
    # anchor pod keeps shard i > 0 under DATA_DIR/shards/<i>/
    made = subprocess.run(
        [NOTAR, "keygen"],
        env={**env, "NOTAR_ORIGIN": f"{BASE}/1", "NOTAR_DATA_DIR": str(data / "shards" / "1")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    log_key = next(w for w in made.stdout.split() if w.startswith(f"{BASE}/1+"))
    logs_file = tmp_path / "logs.txt"
    logs_file.write_text(log_key + "\n")
    wkey = keygen(tmp_path / "w", "witness.notar.test/w")
    witness = WitnessProcess(tmp_path / "w", logs_file).start()
    env["NOTAR_WITNESSES"] = f"{wkey}@{witness.url}"
    with open(tmp_path / "anchor.log", "wb") as out:
        proc = subprocess.Popen(
            [NOTAR, "serve", "--role", "anchor"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout=60)
        body = json.dumps({"tenant": "acme", "digests": ["sha256:" + "ab" * 32]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/internal/v1/entries",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            receipt = json.loads(r.read())["receipts"][0]
        assert receipt["log"]["origin"] == f"{BASE}/1"
        store = FsStore(data / "store")

        async def witnessed() -> list[str]:
            return [k async for k in store.list(layout.witnessed(shard_prefix(1)))]

        deadline = time.monotonic() + 60
        while not asyncio.run(witnessed()):
            assert time.monotonic() < deadline, (tmp_path / "anchor.log").read_text()[-3000:]
            time.sleep(0.3)
        assert Verifier.from_key(log_key).name == f"{BASE}/1"
    finally:
        stop_process(proc, timeout=60)
        witness.stop()
