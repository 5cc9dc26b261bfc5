"""Start-up reconciliation of the anchor's RocksDB with the published log.

RocksDB says how many entries were given an index (and holds the batches not yet published); the
object store holds the published tiles and checkpoint. Every state a crash can leave is repaired by
re-integrating the stored batches on top of the published tree; a state that cannot come from a
crash (the store ahead of RocksDB, tiles that disagree with the checkpoint, a missing batch) stops
start-up with the reason. The object store is not trusted to keep the log: the published tree must
be consistent (RFC 9162) with the last checkpoint this anchor signed and kept in RocksDB, else
whoever can write the bucket could have the anchor sign on top of a rewritten history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from merkle.bundles import BundleBuilder, decode_bundle
from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.digests import ENTRY_SCITT, ENTRY_SIZE
from merkle.hashing import leaf_hashes
from merkle.keyhistory import KeyHistory
from merkle.note import NoteVerifier, open_note, parse_note
from merkle.proofs import verify_consistency
from merkle.tiles import ENTRIES, TILE_HEIGHT, TILE_WIDTH, Tile, TileBuilder, TileId, tiles_needed
from services.anchor import state
from services.published import layout, restores
from services.published.reader import LogReader
from storage.base import Index, ObjectStore
from storage.errors import NotarError, NotFoundError

log = logging.getLogger("notar.anchor")
_REINDEX_GETS = 32  # entry bundles read at once when a restored index is indexed again


class RecoveryError(NotarError):
    """RocksDB and the object store disagree in a way no crash explains; start-up stops."""


@dataclass
class Recovered:
    size: int
    tiles: TileBuilder
    bundles: BundleBuilder
    checkpoint_version: str | None
    published_size: int
    republish: list[Tile] = field(default_factory=list)
    batches: list[tuple[int, int]] = field(default_factory=list)  # (first, count) not yet published
    note: bytes | None = None  # the published checkpoint

    def must_sign(self, log_key: NoteVerifier, history: KeyHistory | None) -> bool:
        """Whether start-up signs the tree head again: tiles to republish, nothing published,
        entries beyond the published size, or a published checkpoint that ``log_key`` did not
        sign — after a rotation (``check_handover``: RecoveryError unless it hands over at this
        very size) or a replacement of the keys."""
        if self.note is not None and not open_note(self.note, [log_key]).ok:
            if history is not None:
                check_handover(history, self.note, self.size)
            return True
        return bool(self.republish) or self.checkpoint_version is None or self.size != self.published_size


def check_handover(history: KeyHistory, note: bytes, size: int) -> None:
    """RecoveryError when ``note``, the published checkpoint, is signed by a retired key of
    ``history`` and the log, of ``size`` entries, does not stand exactly at the size where that
    key handed over: either it signed beyond its period (receipts no verifier would accept), or
    the current key's period starts beyond the tree it would sign now."""
    for period in history.periods[:-1]:
        if not open_note(note, [period.log]).ok:
            continue
        current = history.current
        if period.until_size == size == current.from_size:
            return
        raise RecoveryError(
            f"the published checkpoint is signed by the log key {period.log.to_key()}, retired at tree "
            f"size {period.until_size} by its rotation statement, and the log holds {size} entries; the "
            f"current key signs from size {current.from_size}. A rotation hands over exactly where "
            "the log stopped: the anchor was not stopped cleanly before `notar keys rotate`, or the "
            "statement is not this log's. Nothing is signed (docs/runbook.md, key rotation)."
        )


async def _fetch_all(store: ObjectStore, prefix: str, ids: set[TileId]) -> dict[TileId, bytes]:
    ids_list = sorted(ids, key=lambda t: (str(t.level), t.index, t.width))
    datas = await asyncio.gather(*(store.get(layout.tile_key(t, prefix)) for t in ids_list))
    return dict(zip(ids_list, datas, strict=True))


