"""Backups of the anchor's RocksDB to the object store, and their restore (docs/backups.md).

The tenant index in RocksDB holds the only copy of the salts: the log publishes commitments, and
a receipt cannot be issued again without its salt (SPEC §1). A backup is a RocksDB checkpoint (a
consistent snapshot: the memtable flushed, the table files hard-linked), uploaded file by file,
streamed (multipart on S3), under the log's private prefix (``layout.backups``), with its
manifest written last: a backup without a manifest is incomplete, never restored, and deleted by
the next pruning, which also keeps only the newest ``keep`` complete ones. The files are
RocksDB's own, the rows encrypted under the index key (tenant_index.py); the index key is never
copied (docs/privacy.md).

A restore downloads a backup into an empty ``DATA_DIR/index``, checks every file's size and
SHA-256, marks the index restored (``state.RESTORED``) and drops its lease holder id: the anchor
that starts on it waits out any other holder's lease, takes the published log as it is
(recovery.py: the entries sequenced after the backup keep their place, their salts are lost and
recorded as such) and replays the erasure journal (erasure.py) before it serves a look-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from services.anchor import state
from services.anchor.erasure import Eraser
from services.published import layout
from storage.base import Index, ObjectStore
from storage.errors import ConfigError, NotarError

log = logging.getLogger("notar.anchor")
FORMAT = "notar.backup.v1"
CHUNK = 8 * 1024 * 1024  # bytes read, uploaded and downloaded at a time
RETRY_S = 300.0  # after a failed backup (or the interval, when shorter)


class BackupError(NotarError):
    """A backup that cannot be restored: incomplete, corrupted, or not of this log."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A complete backup: ``entries`` is the index's head when it was taken (at least)."""

    id: str
    created: float
    origin: str
    entries: int
    files: tuple[BackupFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        files = [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in self.files]
        return orjson.dumps(
            {"format": FORMAT, "id": self.id, "created": self.created, "origin": self.origin,
             "entries": self.entries, "files": files},
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """ValueError when ``data`` is not a backup manifest of this format."""
        try:
            obj = orjson.loads(data)
            if obj["format"] != FORMAT:
                raise ValueError(f"format {obj['format']!r}, not {FORMAT!r}")
            files = tuple(BackupFile(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in obj["files"])
            return cls(str(obj["id"]), float(obj["created"]), str(obj["origin"]), int(obj["entries"]), files)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a notar backup manifest: {e}") from e


def backup_id(t: float) -> str:
    """``YYYYMMDDTHHMMSSmmmZ`` of Unix time ``t``: ids sort as the times they name."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int(t * 1000) % 1000:03d}Z"


async def list_backups(
    store: ObjectStore, prefix: str = layout.LOG_PREFIX
) -> tuple[list[Manifest], set[str]]:
    """The complete backups of the log under ``prefix``, oldest first, and the ids of the
    incomplete ones (no manifest, or one that cannot be read)."""
    ids: set[str] = set()
    manifests: list[Manifest] = []
    async for key in store.list(layout.backups(prefix)):
        backup = layout.backup_id_of(key, prefix)
        ids.add(backup)
        if key == layout.backup_manifest_key(backup, prefix):
            try:
                manifests.append(Manifest.from_json(await store.get(key)))
            except ValueError as e:
                log.warning("backup %s has an unreadable manifest: %s", backup, e)
    manifests.sort(key=lambda m: m.id)
    return manifests, ids - {m.id for m in manifests}


@dataclass
class BackupStats:
    last_success: float | None = None  # Unix time of the newest complete backup
    size: int = 0  # its bytes
    failures: int = 0  # backups (or prunings) that failed since the process started


class Backups:
    """Takes, prunes and schedules the backups of one anchor's index; ``run`` is its task."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        index: Index,
        origin: str,
        scratch: Path,
        keep: int,
        interval_s: float,
        prefix: str = layout.LOG_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._index, self._origin = store, index, origin
        self._scratch, self._keep, self._interval_s = scratch, keep, interval_s
        self._prefix, self._clock = prefix, clock
        self.stats = BackupStats()

    @property
    def interval_s(self) -> float:
        return self._interval_s

    async def take(self) -> Manifest:
        """Checkpoint the index into the scratch directory, upload its files, then the manifest."""
        created = self._clock()
        backup = backup_id(created)
        head = await self._index.get(state.HEAD)
        await asyncio.to_thread(_clear, self._scratch)
        await self._index.checkpoint(self._scratch)
        try:
            paths = sorted(p for p in self._scratch.iterdir() if p.is_file())
            files = tuple([await self._upload(backup, p) for p in paths])
        finally:
            await asyncio.to_thread(_clear, self._scratch)
        entries = int.from_bytes(head, "big") if head else 0
        manifest = Manifest(backup, created, self._origin, entries, files)
        await self._store.put_if_absent(layout.backup_manifest_key(backup, self._prefix), manifest.to_json())
        self.stats.last_success, self.stats.size = manifest.created, manifest.size
        log.info("backed up the index (%d entries, %d bytes) as %s", entries, manifest.size, backup)
        return manifest

    async def _upload(self, backup: str, path: Path) -> BackupFile:
        digest = hashlib.sha256()

        async def chunks() -> AsyncIterator[bytes]:
            f = await asyncio.to_thread(path.open, "rb")
            try:
                while data := await asyncio.to_thread(f.read, CHUNK):
                    digest.update(data)
                    yield data
            finally:
                f.close()

        key = layout.backup_file_key(backup, path.name, self._prefix)
        size = await self._store.put_stream(key, chunks(), immutable=True)
        return BackupFile(path.name, size, digest.hexdigest())

    async def prune(self) -> list[str]:
        """Delete all but the newest ``keep`` complete backups, and every incomplete one (a
        manifest goes first: a backup being deleted is never restored half); the ids deleted."""
        complete, incomplete = await list_backups(self._store, self._prefix)
        doomed = [m.id for m in complete[: max(0, len(complete) - self._keep)]] + sorted(incomplete)
        for backup in doomed:
            await self._store.delete(layout.backup_manifest_key(backup, self._prefix))
            async for key in self._store.list(f"{layout.backups(self._prefix)}{backup}/"):
                await self._store.delete(key)
        return doomed

    async def run(self) -> None:
        """Back up when one is due (the newest is an interval old, or there is none), then every
        interval; prune after each. A failure is counted and retried after ``RETRY_S``."""
        try:
            complete, _ = await list_backups(self._store, self._prefix)
        except NotarError as e:
            log.warning("cannot list the backups of the index: %s", e)
            complete = []
        if complete:
            self.stats.last_success, self.stats.size = complete[-1].created, complete[-1].size
        due = (self.stats.last_success or 0.0) + self._interval_s
        while True:
            await asyncio.sleep(max(0.0, due - self._clock()))
            try:
                await self.take()
                await self.prune()
                due = self._clock() + self._interval_s
            except (NotarError, OSError) as e:
                self.stats.failures += 1
                retry = min(RETRY_S, self._interval_s)
                log.error("backing up the index failed, retrying in %.0f s: %s", retry, e)
                due = self._clock() + retry


def _clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _empty(path: Path) -> bool:
    """``path`` is missing or an empty directory."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


async def _holds_nothing(target: Path, open_index: Callable[[Path], Index]) -> bool:
    """``target`` is missing, empty, or an index that never assigned an entry (the one an anchor
    made when it started on a new volume, and refused to run on). StorageError when it is in use."""
    if await asyncio.to_thread(_empty, target):
        return True
    index = open_index(target)
    try:
        return {k async for k, _ in index.scan(b"", limit=len(_FRESH) + 1)} <= _FRESH
    finally:
        await index.close()


_FRESH = frozenset({state.HOLDER, state.SIGNED_TIME})
"""What an anchor writes into a new index before it refuses a published log it has no part of."""


def _install(work: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)  # nothing in it: checked before the download
    work.rename(target)


async def restore(
    store: ObjectStore,
    target: Path,
    *,
    open_index: Callable[[Path], Index],
    backup: str | None = None,
    prefix: str = layout.LOG_PREFIX,
) -> Manifest:
    """Restore the newest complete backup (or ``backup``) into the directory ``target``, which
    must be missing or empty (ConfigError otherwise), and mark it restored; the manifest.
    BackupError when a file does not match the manifest; nothing is left at ``target`` then."""
    if not await _holds_nothing(target, open_index):
        raise ConfigError(
            f"{target} is not empty: a restore never overwrites an index that has assigned entries. "
            "Stop the anchor and move it away first (it may be the only copy of salts newer than "
            "any backup)",
            setting="DATA_DIR",
        )
    complete, _ = await list_backups(store, prefix)
    if not complete:
        raise ConfigError(f"no complete backup under {layout.backups(prefix)} in this store", setting="STORE")
    chosen = complete[-1] if backup is None else next((m for m in complete if m.id == backup), None)
    if chosen is None:
        known = ", ".join(m.id for m in complete)
        raise ConfigError(f"no complete backup {backup!r}; the complete ones: {known}", setting="FROM")
    work = target.with_name(target.name + ".restoring")
    await asyncio.to_thread(_clear, work)
    work.mkdir(mode=0o700, parents=True)
    try:
        for f in chosen.files:
            await _download(store, layout.backup_file_key(chosen.id, f.name, prefix), work / f.name, f)
        index = open_index(work)
        try:
            marker = orjson.dumps({"backup": chosen.id, "entries": chosen.entries})
            await index.write_batch({state.RESTORED: marker}, [state.HOLDER], sync=True)
        finally:
            await index.close()
        await asyncio.to_thread(_install, work, target)
    except BaseException:
        await asyncio.to_thread(_clear, work)
        raise
    return chosen


async def _download(store: ObjectStore, key: str, path: Path, want: BackupFile) -> None:
    digest, size = hashlib.sha256(), 0
    f: BinaryIO = await asyncio.to_thread(path.open, "xb")
    try:
        while data := await store.get_range(key, size, size + CHUNK):
            digest.update(data)
            size += len(data)
            await asyncio.to_thread(f.write, data)
            if len(data) < CHUNK:
                break
        await asyncio.to_thread(f.flush)
        await asyncio.to_thread(os.fsync, f.fileno())
    finally:
        f.close()
    if size != want.size or digest.hexdigest() != want.sha256:
        raise BackupError(
            f"{key} is {size} bytes with SHA-256 {digest.hexdigest()}, but its manifest says "
            f"{want.size} bytes with {want.sha256}: this backup is damaged; restore another (--from)"
        )


async def after_restore(index: Index, eraser: Eraser) -> None:
    """Once the sequencer started on a restored index: erase again what the erasure journal
    holds (rows erased after the backup came back with it), then drop the restored mark."""
    marker = await index.get(state.RESTORED)
    if marker is None:
        return
    rows = await eraser.replay()
    await index.write_batch({}, [state.RESTORED], sync=True)
    log.warning("the index restored from backup %s is in use; erased again: %d row(s)",
                orjson.loads(marker).get("backup"), rows)
