"""The shards' metrics (services/anchor/metrics.py `register_shard_metrics`, docs/shards.md
"Observing shards"): each shard's state as one series per state, and the compactions of the
frozen indexes as the compacting anchor's freezer counts them: tombstones waiting, failed passes,
the last pass that completed."""

from __future__ import annotations

import pytest

from merkle import parse_digest
from services.anchor.erasure import Eraser
from services.anchor.freeze import Freezer, ShardAnchor
from services.anchor.frozen_index import FrozenIndex, export
from services.anchor.metrics import register_shard_metrics
from services.common.telemetry import Telemetry
from services.published import layout
from services.published.shards import Shard, update_table
from storage.errors import StorageError
from storage.memory import MemoryIndex, MemoryStore
from tests.services.anchor.conftest import ORIGIN, MakeSequencer, tenant_index
from tests.services.anchor.test_freeze import no_remake

FROZEN = Shard(1, ORIGIN, "frozen", 1, None)  # the sequencers of conftest sign as ORIGIN
TABLE = (Shard(0, "test.notar/base", "active", 0), FROZEN, Shard(2, "test.notar/base/2", "freezing", 2))


def metrics(tel: Telemetry) -> dict[str, float]:
    lines = [line.rsplit(" ", 1) for line in tel.prometheus() if not line.startswith("#")]
    return {name: float(value) for name, value in lines}


async def test_the_states_and_the_compactions_are_exported(make_sequencer: MakeSequencer) -> None:
    store, index = MemoryStore(), MemoryIndex()
    seq = await make_sequencer(store, index, prefix=FROZEN.prefix)
    digests = [parse_digest(f"blake3:{i:064x}") for i in range(3)]
    await seq.submit("acme", digests)
    await export(index, store, prefix=FROZEN.prefix, origin=ORIGIN, checkpoint="final", size=seq.size)
    frozen = FrozenIndex(store, tenant_index=tenant_index(), prefix=FROZEN.prefix)
    assert await frozen.forget("acme", digests[0]) == 1 and await frozen.forget("acme", digests[1]) == 1
    await update_table(store, lambda _: TABLE)

    now = [1000.0]
    eraser = Eraser(index=MemoryIndex(), tenant_index=tenant_index(), journal=store, prefix="log/")
    parts = ShardAnchor(store, seq, MemoryIndex(), eraser, tenant_index(), [], no_remake)
    freezer = Freezer(0, parts, compact_s=3600, clock=lambda: now[0], wall=lambda: 1.7e9 + now[0])
    tel = Telemetry()
    register_shard_metrics(tel, (freezer,))
    before = metrics(tel)
    assert not [k for k in before if k.startswith("notar_shard_state")]  # no table read yet
    assert before["notar_frozen_compact_interval_seconds"] == 3600
    assert before["notar_frozen_compaction_failures_total"] == 0
    assert "notar_frozen_compaction_last_success_timestamp_seconds" not in before

    store.faults.inject("put_stream", layout.frozen_files(FROZEN.prefix) + "*")  # the rewrite fails
    with pytest.raises(StorageError, match="injected"):  # the task logs it and steps again
        await freezer.step()
    failed = metrics(tel)
    for shard, state in ((0, "active"), (1, "frozen"), (2, "freezing")):
        origin = next(s.origin for s in TABLE if s.id == shard)
        for each in ("active", "freezing", "frozen"):
            key = f'notar_shard_state{{origin="{origin}",shard="{shard}",state="{each}"}}'
            assert failed[key] == (each == state), key
    pending = f'notar_frozen_tombstones_pending{{origin="{ORIGIN}",shard="1"}}'
    assert failed[pending] == 2 and failed["notar_frozen_compaction_failures_total"] == 1
    assert "notar_frozen_compaction_last_success_timestamp_seconds" not in failed

    now[0] += 5
    await freezer.step()  # compacted
    now[0] += 5
    await freezer.step()  # counted again after the pass
    done = metrics(tel)
    assert done[pending] == 0 and done["notar_frozen_compaction_failures_total"] == 1
    assert done["notar_frozen_compaction_last_success_timestamp_seconds"] == 1.7e9 + 1005

    not_compactor = Freezer(3, parts, clock=lambda: now[0])  # shard 0 is the lowest active id
    other = Telemetry()
    register_shard_metrics(other, (not_compactor,))
    await not_compactor.step()
    assert not [k for k in metrics(other) if k.startswith("notar_frozen_tombstones_pending")]
