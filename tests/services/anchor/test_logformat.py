"""A v1 log cannot become v2: the anchor refuses at start a store or a RocksDB holding v1 entries
(multihash || salt), on an in-memory store and on a real `notar serve` over a directory and over
SeaweedFS; a new log is marked v2 and starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from merkle import BundleBuilder, Checkpoint, Digest, TileBuilder, encode_bundle, sign_checkpoint
from merkle.hashing import leaf_hashes
from services.anchor import state
from services.anchor.keys import LogKeys, generate_keys, load_keys
from services.anchor.logformat import FORMAT
from services.published import layout
from storage.errors import ConfigError
from storage.memory import MemoryIndex, MemoryStore
from storage.s3 import S3Store
from tests.seaweed import S3Target
from tests.services.anchor.conftest import ORIGIN, MakeSequencer
from tests.serving import free_port

NOTAR = str(Path(sys.executable).with_name("notar"))


def v1_entries(n: int) -> list[bytes]:
    """Entries as v1 wrote them: a BLAKE3 multihash, then a 16-byte salt; no type byte."""
    return [Digest("blake3", os.urandom(32)).multihash + os.urandom(16) for _ in range(n)]


def v1_log(keys: LogKeys, n: int, prefix: str = layout.LOG_PREFIX) -> dict[str, bytes]:
    """A v1 log of `n` entries as tlog-tiles objects: tiles, bundles and a signed checkpoint."""
    entries = v1_entries(n)
    tiles, bundles = TileBuilder(), BundleBuilder()
    changed = tiles.append(leaf_hashes(entries)) + bundles.append(entries)
    objects = {layout.tile_key(t.id, prefix): t.data for t in changed}
    note = sign_checkpoint(Checkpoint(ORIGIN, n, tiles.root()), keys.log, keys.clock, int(time.time()))
    objects[layout.checkpoint_key(prefix)] = note.encode()
    return objects


def assert_one_line_new_log(message: str) -> None:
    assert "\n" not in message.strip()
    said = ("v1", "cannot become v2", "new log", "ORIGIN", "S3_PREFIX", "DATA_DIR", "readable for audits")
    assert all(s in message for s in said), message


async def test_a_published_v1_log_is_refused(make_sequencer: MakeSequencer, keys: LogKeys) -> None:
    store = MemoryStore()
    for key, data in v1_log(keys, 300).items():
        await store.put(key, data)
    written = len(store.faults.journal)
    with pytest.raises(ConfigError) as e:
        await make_sequencer(store, MemoryIndex())
    assert_one_line_new_log(str(e.value))
    # nothing in log/: the lease only, taken and given back
    assert [k for _, k in store.faults.journal[written:]] == [layout.lease_key()] * 2


async def test_v1_batches_in_rocksdb_are_refused(make_sequencer: MakeSequencer) -> None:
    index = MemoryIndex()
    await index.write_batch({state.HEAD: state.u64(3), state.batch_key(0): encode_bundle(v1_entries(3))})
    with pytest.raises(ConfigError) as e:
        await make_sequencer(MemoryStore(), index)
    assert "RocksDB" in str(e.value)
    assert_one_line_new_log(str(e.value))


async def test_a_new_log_is_marked_v2_and_a_marked_log_starts(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    seq = await make_sequencer(store, index)
    assert store.objects[layout.format_key()] == FORMAT
    await seq.submit("acme", [Digest("sha256", bytes(32))])
    await seq.close()
    await (await make_sequencer(store, index)).close()  # the marked log starts again
    del store.objects[layout.format_key()]  # a v2 log without its marker: judged by its entries
    await (await make_sequencer(store, index)).close()
    assert store.objects[layout.format_key()] == FORMAT
    store.objects[layout.format_key()] = b"notar.log.v3\n"
    with pytest.raises(ConfigError, match="marked as format"):
        await make_sequencer(store, index)


def _data_dir_with_keys(tmp_path: Path) -> tuple[Path, LogKeys]:
    data = tmp_path / "data"
    generate_keys(data, ORIGIN)
    return data, load_keys(data, ORIGIN)


def _serve(
    data: Path, env: dict[str, str] | None = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **(env or {}),
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_ORIGIN": ORIGIN,
        "NOTAR_LISTEN": f"127.0.0.1:{free_port()}",
        **{f"NOTAR_{k}": v for k, v in settings.items()},
    }
    try:
        return subprocess.run([NOTAR, "serve"], env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"notar serve did not refuse the log: it ran for 60 s ({e.stderr!r})") from e


def _log_files(data: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (data / "store" / "log").rglob("*") if p.is_file()}


def test_notar_serve_refuses_a_data_dir_holding_a_v1_log(tmp_path: Path) -> None:
    data, keys = _data_dir_with_keys(tmp_path)
    for key, blob in v1_log(keys, 300).items():
        path = data / "store" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    before = _log_files(data)
    run = _serve(data)
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("notar: ") and "Traceback" not in run.stderr
    assert_one_line_new_log(last)
    assert _log_files(data) == before  # the old log is left as it was, readable for audits


async def test_notar_serve_refuses_a_bucket_holding_a_v1_log(tmp_path: Path, s3_target: S3Target) -> None:
    data, keys = _data_dir_with_keys(tmp_path)
    prefix = f"v1-{uuid.uuid4().hex[:12]}/"
    store = await S3Store.from_config(s3_target.config(prefix=prefix))
    try:
        for key, blob in v1_log(keys, 70).items():
            await store.put(key, blob)
    finally:
        await store.close()
    run = _serve(
        data,
        {"AWS_ACCESS_KEY_ID": s3_target.access_key, "AWS_SECRET_ACCESS_KEY": s3_target.secret_key},
        STORE="s3",
        S3_ENDPOINT=s3_target.endpoint,
        S3_BUCKET=s3_target.bucket,
        S3_REGION=s3_target.region,
        S3_PREFIX=prefix,
    )
    assert run.returncode == 2, run.stderr
    assert_one_line_new_log(run.stderr.strip().splitlines()[-1])
