"""The format of a log's entries, checked when the anchor starts: a v1 log cannot become v2.

A log's entries are immutable, and v1 entries (`multihash || salt`, no type byte) publish the
digest in clear (SPEC §1): appending v2 commitments to such a log would keep the old ones public
and make one log of two formats. So the anchor refuses to start on a data dir or a bucket that
holds a v1 log, and says to start a new one; the old log's tiles stay readable for audits.

A new log gets a marker object (`services.published.layout.format_key`, private) when it starts,
so that later starts read one small object. A log without the marker (one written before it
existed) is judged by its entries: the first published entry bundle, and the batches RocksDB
still holds. v2 entries are 33 bytes starting with 0x02, or 0x03 for SCITT statements (SPEC §1).
"""

from __future__ import annotations

from merkle.bundles import decode_bundle
from merkle.checkpoint import parse_checkpoint
from merkle.digests import ENTRY_NOTAR, ENTRY_SCITT, ENTRY_SIZE
from merkle.note import parse_note
from merkle.tiles import ENTRIES, TILE_WIDTH, TileId
from services.anchor import state
from services.published import layout
from storage.base import Index, ObjectStore
from storage.errors import ConfigError, NotFoundError

FORMAT = b"notar.log.v2\n"


def _new_log(what: str) -> ConfigError:
    return ConfigError(
        f"{what}: its entries are immutable, so a v1 log cannot become v2. Start a new log: a new "
        "ORIGIN, and a new S3_PREFIX (or bucket) or DATA_DIR; the old log's tiles stay readable "
        "for audits",
        setting="ORIGIN",
    )


def _is_v2(entries: list[bytes]) -> bool:
    return all(len(e) == ENTRY_SIZE and e[0] in (ENTRY_NOTAR, ENTRY_SCITT) for e in entries)


async def check_log_format(store: ObjectStore, index: Index, *, prefix: str) -> None:
    """Refuse (ConfigError, one line) a log under `prefix` of `store`, or a RocksDB `index`,
    holding entries of another format than v2; mark a log that has none as v2."""
    where = f"the log under {prefix!r} in the object store"
    try:
        marker: bytes | None = await store.get(layout.format_key(prefix))
    except NotFoundError:
        marker = None
    if marker is not None and marker != FORMAT:
        raise _new_log(f"{where} is marked as format {marker[:40]!r}, not {FORMAT!r}")
    async for key, blob in index.scan(state.BATCH):
        try:
            v2 = _is_v2(decode_bundle(blob))
        except ValueError:
            v2 = False
        if not v2:
            first = state.batch_first(key)
            raise _new_log(f"the anchor's RocksDB (DATA_DIR) holds a batch at {first} of format v1 entries")
    if marker is None:
        if not await _published_is_v2(store, prefix):
            raise _new_log(f"{where} holds format v1 entries (multihash || salt)")
        await store.put_if_absent(layout.format_key(prefix), FORMAT)


async def _published_is_v2(store: ObjectStore, prefix: str) -> bool:
    """Whether the published log's first entry bundle holds v2 entries (True when it is empty)."""
    try:
        note = (await store.get(layout.checkpoint_key(prefix))).decode("utf-8", "replace")
    except NotFoundError:
        return True
    try:
        size = parse_checkpoint(parse_note(note).text).size
    except ValueError:
        return True  # not a checkpoint: recovery says what is wrong with it
    if size == 0:
        return True
    bundle = TileId(ENTRIES, 0, min(size, TILE_WIDTH))
    try:
        return _is_v2(decode_bundle(await store.get(layout.tile_key(bundle, prefix))))
    except (NotFoundError, ValueError):
        return True  # a missing or malformed bundle: recovery refuses the log with the reason
