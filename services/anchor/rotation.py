"""Key rotation (SPEC §11): the anchor's keys checked against the log's key history, and
``notar keys rotate``, which hands the log over to new keys at the size where it stopped.

A log signature carries no time, so the old log key must never sign beyond the handover size N
of its statement, and the new one never below it. The rotation is therefore made while the anchor
is stopped, at the size its log stands at: the head of its RocksDB when ``DATA_DIR`` holds it
(``notar serve``, or the anchor's volume), else the published size, which is that size only when
the anchor gave its lease up saying everything it signed was published (a clean stop). The anchor
picks the rotation up when it starts: it refuses key files that are not the history's current keys,
and signs the tree head of size N again with the new keys (``recovery.check_handover``) before it
takes any entry. It does not pick rotations up while it runs (no SIGHUP, no polling): it would have
signed on with the old key past N meanwhile.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web

from merkle.checkpoint import parse_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.keyhistory import KeyHistory, Rotation, clock_key_name
from merkle.note import Signer, parse_note
from services.anchor import state
from services.anchor.keys import LogKeys
from services.common.keyfiles import write_secret
from services.published import layout
from services.published.history import add_rotation, read_stored, write_first
from storage.base import ObjectStore
from storage.errors import ConfigError, ConflictError, NotFoundError, StorageError
from storage.rocks import RocksIndex

HISTORY = web.AppKey("key_history", KeyHistory)
"""The log's key history, once the anchor's sequencer context loaded it."""


async def load_history(store: ObjectStore, keys: LogKeys, prefix: str = layout.LOG_PREFIX) -> KeyHistory:
    """The log's key history, whose current keys must be ``keys`` (ConfigError naming the key file
    otherwise). A log that has none yet starts one with ``keys`` as its first keys."""
    stored = await read_stored(store, prefix)
    log, clock = keys.log.verifier(), keys.clock.verifier()
    try:
        history = stored.history()
    except ValueError as e:
        raise StorageError(f"the key history under {layout.history(prefix)} is refused: {e}") from e
    if history is None:
        await write_first(store, log, clock, prefix)
        return KeyHistory.start(log, clock)
    current = history.current
    for setting, have, want in (("LOG_KEY_FILE", log, current.log), ("CLOCK_KEY_FILE", clock, current.clock)):
        if have == want:
            continue
        wanted = "none" if want is None else want.to_key()
        retired = next(
            (p for p in history.periods[:-1] if have in (p.log, p.clock)),
            None,
        )
        why = (
            f"was retired at tree size {retired.until_size} by a rotation statement"
            if retired is not None
            else "is not in this log's key history"
        )
        raise ConfigError(
            f"{setting}: the key {have.to_key()} {why}; the log's current key is {wanted}. Point "
            f"{setting} (or DATA_DIR/keys) at the keys `notar keys rotate` made (it keeps the old "
            "files as *.retired-<key id>)",
            setting=setting,
        )
    return history


@dataclass(frozen=True)
class Rotated:
    """A rotation made: the statement, its place in the store and the new keys' files."""

    statement: str
    seq: int
    size: int
    keys: LogKeys
    retired: tuple[Path, Path]


async def handover_size(store: ObjectStore, index_path: Path | None, prefix: str = layout.LOG_PREFIX) -> int:
    """The size the stopped anchor's log stands at (module doc), from its RocksDB at
    ``index_path`` when given (it exists), else from the store; ConfigError when the anchor runs,
    or did not stop cleanly and its RocksDB is not given."""
    published = await _published_size(store, prefix)
    lease = await _lease(store, prefix)
    until = lease.get("until", 0) if lease is not None else 0
    if isinstance(until, int | float) and until > time.time():
        raise ConfigError(
            f"the anchor holds the log's lease ({layout.lease_key(prefix)}): stop it first (notar serve, "
            "or kubectl scale statefulset/notar-anchor --replicas=0), then rotate",
            setting="LOG_KEY_FILE",
        )
    if index_path is not None:
        try:
            index = RocksIndex.open(index_path)
        except StorageError as e:
            raise ConfigError(f"stop the anchor first: {e}", setting="DATA_DIR") from e
        try:
            head = await index.get(state.HEAD)
        finally:
            await index.close()
        size = int.from_bytes(head, "big") if head else 0
        if size < published:
            raise ConfigError(
                f"the RocksDB at {index_path} holds {size} entries, the published log {published}: it "
                "is not this log's anchor's (set DATA_DIR, or run where the anchor's volume is)",
                setting="DATA_DIR",
            )
        return size
    if lease is None:
        if published == 0:
            return 0
        raise ConfigError("the log has no lease object: is the store prefix right?", setting="S3_PREFIX")
    if lease.get("published") != published:
        raise ConfigError(
            f"the anchor did not stop cleanly (its lease does not say that the {published} entries "
            "published are all it signed), and its RocksDB is not here (DATA_DIR): start it and stop it "
            "again, or rotate where its volume is mounted",
            setting="DATA_DIR",
        )
    return published