async def _check_consistent(
    store: ObjectStore, *, prefix: str, origin: str, signed: Checkpoint, size: int, root: bytes
) -> None:
    """RecoveryError unless the published tree (size, root) extends the tree `signed`."""
    where = f"the published log at {prefix} (size {size})"
    try:
        proof = await LogReader(store, prefix=prefix, origin=origin).consistency_proof(signed.size, size)
        holds = verify_consistency(signed.size, size, proof, signed.root, root)
    except (NotFoundError, ValueError) as e:
        raise RecoveryError(f"{where}: cannot prove it extends the tree this anchor signed: {e}") from e
    if not holds:
        raise RecoveryError(
            f"{where} is not consistent with the checkpoint of size {signed.size} this anchor signed: "
            "the object store was rewritten, or holds another log. Nothing is signed on top of it; "
            "restore the log from a copy (the receipts and anchors issued hold its checkpoints)."
        )


async def _adopt_published(
    store: ObjectStore,
    index: Index,
    marker: bytes,
    head: bytes | None,
    assigned: int,
    *,
    published: int,
    root: bytes | None,
    origin: str,
    prefix: str,
) -> int:
    """The head of an index restored from a backup (`notar backup restore` marked it) behind the
    published log: the published tree, once proven to extend the last checkpoint the backup
    holds, is taken as it is. The entries from `assigned` on keep their place in the log, but
    their salts were only in the lost index: that range is recorded (services.published.restores)
    before the head moves past it, so that no index is ever given twice."""
    last_note = await index.get(state.CHECKPOINT)
    signed = parse_checkpoint(parse_note(last_note).text) if last_note else None
    if signed is not None and root is not None and 0 < signed.size <= published:
        await _check_consistent(store, prefix=prefix, origin=origin, signed=signed, size=published, root=root)
    try:
        backup = str(orjson.loads(marker)["backup"])
    except (KeyError, TypeError, ValueError):
        backup = "?"
    await restores.record(store, restores.Restore(backup, assigned, published, int(time.time())), prefix)
    found = await _reindex_statements(store, index, prefix=prefix, first=assigned, end=published)
    if not await index.compare_and_swap(state.HEAD, head, state.u64(published), sync=True):
        raise RecoveryError("RocksDB's head changed while the restored index was adopted: a second writer?")
    log.warning(
        "the index restored from backup %s held %d entries, the published log %d: the salts of "
        "entries %d to %d are lost (their receipts cannot be issued again; those the clients kept "
        "still verify); %d SCITT statement(s) among them indexed again from the log",
        backup, assigned, published, assigned, published - 1, found,
    )
    return published


