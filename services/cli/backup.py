"""`notar backup list|restore`: the backups of the anchor's index in the object store
(docs/backups.md). A restore writes DATA_DIR/index, so it runs where the anchor runs, while the
anchor is stopped; it never overwrites an index."""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from services.anchor.backup import Manifest, list_backups, restore
from services.cli.commands import config_from
from services.common.stores import open_store, private_dir
from storage.rocks import RocksIndex


def _line(m: Manifest) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(m.created))
    return f"{m.id}  taken {when}  {m.entries} entries  {m.size} bytes  {len(m.files)} files"


async def _list(ns: argparse.Namespace) -> list[str]:
    env = dict(os.environ)
    store = await open_store(config_from(ns, env).store, env)
    try:
        complete, incomplete = await list_backups(store)
    finally:
        await store.close()
    lines = [_line(m) for m in complete] or ["no complete backup"]
    return lines + [f"{b}  incomplete (deleted by the next backup's pruning)" for b in sorted(incomplete)]


def list_command(ns: argparse.Namespace) -> int:
    for line in asyncio.run(_list(ns)):
        print(line)
    return 0


async def _restore(ns: argparse.Namespace) -> list[str]:
    env = dict(os.environ)
    config = config_from(ns, env).store
    target = private_dir(config.data_dir) / "index"
    store = await open_store(config, env)
    try:
        manifest = await restore(store, target, open_index=RocksIndex.open, backup=ns.backup)
    finally:
        await store.close()
    return [
        f"restored backup {_line(manifest)} into {target}",
        f"start the anchor: it takes the published log as it is; the salts of the entries from "
        f"{manifest.entries} on (notarized after this backup) are lost: their receipts cannot be "
        "issued again, those the clients kept still verify (docs/backups.md)",
    ]


def restore_command(ns: argparse.Namespace) -> int:
    for line in asyncio.run(_restore(ns)):
        print(line)
    return 0
