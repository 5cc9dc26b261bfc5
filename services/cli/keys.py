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
from services.cli.commands import settings_from
from services.common.config import Settings
from services.common.stores import data_dir, open_store


def rotate(ns: argparse.Namespace) -> int:
    settings = settings_from(ns, dict(os.environ))
    keys = keys_from(settings)  # ConfigError (exit 2) when they are missing or misnamed
    files = [settings.get("LOG_KEY_FILE"), settings.get("CLOCK_KEY_FILE")]
    log_file, clock_file = (None if f is None else Path(f) for f in files)
    paths = key_paths(data_dir(settings), log_file, clock_file)
    index = data_dir(settings) / "index"  # the anchor's RocksDB, when this is its DATA_DIR
    done = asyncio.run(_rotate(settings, keys, paths, index if index.is_dir() else None))
    print(done.statement, end="")
    print(
        f"stored as rotation statement {done.seq} of {settings.get('ORIGIN')}, from tree size {done.size}; "
        f"the old key files are kept as {done.retired[0]} and {done.retired[1]}: archive or destroy them"
    )
    print("start the anchor with the new keys: it signs the tree head again with them before anything else")
    print(f"log   {done.keys.verifier_keys['log']}")
    print(f"clock {done.keys.verifier_keys['clock']}")
    return 0


async def _rotate(
    settings: Settings, keys: LogKeys, paths: tuple[Path, Path], index: Path | None
) -> rotation.Rotated:
    store = await open_store(settings, dict(os.environ))
    try:
        size = await rotation.handover_size(store, index)
        return await rotation.rotate(store, keys, paths, origin=settings.get("ORIGIN"), size=size)
    finally:
        await store.close()
