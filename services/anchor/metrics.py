"""The anchor's observable metrics (OpenTelemetry instruments read at each collection): the
sequencer of every shard this process runs, the committer and the backups of its home shard, and
the shard table and frozen indexes' compactions as its freezers see them."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.metrics import CallbackOptions, Observation

from services.anchor.backup import Backups
from services.anchor.committer import Committer
from services.anchor.freeze import Freezer
from services.anchor.sequencer import Sequencer
from services.anchor.shardset import ShardAnchor
from services.common.telemetry import Telemetry
from services.published.shards import STATES


def register_anchor_metrics(
    tel: Telemetry,
    running: tuple[ShardAnchor, ...],
    seq: Sequencer,
    committer: Committer | None,
    backups: Backups | None,
) -> None:
    """The sequencer's and the committer's state as observable instruments of `tel`, read at
    each collection (a /metrics scrape, an OTLP push): nothing is added to the hot path.
    `running` are the process's shards, `seq` its home shard's sequencer."""

    def observe(read: Callable[[Sequencer], int]) -> Callable[[CallbackOptions], list[Observation]]:
        """One observation per shard, named by its `origin` when there are several (with one, no
        attribute: the series of a single log stay as they were)."""
        if len(running) == 1:
            return lambda _: [Observation(read(seq))]
        return lambda _: [Observation(read(one.sequencer), {"origin": one.shard.origin}) for one in running]

    def counter(name: str, read: Callable[[Sequencer], int], what: str) -> None:
        tel.meter.create_observable_counter(name, [observe(read)], unit="1", description=what)

    def gauge(name: str, read: Callable[[Sequencer], int], what: str) -> None:
        tel.meter.create_observable_gauge(name, [observe(read)], unit="1", description=what)

    counter(
        "notar_entries_sequenced", lambda q: q.stats.sequenced, "entries sequenced (in a signed checkpoint)"
    )
    counter("notar_batches", lambda q: q.stats.batches, "batches sequenced (one signed checkpoint each)")
    gauge("notar_tree_size", lambda q: q.stats.signed_size, "size of the latest signed checkpoint")
    gauge("notar_published_tree_size", lambda q: q.stats.published_size, "size of the published checkpoint")
    gauge(
        "notar_publication_lag_entries",
        lambda q: q.stats.signed_size - q.stats.published_size,
        "entries signed but not yet published to the object store",
    )
    gauge("notar_queue_depth", lambda q: q.queued, "entries waiting for a batch")
    gauge(
        "notar_clock_behind_seconds",
        lambda q: q.clock_behind_s,
        "how far the wall clock is behind the last cosigned time (checkpoints keep that time meanwhile)",
    )
    gauge("notar_sequencer_stopped", lambda q: int(q.stopped is not None), "1 once it stopped for good")
    gauge("notar_sequencer_refusing", lambda q: int(q.refusing is not None), "1 while it refuses entries")
    lease = seq.lease  # the home shard's: in one process the others share its lifetime
    if lease is not None:
        tel.meter.create_observable_counter(
            "notar_lease_lapses",
            [lambda _: [Observation(lease.lapses)]],
            unit="1",
            description="times the lease was renewed after going overdue",
        )
        tel.meter.create_observable_gauge(
            "notar_lease_acquired_timestamp_seconds",
            [lambda _: [] if lease.acquired_at is None else [Observation(lease.acquired_at)]],
            unit="s",
            description="when this process took the log's lease (Unix time)",
        )
    if backups is not None:
        register_backup_metrics(tel, backups)
    if committer is None:
        return
    status = committer.status

    s = seq.stats

    def anchor_lag(_: CallbackOptions) -> list[Observation]:
        return [Observation(s.signed_size - st.anchored_size, {"kind": k}) for k, st in status.items()]

    def last_anchored(_: CallbackOptions) -> list[Observation]:
        return [
            Observation(st.last_success, {"kind": k})
            for k, st in status.items()
            if st.last_success is not None
        ]

    tel.meter.create_observable_gauge(
        "notar_anchor_lag_entries",
        [anchor_lag],
        unit="1",
        description="entries in the log not yet covered by an anchor, per kind (chain)",
    )
    tel.meter.create_observable_gauge(
        "notar_anchor_last_success_timestamp_seconds",
        [last_anchored],
        unit="s",
        description="when each kind last stored an anchor record (Unix time)",
    )


def register_backup_metrics(tel: Telemetry, backups: Backups) -> None:
    """The backups' figures: the alerts compare their age with their interval (runbook)."""
    b = backups.stats

    def last_success(_: CallbackOptions) -> list[Observation]:
        return [] if b.last_success is None else [Observation(b.last_success)]

    tel.meter.create_observable_gauge(
        "notar_backup_last_success_timestamp_seconds",
        [last_success],
        unit="s",
        description="when the newest complete backup of the anchor's index was taken (Unix time)",
    )
    tel.meter.create_observable_gauge(
        "notar_backup_size_bytes",
        [lambda _: [Observation(b.size)]],
        unit="By",
        description="bytes of the newest complete backup of the anchor's index",
    )
    tel.meter.create_observable_gauge(
        "notar_backup_interval_seconds",
        [lambda _: [Observation(backups.interval_s)]],
        unit="s",
        description="BACKUP_INTERVAL_S: how often the anchor's index is backed up",
    )
    tel.meter.create_observable_counter(
        "notar_backup_failures",
        [lambda _: [Observation(b.failures)]],
        unit="1",
        description="backups of the anchor's index that failed (each is retried)",
    )




