"""`notar keys rotate`: new log and clock keys for the log, from the size the stopped log stands at.

The old log key signs the rotation statement (merkle.keyhistory), stored beside the log
(services.published.history); the new keys replace the key files (DATA_DIR/keys/, or LOG_KEY_FILE
and CLOCK_KEY_FILE), the old ones kept beside them as `*.retired-<key id>`. The anchor must be
stopped (services.anchor.rotation says why); it picks the rotation up when it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from services.anchor import rotation
from services.anchor.app import keys_from
from services.anchor.keys import LogKeys, key_paths
from services.cli.commands import config_from
from services.common.components import NotarConfig
from services.common.stores import open_store


def rotate(ns: argparse.Namespace) -> int:
    config = config_from(ns, dict(os.environ))
    keys = keys_from(config.keys)  # ConfigError (exit 2) when they are missing or misnamed
    paths = key_paths(config.keys.data_dir, config.keys.log_key_file, config.keys.clock_key_file)
    index = config.store.data_dir / "index"  # the anchor's RocksDB, when this is its DATA_DIR
    done = asyncio.run(_rotate(config, keys, paths, index if index.is_dir() else None))
    print(done.statement, end="")
    print(
        f"stored as rotation statement {done.seq} of {config.keys.origin}, from tree size {done.size}; "
        f"the old key files are kept as {done.retired[0]} and {done.retired[1]}: archive or destroy them"
    )
    print("start the anchor with the new keys: it signs the tree head again with them before anything else")
    print(f"log   {done.keys.verifier_keys['log']}")
    print(f"clock {done.keys.verifier_keys['clock']}")
    return 0


async def _rotate(
    config: NotarConfig, keys: LogKeys, paths: tuple[Path, Path], index: Path | None
) -> rotation.Rotated:
    store = await open_store(config.store, dict(os.environ))
    try:
        size = await rotation.handover_size(store, index)
        return await rotation.rotate(store, keys, paths, origin=config.keys.origin, size=size)
    finally:
        await store.close()
