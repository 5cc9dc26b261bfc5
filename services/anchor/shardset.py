"""The shards an anchor process runs (SPEC §10): each shard's config, and one shard's sequencer
with what goes with it (tenant index, eraser, registrar, backups), opened and closed together.

`notar serve --shards K` runs shards 0..K-1 in one process; shard 0 keeps DATA_DIR as a single
log has it, shard i > 0 keeps its signing keys, RocksDB and backup scratch under
`DATA_DIR/shards/<i>/`. Every shard of a deployment shares the index key (the tenant index's
pads differ per origin: services.anchor.tenant_index). An anchor pod of split roles runs the one
shard its ordinal claims in the shard table, in its own DATA_DIR (its volume), under the same
names.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from merkle.keyhistory import KeyHistory
from services.anchor.backup import Backups, after_restore
from services.anchor.erasure import Eraser
from services.anchor.keys import LogKeys, generate_keys, load_keys
from services.anchor.registrar import Registrar
from services.anchor.rotation import load_history
from services.anchor.sequencer import Sequencer
from services.anchor.tenant_index import TenantIndex
from services.common.components import KeysConfig, NotarConfig
from services.common.index_key import ensure_index_key, load_index_key
from services.common.stores import open_index
from services.common.telemetry import SequencerTelemetry
from services.published import layout
from services.published.reader import LogReader
from services.published.shards import Shard, claim, load_table, shard_origin, shard_prefix
from services.published.trust import keys_document
from storage.base import Index, ObjectStore
from storage.errors import ConfigError

_ORDINAL = re.compile(r"-([0-9]{1,9})\Z")
_ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104  # compared with, not bound


def shard_config(config: NotarConfig, shard: int, *, in_process: bool) -> NotarConfig:
    """`config` for shard `shard`: its origin, prefix, and (shard > 0) its own directory for keys,
    RocksDB and backups under DATA_DIR/shards/<i>/, in one process and in an anchor pod alike, so
    that a pod whose shard was frozen starts the shard its ordinal claims next in a fresh directory
    (the frozen shard's keys stay where they were). In one process, shard i's signing keys are
    always its own (LOG_KEY_FILE and CLOCK_KEY_FILE are shard 0's); an anchor pod's key files, when
    set, are its shard's. Shard 0's is `config` unchanged, so a single-log deployment is not
    touched."""
    if shard == 0:
        return config
    origin, prefix = shard_origin(config.sequencer.origin, shard), shard_prefix(shard)
    own = config.store.data_dir / "shards" / str(shard)
    keys = replace(config.keys, origin=origin, data_dir=own, index_key_file=config.keys.index_key_path)
    if in_process:
        keys = replace(keys, log_key_file=None, clock_key_file=None)
    return replace(
        config,
        sequencer=replace(config.sequencer, origin=origin, prefix=prefix),
        committer=replace(config.committer, prefix=prefix),
        keys=keys,
        store=replace(config.store, index_dir=own / "index"),
        backups=replace(config.backups, scratch=own / "backup"),
        chains=replace(config.chains, evm_journal=own / "anchors" / "evm-journal.json"),
    )


def keys_from(config: KeysConfig) -> LogKeys:
    """The log's signing keys; ConfigError when one is missing or not named after ORIGIN."""
    return load_keys(config.data_dir, config.origin, config.log_key_file, config.clock_key_file)


def ensure_keys(config: KeysConfig) -> list[Path]:
    """Create the signing keys and the index key that are missing; the paths created."""
    created = generate_keys(config.data_dir, config.origin, config.log_key_file, config.clock_key_file)
    index_key = ensure_index_key(config)
    return created if index_key is None else [*created, index_key]


def ordinal_of(config: NotarConfig, env: Mapping[str, str]) -> int:
    """This anchor pod's ordinal: SHARD_ORDINAL, else the `-<n>` ending of HOSTNAME (a
    StatefulSet pod's name); ConfigError naming SHARD_ORDINAL when there is neither."""
    if config.shards.ordinal.value is not None:
        return config.shards.ordinal.value
    m = _ORDINAL.search(env.get("HOSTNAME", ""))
    if m:
        return int(m.group(1))
    return config.shards.ordinal.need(f"with SHARDS={config.shards.count} (or a HOSTNAME ending in -<n>)")


def advertised_url(config: NotarConfig) -> str:
    """Where ingest and verify pods reach this anchor: SHARD_URL, else http://LISTEN when LISTEN
    names one address; ConfigError naming SHARD_URL otherwise."""
    if config.shards.url.value:
        return config.shards.url.value
    host, port = config.http.listen
    if host in _ANY_ADDRESS:
        return config.shards.url.need(f"when LISTEN is {host or '*'}:{port} (every address)")
    return f"http://{host if ':' not in host else f'[{host}]'}:{port}"


async def shards_to_run(
    config: NotarConfig, store: ObjectStore, env: Mapping[str, str] | None
) -> list[Shard]:
    """The shards of this process: with SHARDS=1, shard 0 (no table is written); with `env`
    (split roles) the one this pod's ordinal claims in the table, with its URL; else (one
    process) ordinals 0..SHARDS-1 claimed in order."""
    base, count = config.sequencer.origin, config.shards.count
    beyond = [s for s in await load_table(store) if s.state != "frozen" and (s.ordinal or 0) >= count]
    if beyond:  # their entries would be served by no one, and their notarizations not found
        ordinals = sorted({s.ordinal or 0 for s in beyond})
        raise ConfigError(
            f"SHARDS is {count} but the shard table has unfrozen shards of ordinals {ordinals}: "
            f"set SHARDS to {ordinals[-1] + 1} (or freeze them first: notar shard freeze I)",
            setting="SHARDS",
        )
    if count == 1:
        return [Shard(0, base)]
    if env is not None:
        return [await claim(store, base, ordinal_of(config, env), advertised_url(config))]
    return [await claim(store, base, n) for n in range(count)]


@dataclass(frozen=True)
class ShardAnchor:
    """One running shard: its row of the table, config, keys, key history, and what serves it."""

    shard: Shard
    config: NotarConfig
    keys: LogKeys
    history: KeyHistory
    sequencer: Sequencer
    eraser: Eraser
    registrar: Registrar
    backups: Backups | None
    index: Index
    tenant_index: TenantIndex


def backups_from(config: NotarConfig, store: ObjectStore, index: Index) -> Backups | None:
    """The backups of the index (BACKUP_INTERVAL_S, BACKUP_KEEP), or None when they are off."""
    if not config.backups.interval_s:
        return None
    return Backups(
        store=store,
        index=index,
        origin=config.sequencer.origin,
        scratch=config.backups.scratch,
        keep=config.backups.keep,
        interval_s=config.backups.interval_s,
        prefix=config.sequencer.prefix,
    )


@asynccontextmanager
async def running_shard(
    shard: Shard, config: NotarConfig, store: ObjectStore, telemetry: SequencerTelemetry
) -> AsyncIterator[ShardAnchor]:
    """Shard `shard`'s sequencer started over `store` with its index opened and restored erasures
    applied (before any look-up is served); its keys document written first (services.published
    .trust), so that verify pods know keys a rotation introduced before the sequencer signs with
    them. Closed (sequencer, then index) on exit."""
    keys = keys_from(config.keys)
    origin, prefix = config.sequencer.origin, config.sequencer.prefix
    rows = TenantIndex(load_index_key(config.keys), origin=origin)
    history = await load_history(store, keys, prefix)  # ConfigError unless keys are its current ones
    w = config.witnesses
    document = keys_document([history], w.witnesses, w.quorum)
    await store.put(layout.keys_key(prefix), orjson.dumps(document))
    index = open_index(config.store)
    try:
        seq = Sequencer(
            store=store,
            index=index,
            keys=keys,
            config=config.sequencer,
            tenant_index=rows,
            telemetry=telemetry,
            history=history,
        )
        eraser = Eraser(index=index, tenant_index=rows, journal=store, prefix=prefix)
        reader = LogReader(store, prefix=prefix, origin=origin)
        registrar = Registrar(sequencer=seq, index=index, keys=keys, reader=reader)
        await seq.start()
        await after_restore(index, eraser)  # before any look-up is served
        backups = backups_from(config, store, index)
        yield ShardAnchor(shard, config, keys, history, seq, eraser, registrar, backups, index, rows)
        await seq.close()
    finally:
        await index.close()
