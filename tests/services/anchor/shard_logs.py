"""Several shards' logs in one object store, as a sharded deployment has them (SPEC §10): shard i
has origin `shard_origin(BASE, i)`, its log under `shard_prefix(i)`, its own keys (its key history
stored, as its anchor writes it at start), its own sequencer and index, and a row in the shard
table. `receipt` upgrades one of its receipts to what the committer anchored, as the verify service
does: the anchored checkpoint holding the entry (`AnchorStore.best_for` under the shard's prefix),
an inclusion proof from the shard's published tiles, the records."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from merkle import Receipt
from merkle.checkpoint import parse_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import parse_digest
from merkle.note import Signer, parse_note
from services.anchor.keys import LogKeys
from services.anchor.rotation import load_history
from services.anchor.sequencer import Sequencer
from services.anchor.tenant_index import TenantIndex
from services.common.components import SequencerConfig
from services.internal.wire import encode_answer
from services.published.anchors import AnchorStore
from services.published.reader import LogReader
from services.published.shards import Shard, claim, shard_origin
from storage.base import ObjectStore
from storage.memory import MemoryIndex

BASE = "shards.notar.test/log"
INDEX_KEY = bytes(range(32))
TENANT = "acme"


@dataclass
class ShardLog:
    shard: Shard
    keys: LogKeys
    sequencer: Sequencer

    @property
    def verifier_keys(self) -> list[str]:
        return list(self.keys.verifier_keys.values())

    async def notarize(self, digests: Sequence[str]) -> list[Receipt]:
        """The receipts of `digests` notarized by TENANT in this shard (not anchored yet)."""
        parsed = [parse_digest(d) for d in digests]
        results = await self.sequencer.submit(TENANT, parsed)
        answer = encode_answer(origin=self.shard.origin, tenant=TENANT, digests=parsed, results=results)
        return [Receipt.from_obj(r) for r in orjson.loads(answer)["receipts"]]

    async def published(self) -> None:
        """Returns once everything sequenced is published (its checkpoint is in the store)."""
        for _ in range(1000):
            if self.sequencer.stats.published_size == self.sequencer.size:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"shard {self.shard.id} did not publish its checkpoint within 10 s")

    async def receipt(self, store: ObjectStore, sequenced: Receipt) -> Receipt | None:
        """`sequenced` upgraded to its shard's best anchored checkpoint, or None before one."""
        found = await AnchorStore(store, prefix=self.shard.prefix).best_for(sequenced.index)
        if found is None:
            return None
        note, records = found
        reader = LogReader(store, prefix=self.shard.prefix, origin=self.shard.origin)
        size = parse_checkpoint(parse_note(note).text).size
        proof = await reader.inclusion_proof(sequenced.index, size)
        return sequenced.upgraded(checkpoint=note, tree_size=size, inclusion=proof, anchors=records)


async def start_shards(store: ObjectStore, count: int, *, first: int = 0) -> list[ShardLog]:
    """Shards `first` .. `first + count - 1` claimed in the table (ordinal = id) and started."""
    logs = []
    for ordinal in range(first, first + count):
        shard = await claim(store, BASE, ordinal)
        assert shard.origin == shard_origin(BASE, shard.id)
        keys = LogKeys(Signer.generate(shard.origin), CosignatureSigner.generate(shard.origin + "/clock"))
        await load_history(store, keys, shard.prefix)
        sequencer = Sequencer(
            store=store,
            index=MemoryIndex(),
            keys=keys,
            config=SequencerConfig(origin=shard.origin, prefix=shard.prefix, batch_ms=5),
            tenant_index=TenantIndex(INDEX_KEY, origin=shard.origin),
        )
        await sequencer.start()
        logs.append(ShardLog(shard, keys, sequencer))
    return logs


async def stop_shards(logs: Sequence[ShardLog]) -> None:
    for log in logs:
        await log.sequencer.close()
