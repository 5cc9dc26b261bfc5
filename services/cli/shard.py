"""`notar shard list|freeze I`: the shard table in the object store (docs/shards.md). `freeze` only
sets the shard `freezing`; its anchor takes the steps (services/anchor/freeze.py) and sets it
`frozen` once its final checkpoint is anchored and its tenant index is in the store."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from services.anchor.freeze import request_freeze
from services.cli.commands import config_from
from services.common.stores import open_store
from services.published.shards import Shard, load_table


def _line(s: Shard) -> str:
    owner = "" if s.ordinal is None else f"  anchor ordinal {s.ordinal}"
    return f"{s.id}  {s.state:8}  {s.origin}{owner}{'' if s.url is None else '  ' + s.url}"


async def _list(ns: argparse.Namespace) -> list[str]:
    env = dict(os.environ)
    store = await open_store(config_from(ns, env).store, env)
    try:
        shards = await load_table(store)
    finally:
        await store.close()
    return [_line(s) for s in shards] or ["no shard table yet: one log, shard 0 (SHARDS=1)"]


def list_command(ns: argparse.Namespace) -> int:
    for line in asyncio.run(_list(ns)):
        print(line)
    return 0


async def _freeze(ns: argparse.Namespace) -> Shard:
    env = dict(os.environ)
    store = await open_store(config_from(ns, env).store, env)
    try:
        return await request_freeze(store, ns.shard)
    finally:
        await store.close()


def freeze_command(ns: argparse.Namespace) -> int:
    try:
        shard = asyncio.run(_freeze(ns))
    except ValueError as e:
        print(f"notar: {e}", file=sys.stderr)
        return 2
    print(f"shard {shard.id} ({shard.origin}) is freezing: its anchor takes no more entries, publishes and")
    print("anchors its final checkpoint, moves its tenant index to the object store, then marks it frozen")
    print("(`notar shard list` shows when)")
    return 0