async def _reindex_statements(store: ObjectStore, index: Index, *, prefix: str, first: int, end: int) -> int:
    """Index again (``state.entry_key``) the SCITT statements among the published entries
    ``first`` to ``end - 1``, which a restored index lost: unlike a digest's salt, a statement's
    entry is in the log as it is, so ``GET /entries/{id}`` finds it again and a second
    registration of it is not logged twice. How many were indexed."""
    ids = [
        TileId(ENTRIES, n, TILE_WIDTH if (n + 1) * TILE_WIDTH <= end else end % TILE_WIDTH)
        for n in range(first >> TILE_HEIGHT, -(-end // TILE_WIDTH))
    ]
    rows: dict[bytes, bytes] = {}
    for at in range(0, len(ids), _REINDEX_GETS):
        chunk = ids[at : at + _REINDEX_GETS]
        try:
            bundles = await _fetch_all(store, prefix, set(chunk))
        except NotFoundError as e:
            raise RecoveryError(f"the published log at {prefix} lacks an entry bundle: {e}") from e
        for tile in chunk:
            for i, entry in enumerate(decode_bundle(bundles[tile]), start=tile.index << TILE_HEIGHT):
                if first <= i < end and len(entry) == ENTRY_SIZE and entry[0] == ENTRY_SCITT:
                    rows[state.entry_key(entry)] = state.u64(i)
    if rows:
        await index.write_batch(rows, sync=True)
    return len(rows)


async def recover(store: ObjectStore, index: Index, *, origin: str, prefix: str) -> Recovered:
    head_raw = await index.get(state.HEAD)
    assigned = int.from_bytes(head_raw, "big") if head_raw else 0
    published, root, version = 0, None, None
    where = layout.checkpoint_key(prefix)
    try:
        versioned = await store.get_versioned(where)
    except NotFoundError:
        versioned = None
    if versioned is not None:
        try:
            cp = parse_checkpoint(parse_note(versioned.data).text, origin=origin)
        except ValueError as e:
            raise RecoveryError(
                f"the published checkpoint {where} is not a checkpoint of {origin}: {e}; "
                "is ORIGIN or the store prefix pointing at another log?"
            ) from e
        published, root, version = cp.size, cp.root, versioned.version
    restored = await index.get(state.RESTORED)
    if restored is not None and published > assigned:
        assigned = await _adopt_published(
            store, index, restored, head_raw, assigned,
            published=published, root=root, origin=origin, prefix=prefix,
        )
    if published > assigned:
        raise RecoveryError(
            f"the published log {where} has {published} entries but the anchor's RocksDB has assigned only "
            f"{assigned}: this RocksDB is not the one that wrote the log (or lost data). "
            "Restore DATA_DIR/index from a backup (`notar backup restore`: docs/backups.md), or point "
            "ORIGIN / the store prefix at a new log."
        )
    fetch_ids = tiles_needed(lambda f: TileBuilder.from_tiles(published, f))
    if published % TILE_WIDTH:
        fetch_ids.add(TileId(ENTRIES, published >> TILE_HEIGHT, published % TILE_WIDTH))
    try:
        fetched = await _fetch_all(store, prefix, fetch_ids)
    except NotFoundError as e:
        raise RecoveryError(f"the published log at {prefix} lacks a tile its checkpoint needs: {e}") from e
    fetch: Callable[[TileId], bytes] = fetched.__getitem__
    try:
        tiles = TileBuilder.from_tiles(published, fetch)
        partial = fetched.get(TileId(ENTRIES, published >> TILE_HEIGHT, published % TILE_WIDTH), b"")
        bundles = BundleBuilder(published, decode_bundle(partial) if published % TILE_WIDTH else ())
    except ValueError as e:
        raise RecoveryError(f"the published tiles at {prefix} are malformed: {e}") from e
    if root is not None and tiles.root() != root:
        raise RecoveryError(f"the published tiles at {prefix} do not hash to the published checkpoint's root")
    out = Recovered(assigned, tiles, bundles, version, published, note=versioned.data if versioned else None)

    last_note = await index.get(state.CHECKPOINT)
    signed = parse_checkpoint(parse_note(last_note).text) if last_note else None
    if signed is not None and root is not None and 0 < signed.size <= published:
        await _check_consistent(store, prefix=prefix, origin=origin, signed=signed, size=published, root=root)
    position = published
    async for key, blob in index.scan(state.BATCH):
        first = state.batch_first(key)
        entries = decode_bundle(blob)
        end = first + len(entries)
        if end <= published:
            continue
        if first > position:
            raise RecoveryError(
                f"RocksDB lacks the batch holding entry {position} (next batch starts at {first})"
            )
        new = entries[position - first :]
        out.republish += tiles.append(leaf_hashes(new)) + bundles.append(new)
        out.batches.append((first, len(entries)))
        position = end
        if signed is not None and signed.size == position and signed.root != tiles.root():
            raise RecoveryError(
                f"re-integrating RocksDB's batches gives another root at size {position} than "
                "the checkpoint this anchor signed: the index is corrupt"
            )
    if position != assigned:
        raise RecoveryError(
            f"RocksDB's head says {assigned} entries were assigned but its batches end at {position}"
        )
    return out