async def rotate(
    store: ObjectStore,
    keys: LogKeys,
    paths: tuple[Path, Path],
    *,
    origin: str,
    size: int,
    prefix: str = layout.LOG_PREFIX,
) -> Rotated:
    """New log and clock keys for ``origin`` from tree ``size`` on: the statement signed by the
    current log key is stored (the next in the history) between writing the new keys beside the
    old files and moving them in place; the old files stay as ``<file>.retired-<key id>``."""
    history = await load_history(store, keys, prefix)
    stored = await read_stored(store, prefix)
    new = LogKeys(Signer.generate(origin), CosignatureSigner.generate(clock_key_name(origin)))
    rotation = Rotation(origin, size, keys.log.verifier(), new.log.verifier(), new.clock.verifier())
    statement = rotation.sign(keys.log)
    try:
        history.rotate(statement)
    except ValueError as e:
        raise ConfigError(f"the rotation is refused: {e}", setting="LOG_KEY_FILE") from e
    staged = _stage(paths, new)
    seq = len(stored.statements) + 1
    try:
        await add_rotation(store, statement, seq, prefix)
    except ConflictError as e:
        for path in staged:
            path.unlink()
        raise ConfigError(
            f"another rotation was stored meanwhile ({e}): nothing changed", setting="DATA_DIR"
        ) from e
    return Rotated(statement, seq, size, new, _install(paths, staged, keys))


def _stage(paths: tuple[Path, Path], new: LogKeys) -> list[Path]:
    """The new keys written beside the old files (``<file>.new``), before the statement is stored."""
    staged = [path.with_name(path.name + ".new") for path in paths]
    for path in staged:
        if path.exists():
            raise ConfigError(
                f"{path} exists: a rotation was interrupted; move it away first", setting="DATA_DIR"
            )
    for path, key in zip(staged, (new.log.to_key(), new.clock.to_key()), strict=True):
        write_secret(path, key + "\n")
    return staged


def _install(paths: tuple[Path, Path], staged: list[Path], old: LogKeys) -> tuple[Path, Path]:
    """The new keys moved in place of the old, which stay as ``<file>.retired-<key id>``."""
    retired = []
    for path, key_id, staged_path in zip(paths, (old.log.key_id, old.clock.key_id), staged, strict=True):
        keep = path.with_name(f"{path.name}.retired-{key_id:08x}")
        try:
            os.replace(path, keep)
            os.replace(staged_path, path)
        except OSError as e:
            raise ConfigError(
                f"the rotation statement is stored, but the key files could not be moved ({e}): the "
                f"new keys are in {staged[0]} and {staged[1]}; put them where LOG_KEY_FILE and "
                "CLOCK_KEY_FILE point before the anchor starts",
                setting="LOG_KEY_FILE",
            ) from e
        retired.append(keep)
    return retired[0], retired[1]


async def _published_size(store: ObjectStore, prefix: str) -> int:
    try:
        note = await store.get(layout.checkpoint_key(prefix))
    except NotFoundError:
        return 0
    return parse_checkpoint(parse_note(note).text).size


async def _lease(store: ObjectStore, prefix: str) -> dict[str, object] | None:
    try:
        lease = orjson.loads(await store.get(layout.lease_key(prefix)))
    except NotFoundError:
        return None
    if not isinstance(lease, dict):
        where = layout.lease_key(prefix)
        raise StorageError(f"the lease {where} is malformed", key=where)
    return lease