def register_shard_metrics(tel: Telemetry, freezers: tuple[Freezer, ...]) -> None:
    """The shard table as this anchor last read it, and the compactions of the frozen indexes
    (docs/shards.md, "Observing shards"). `notar_shard_state` is one series per shard and state,
    1 for the shard's state and 0 for the others (as kube-state-metrics exports a pod's phase):
    `notar_shard_state{state="freezing"} == 1` selects the freezing shards, and a change of state
    is a change of value, not a series that appears. With one shard (no table) it has no series."""

    def states(_: CallbackOptions) -> list[Observation]:
        table = freezers[0].table if freezers else ()
        return [
            Observation(int(s.state == state), {"shard": str(s.id), "origin": s.origin, "state": state})
            for s in table
            for state in STATES
        ]

    def pending(_: CallbackOptions) -> list[Observation]:
        return [
            Observation(count, {"shard": str(s.id), "origin": s.origin})
            for f in freezers
            if f.compactions.compacting
            for s, count in f.compactions.pending.values()
        ]

    def last_success(_: CallbackOptions) -> list[Observation]:
        done = [f.compactions.last_success for f in freezers if f.compactions.last_success is not None]
        return [Observation(max(done))] if done else []

    tel.meter.create_observable_gauge(
        "notar_shard_state",
        [states],
        unit="1",
        description="1 for the state of each shard of the table (active, freezing, frozen), 0 for the others",
    )
    tel.meter.create_observable_gauge(
        "notar_frozen_tombstones_pending",
        [pending],
        unit="1",
        description="erasures in a frozen shard's index whose rows the next compaction rewrites away",
    )
    tel.meter.create_observable_gauge(
        "notar_frozen_compaction_last_success_timestamp_seconds",
        [last_success],
        unit="s",
        description="when a compaction pass over the frozen indexes last completed (Unix time)",
    )
    tel.meter.create_observable_gauge(
        "notar_frozen_compact_interval_seconds",
        [lambda _: [Observation(f.compactions.interval_s) for f in freezers[:1]]],
        unit="s",
        description="FROZEN_COMPACT_S: how often the frozen indexes are compacted",
    )
    tel.meter.create_observable_counter(
        "notar_frozen_compaction_failures",
        [lambda _: [Observation(sum(f.compactions.failures for f in freezers))]],
        unit="1",
        description="compaction passes over the frozen indexes that failed (each is tried again)",
    )
