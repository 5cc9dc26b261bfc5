"""Shard 0's anchor introduces every later shard's keys (SPEC §10, merkle.introduction): for each
shard i > 0 of the table whose first keys are stored, it signs once, with its log key, the
statement naming them, and stores it beside them (`layout.introduction_key`); `/v1/keys` lists the
introductions. An anchor pod of another shard cannot sign one (it holds no shard 0 key), so shard
0's anchor looks for shards to introduce at start and every `INTERVAL_S` after.
"""

from __future__ import annotations

import asyncio
import logging

from merkle.cosignature import verifier_from_key
from merkle.introduction import Introduction
from merkle.keyhistory import ClockVerifier
from merkle.note import Signer, Verifier
from services.published import layout
from services.published.history import read_stored
from services.published.shards import load_table
from storage.base import ObjectStore
from storage.errors import ConflictError, NotFoundError, StorageError

INTERVAL_S = 5.0
log = logging.getLogger("notar.anchor")


async def introduce(store: ObjectStore, signer: Signer) -> list[int]:
    """Sign and store the introduction of each shard > 0 that has first keys and none yet; the
    ids of those introduced now."""
    introduced = []
    for shard in await load_table(store):
        key = layout.introduction_key(shard.prefix)
        if shard.id == 0 or await _exists(store, key):
            continue
        first = (await read_stored(store, shard.prefix)).first
        if first is None:
            continue  # its anchor has not started yet: the next round
        clock = verifier_from_key(first[1])
        if not isinstance(clock, ClockVerifier):
            raise StorageError(f"the first clock key of {shard.origin} is not a cosignature key")
        statement = Introduction(signer.name, shard.origin, Verifier.from_key(first[0]), clock).sign(signer)
        try:
            await store.put_if_absent(key, statement.encode())
        except ConflictError:
            continue  # another round wrote it
        introduced.append(shard.id)
        log.info("introduced the keys of %s, signed by %s's log key", shard.origin, signer.name)
    return introduced


async def _exists(store: ObjectStore, key: str) -> bool:
    try:
        await store.get(key)
        return True
    except NotFoundError:
        return False


async def keep_introducing(store: ObjectStore, signer: Signer, *, interval_s: float = INTERVAL_S) -> None:
    """`introduce` every `interval_s`, for ever; a failed round is logged and tried again."""
    while True:
        try:
            await introduce(store, signer)
        except (StorageError, ValueError) as e:
            log.warning("introducing new shards' keys failed, trying again: %s", e)
        await asyncio.sleep(interval_s)
