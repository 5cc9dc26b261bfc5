"""Recovery does not trust the object store to keep the log (SECURITY.md, the S3 operator).

Regression: at start-up the anchor adopted whatever checkpoint and tiles the store held as long as
they agreed with each other, then signed new checkpoints on top of them. Whoever could write the
bucket (any pod with the shared S3 credentials) could swap in a rewritten history of the same
size, wait for a restart, and have the log key vouch for it. Now the published tree must be
consistent with the last checkpoint this anchor signed and kept in RocksDB.
"""

from __future__ import annotations

import pytest

from merkle import Digest, parse_digest
from merkle.checkpoint import parse_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer, parse_note
from services.anchor import state
from services.anchor.keys import LogKeys
from services.anchor.recovery import RecoveryError
from services.anchor.sequencer import Sequencer, SequencerConfig
from storage.memory import MemoryIndex, MemoryStore
from tests.services.anchor.conftest import ORIGIN, MakeSequencer, tenant_index


def items(start: int, n: int, seed: int = 0) -> list[Digest]:
    return [
        parse_digest("blake3:" + (seed * 10**6 + i).to_bytes(32, "big").hex())
        for i in range(start, start + n)
    ]


def swap_log(victim: MemoryStore, source: MemoryStore) -> None:
    """What a bucket writer can do: replace the published tiles and checkpoint."""
    for key in [k for k in victim.objects if k.startswith(("log/tile/", "log/checkpoint"))]:
        del victim.objects[key]
    for key, value in source.objects.items():
        if key.startswith(("log/tile/", "log/checkpoint")):
            victim.objects[key] = value


async def published(store: MemoryStore) -> tuple[int, bytes]:
    cp = parse_checkpoint(parse_note(await store.get("log/checkpoint")).text)
    return cp.size, cp.root


async def test_a_rewritten_history_of_the_same_size_stops_start_up(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    honest = await make_sequencer(store, index)
    await honest.submit("acme", items(0, 300))
    await honest.close()
    other = MemoryStore()
    forger = await make_sequencer(other)  # any key will do: recovery used to check no signature
    await forger.submit("acme", items(0, 300, seed=1))
    await forger.close()

    swap_log(store, other)
    with pytest.raises(RecoveryError, match="not consistent with the checkpoint of size 300"):
        await make_sequencer(store, index)
    assert await published(store) == await published(other), "nothing was signed on top of it"


async def test_the_check_reaches_back_to_an_earlier_signed_checkpoint(make_sequencer: MakeSequencer) -> None:
    """RocksDB may keep only an earlier note (a lost write): the store must still extend it."""
    store, index = MemoryStore(), MemoryIndex()
    seq = await make_sequencer(store, index)
    first = await seq.submit("acme", items(0, 100))
    await seq.submit("acme", items(100, 200))
    await seq.close()
    await index.write_batch({state.CHECKPOINT: first[0].checkpoint.encode()})

    again = await make_sequencer(store, index)  # its own log: consistent, starts
    assert again.size == 300
    await again.close()
    await index.write_batch({state.CHECKPOINT: first[0].checkpoint.encode()})

    other = MemoryStore()
    forger = await make_sequencer(other)
    await forger.submit("acme", items(0, 300, seed=2))
    await forger.close()
    swap_log(store, other)
    with pytest.raises(RecoveryError, match="size 100"):
        await make_sequencer(store, index)


async def test_key_rotation_still_starts(make_sequencer: MakeSequencer) -> None:
    """The check is about the tree, not the signature: checkpoints of a previous key are fine."""
    store, index = MemoryStore(), MemoryIndex()
    old = await make_sequencer(store, index)
    await old.submit("acme", items(0, 50))
    await old.close()
    new_keys = LogKeys(Signer.generate(ORIGIN), CosignatureSigner.generate(ORIGIN + "/clock"))
    seq = Sequencer(
        store=store,
        index=index,
        keys=new_keys,
        config=SequencerConfig(origin=ORIGIN, batch_ms=5),
        tenant_index=tenant_index(),
    )
    await seq.start()
    try:
        got = await seq.submit("acme", items(50, 5))
        assert sorted(r.index for r in got) == list(range(50, 55)) and new_keys.log.name in got[0].checkpoint
    finally:
        await seq.close()
