"""A frozen shard's tenant index in the object store (SPEC §10): immutable sorted files that
look-ups read with range GETs, tombstones for erasure, and the compaction that rewrites the files
without the erased rows (docs/shards.md).

When a shard freezes (freeze.py) the rows of its RocksDB tenant index are exported here, as
tenant_index.py made them (keyed names, salts encrypted under the index key: the files reveal no
more than a backup of RocksDB does), and the anchor's disk no longer holds them; the batches' signed
times go with them (frozen_times.py), so that look-ups still carry each one's time. Format
``notar.frozen-index.v1``::

    record = name (16) || u64be(index) || sealed salt (16)          40 bytes
    file   = record* || fence                                       records sorted by (name, index)
    fence  = the name of the first record of each block of `block_rows` records, 16 bytes each

A file is cut only where the name changes, so the rows of one name are all in one file: the one
whose [first, last] names cover it. The manifest (``layout.frozen_manifest_key``, JSON) lists the
files by first name with their row counts and SHA-256, the log's final checkpoint and a
generation that each compaction increments.

A look-up costs two GETs: the name's tombstone (absent, normally), then one range GET of the
blocks that the file's fence says may hold the name (the fence itself is read once per file and
kept, at most `cached` files' fences: 256 KiB each at the default sizes). The manifest is read
once and again whenever a file it names is gone (a compaction replaced it).

Erasure writes the name's tombstone (``layout.frozen_tombstone_key``) at once; look-ups read it
before the rows, so an erased row is never returned again. `compact` rewrites every file holding a
tombstoned name without its rows, replaces the manifest (conditionally: two compactions cannot both
win), deletes the old files, then the tombstones. A reader that checked a tombstone before it was
deleted never sees the rows; one that checks after finds the old files gone and rereads the
manifest. Bound: the bytes of an erased row leave the store at the end of the first compaction pass
that starts after its tombstone, i.e. within ``interval + one pass`` (freeze.py runs one every
FROZEN_COMPACT_S; a pass rewrites at most one file, `file_rows` rows, per erased name).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import logging
import operator
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, replace

import orjson

from merkle.digests import Digest
from services.anchor.frozen_times import FrozenTimes, export_times
from services.anchor.tenant_index import NAME_SIZE, ROW_KEY_SIZE, SALT_SIZE, TENANT, TenantIndex
from services.model import Found
from services.published import layout
from storage.base import Index, ObjectStore
from storage.errors import CorruptedError, NotFoundError

log = logging.getLogger("notar.anchor")
FORMAT = "notar.frozen-index.v1"
RECORD = NAME_SIZE + 8 + SALT_SIZE
BLOCK_ROWS = 1024  # 40 KiB a block: one look-up reads one or two of them
FILE_ROWS = 1 << 24  # 640 MiB a file (fence 256 KiB): what one erasure makes a compaction rewrite
CACHED_FILES = 64
CHUNK_ROWS = 16 * 1024  # records per piece of a file read or written in a stream


@dataclass(frozen=True, slots=True)
class FrozenFile:
    file: str  # 32 hex digits: layout.frozen_file_key
    rows: int
    first: bytes
    last: bytes
    sha256: str

    def blocks(self, block_rows: int) -> int:
        return -(-self.rows // block_rows)


@dataclass(frozen=True)
class FrozenManifest:
    origin: str
    size: int  # the final tree size
    checkpoint: str  # the final checkpoint, as published
    block_rows: int
    generation: int
    files: tuple[FrozenFile, ...]  # by first name

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def file_for(self, name: bytes) -> FrozenFile | None:
        """The one file that may hold rows of `name`."""
        at = bisect.bisect_right([f.first for f in self.files], name) - 1
        return self.files[at] if at >= 0 and name <= self.files[at].last else None

    def to_json(self) -> bytes:
        files = [
            {"file": f.file, "rows": f.rows, "first": f.first.hex(), "last": f.last.hex(), "sha256": f.sha256}
            for f in self.files
        ]
        return orjson.dumps(
            {
                "format": FORMAT,
                "origin": self.origin,
                "size": self.size,
                "checkpoint": self.checkpoint,
                "block_rows": self.block_rows,
                "generation": self.generation,
                "files": files,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, data: bytes) -> FrozenManifest:
        """CorruptedError when `data` is not a manifest of this format."""
        try:
            obj = orjson.loads(data)
            if obj["format"] != FORMAT:
                raise ValueError(f"format {obj['format']!r}, not {FORMAT!r}")
            files = tuple(
                FrozenFile(
                    str(f["file"]),
                    int(f["rows"]),
                    bytes.fromhex(f["first"]),
                    bytes.fromhex(f["last"]),
                    str(f["sha256"]),
                )
                for f in obj["files"]
            )
            manifest = cls(
                str(obj["origin"]),
                int(obj["size"]),
                str(obj["checkpoint"]),
                int(obj["block_rows"]),
                int(obj["generation"]),
                files,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CorruptedError(f"not a frozen index manifest: {e}") from e
        if manifest.block_rows < 1 or [f.first for f in files] != sorted(f.first for f in files):
            raise CorruptedError("a frozen index manifest with files out of order or no block size")
        return manifest


class _Runs:
    """Sorted 40-byte records from an async stream of lists of them (pages), taken in runs: the
    checks and copies are per page, not per record (an index holds billions)."""

    def __init__(self, pages: AsyncIterator[list[bytes]]) -> None:
        self._pages, self._page, self._at, self._last = pages, [b""], 1, b""

    async def more(self) -> bool:
        while self._at >= len(self._page):
            page = await anext(self._pages, None)
            if page is None:
                return False
            if page and (
                set(map(len, page)) != {RECORD}
                or page[0] <= self._last
                or not all(map(operator.lt, page, itertools.islice(page, 1, None)))
            ):
                raise ValueError("frozen index records must be 40 bytes, in ascending order, each once")
            self._page, self._at, self._last = page, 0, page[-1] if page else self._last
        return True

    async def take(self, most: int) -> list[bytes]:
        """At most `most` records (fewer at the end of a page); [] at the end."""
        if not await self.more():
            return []
        run = self._page[self._at : self._at + most]
        self._at += len(run)
        return run

    async def take_name(self, name: bytes) -> list[bytes]:
        """The next records of `name` (a file's last name: its rows are never split)."""
        run = []
        while await self.more() and self._page[self._at][:NAME_SIZE] == name:
            run.append(self._page[self._at])
            self._at += 1
        return run


async def write_files(
    store: ObjectStore,
    pages: AsyncIterator[list[bytes]],
    *,
    prefix: str,
    block_rows: int = BLOCK_ROWS,
    file_rows: int = FILE_ROWS,
) -> list[FrozenFile]:
    """Write the sorted records of `pages` as immutable files of about `file_rows` rows (never
    splitting a name); the files, in order. ValueError when they are not sorted 40-byte records."""
    runs, files = _Runs(pages), []
    while await runs.more():
        files.append(
            await _write_file(store, runs, prefix=prefix, block_rows=block_rows, file_rows=file_rows)
        )
    return files


async def _write_file(
    store: ObjectStore, runs: _Runs, *, prefix: str, block_rows: int, file_rows: int
) -> FrozenFile:
    digest, fence = hashlib.sha256(), bytearray()
    rows, first, last = 0, b"", b""

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal rows, first, last
        piece: list[bytes] = []
        while True:
            run = await (runs.take(file_rows - rows) if rows < file_rows else runs.take_name(last))
            if run:
                fence.extend(b"".join([r[:NAME_SIZE] for r in run[(-rows) % block_rows :: block_rows]]))
                first, last, rows = first or run[0][:NAME_SIZE], run[-1][:NAME_SIZE], rows + len(run)
                piece += run
            if piece and (not run or len(piece) >= CHUNK_ROWS):
                data = b"".join(piece)
                digest.update(data)
                yield data
                piece = []
            if not run:
                break
        digest.update(fence)
        yield bytes(fence)

    file = os.urandom(16).hex()
    await store.put_stream(layout.frozen_file_key(file, prefix), chunks(), immutable=True)
    return FrozenFile(file, rows, first, last, digest.hexdigest())


async def _index_records(index: Index) -> AsyncIterator[list[bytes]]:
    page: list[bytes] = []
    async for key, value in index.scan(TENANT):
        page.append(key[len(TENANT) :] + value)
        if len(page) == CHUNK_ROWS:
            yield page
            page = []
    yield page


async def export(
    index: Index,
    store: ObjectStore,
    *,
    prefix: str,
    origin: str,
    checkpoint: str,
    size: int,
    block_rows: int = BLOCK_ROWS,
    file_rows: int = FILE_ROWS,
) -> FrozenManifest:
    """Write every tenant-index row of `index` (RocksDB) as the frozen index of the log under
    `prefix`, then its manifest, which says the export is complete; the manifest. Again after a
    crash: the files of an export that wrote no manifest are deleted first. An existing manifest is
    returned as it is (the index may have lost rows to erasure since: the tombstones say which)."""
    try:
        return FrozenManifest.from_json(await store.get(layout.frozen_manifest_key(prefix)))
    except NotFoundError:
        pass
    async for key in store.list(layout.frozen_files(prefix)):
        await store.delete(key)
    try:
        files = await write_files(
            store, _index_records(index), prefix=prefix, block_rows=block_rows, file_rows=file_rows
        )
    except ValueError as e:  # RocksDB's scan is sorted: a row of another shape is not a tenant row
        raise CorruptedError(f"the tenant index of {origin} cannot be exported: {e}") from e
    await export_times(index, store, prefix=prefix)  # the batches' times: look-ups carry them
    manifest = FrozenManifest(origin, size, checkpoint, block_rows, 0, tuple(files))
    await store.put_if_version(layout.frozen_manifest_key(prefix), manifest.to_json(), None)
    log.info("exported the tenant index of %s: %d rows in %d files", origin, manifest.rows, len(files))
    return manifest


async def _stored_manifest(store: ObjectStore, prefix: str) -> FrozenManifest:
    """The frozen index's manifest; NotFoundError while the log is not frozen."""
    return FrozenManifest.from_json(await store.get(layout.frozen_manifest_key(prefix)))


class FrozenIndex:
    """The tenant index of a frozen log, read from the store: `lookup` and `forget` as the
    anchor's (`services.model.Lookup`). Any number of processes may read one at once."""

    def __init__(
        self, store: ObjectStore, *, tenant_index: TenantIndex, prefix: str, cached: int = CACHED_FILES
    ) -> None:
        self._store, self._rows, self._prefix, self._cached = store, tenant_index, prefix, cached
        self._manifest: FrozenManifest | None = None
        self._fences: OrderedDict[str, bytes] = OrderedDict()
        self._times = FrozenTimes(store, prefix=prefix)

    def __repr__(self) -> str:
        return f"FrozenIndex({self._prefix!r})"

    async def manifest(self, *, reload: bool = False) -> FrozenManifest:
        if self._manifest is None or reload:
            self._manifest = await _stored_manifest(self._store, self._prefix)
        return self._manifest

    async def lookup(
        self, tenant: str, digest: Digest, *, limit: int | None = None, after: int | None = None
    ) -> list[Found]:
        """`tenant`'s notarizations of `digest`, earliest first, as `Sequencer.lookup` (with
        their batches' times: frozen_times.py); none once erased. ValueError when the tenant name
        is not valid."""
        name = self._rows.prefix(tenant, digest.multihash)[len(TENANT) :]
        if await self._erased(name):
            return []
        found = [r for r in await self._find(name) if after is None or r[0] > after]
        return await self._times.timed(found if limit is None else found[:limit])

    async def forget(self, tenant: str, digest: Digest) -> int:
        """Erase `tenant`'s notarizations of `digest`: their tombstone is written, look-ups honour
        it at once, the next compaction rewrites the file without them. How many there were (0:
        none, or erased already; nothing written then)."""
        name = self._rows.prefix(tenant, digest.multihash)[len(TENANT) :]
        if await self._erased(name):
            return 0
        rows = await self._find(name)
        if rows:
            await self._store.put_if_absent(layout.frozen_tombstone_key(name.hex(), self._prefix), b"")
        return len(rows)

    async def holds(self, name: bytes) -> bool:
        """Whether any row of `name` is in the files (tombstoned or not)."""
        return bool(await self._find(name))

    async def _erased(self, name: bytes) -> bool:
        try:
            await self._store.get(layout.frozen_tombstone_key(name.hex(), self._prefix))
        except NotFoundError:
            return False
        return True

    async def _find(self, name: bytes) -> list[tuple[int, bytes]]:
        """(index, salt) of the rows of `name` in the files; the manifest is read again once when
        a file it names is gone (a compaction replaced it)."""
        for reload in (False, True):
            manifest = await self.manifest(reload=reload)
            file = manifest.file_for(name)
            if file is None:
                return []
            try:
                data = await self._blocks(file, manifest.block_rows, name)
            except NotFoundError:
                if reload:
                    raise
                continue
            return [
                self._rows.decode(TENANT + r[: ROW_KEY_SIZE - 1], r[ROW_KEY_SIZE - 1 :])
                for r in _matching(data, name)
            ]
        return []  # not reached: the second pass returns or raises

    async def _blocks(self, file: FrozenFile, block_rows: int, name: bytes) -> bytes:
        """The bytes of the blocks of `file` that may hold rows of `name` (one range GET)."""
        fence = await self._fence(file, block_rows)
        blocks = range(len(fence) // NAME_SIZE)
        first_of = _names(fence)
        lo = max(0, bisect.bisect_left(blocks, name, key=first_of) - 1)
        hi = bisect.bisect_right(blocks, name, key=first_of)
        start, end = lo * block_rows * RECORD, min(hi * block_rows, file.rows) * RECORD
        if start >= end:
            return b""
        data = await self._store.get_range(layout.frozen_file_key(file.file, self._prefix), start, end)
        if len(data) != end - start:
            raise CorruptedError(f"frozen index file {file.file} is shorter than its manifest says")
        return data

    async def _fence(self, file: FrozenFile, block_rows: int) -> bytes:
        """The file's fence as it is stored (one bytes object: 256 KiB for a full file)."""
        fence = self._fences.get(file.file)
        if fence is None:
            start = file.rows * RECORD
            size = file.blocks(block_rows) * NAME_SIZE
            data = await self._store.get_range(
                layout.frozen_file_key(file.file, self._prefix), start, start + size
            )
            if len(data) != size:
                raise CorruptedError(
                    f"frozen index file {file.file} has a fence of {len(data)} bytes, not {size}"
                )
            fence = self._fences[file.file] = data
            while len(self._fences) > self._cached:
                self._fences.popitem(last=False)
        self._fences.move_to_end(file.file)
        return fence


def _names(data: bytes, stride: int = NAME_SIZE) -> Callable[[int], bytes]:
    """The name at the start of the i-th `stride`-byte record of `data`, for bisection by key."""
    return lambda i: data[i * stride : i * stride + NAME_SIZE]


def _matching(data: bytes, name: bytes) -> list[bytes]:
    """The records of `name` in `data` (sorted 40-byte records), by bisection."""
    n = len(data) // RECORD
    at = bisect.bisect_left(range(n), name, key=_names(data, RECORD))
    found = []
    while at < n and data[at * RECORD : at * RECORD + NAME_SIZE] == name:
        found.append(data[at * RECORD : (at + 1) * RECORD])
        at += 1
    return found


async def tombstoned(store: ObjectStore, prefix: str) -> set[bytes]:
    """The names erased in the frozen index under `prefix` and not compacted yet."""
    names = set()
    async for key in store.list(layout.frozen_tombstones(prefix)):
        try:
            names.add(bytes.fromhex(key.rsplit("/", 1)[1]))
        except ValueError:
            log.warning("%s is not a tombstone of a frozen index: skipped", key)
    return names


async def _read_file(
    store: ObjectStore, file: FrozenFile, block_rows: int, prefix: str
) -> AsyncIterator[list[bytes]]:
    """The records of `file`, streamed a page at a time; CorruptedError (after the last) when its
    bytes do not match the manifest's SHA-256."""
    key, digest = layout.frozen_file_key(file.file, prefix), hashlib.sha256()
    end, records = file.rows * RECORD + file.blocks(block_rows) * NAME_SIZE, file.rows * RECORD
    for start in range(0, end, CHUNK_ROWS * RECORD):
        data = await store.get_range(key, start, min(end, start + CHUNK_ROWS * RECORD))
        digest.update(data)
        yield [data[at : at + RECORD] for at in range(0, min(len(data), records - start), RECORD)]
    if digest.hexdigest() != file.sha256:
        raise CorruptedError(f"frozen index file {key} does not match its manifest's SHA-256")


async def _without(pages: AsyncIterator[list[bytes]], names: Collection[bytes]) -> AsyncIterator[list[bytes]]:
    async for page in pages:
        yield [r for r in page if r[:NAME_SIZE] not in names]


async def compact(store: ObjectStore, *, prefix: str, file_rows: int = FILE_ROWS) -> int:
    """One pass: rewrite every file holding a tombstoned name without its rows, replace the
    manifest, delete the old files and then the tombstones this pass read; how many rows went.
    0 when the log has no frozen index. ConflictError when another compaction replaced the
    manifest meanwhile (this one's files are deleted; the tombstones wait for the next pass)."""
    names = await tombstoned(store, prefix)
    if not names:
        return 0
    try:
        current = await store.get_versioned(layout.frozen_manifest_key(prefix))
    except NotFoundError:
        return 0
    manifest = FrozenManifest.from_json(current.data)
    doomed = {f.file: f for n in names if (f := manifest.file_for(n)) is not None}
    made: dict[str, list[FrozenFile]] = {}
    try:
        for old in doomed.values():
            records = _without(_read_file(store, old, manifest.block_rows, prefix), names)
            try:
                made[old.file] = await write_files(
                    store, records, prefix=prefix, block_rows=manifest.block_rows, file_rows=file_rows
                )
            except ValueError as e:  # records out of order: the file is not what was exported
                raise CorruptedError(f"frozen index file {old.file}: {e}") from e
        files = tuple(g for f in manifest.files for g in made.get(f.file, [f]))
        new = replace(manifest, generation=manifest.generation + 1, files=files)
        await store.put_if_version(layout.frozen_manifest_key(prefix), new.to_json(), current.version)
    except BaseException:
        for written in made.values():
            for f in written:
                await store.delete(layout.frozen_file_key(f.file, prefix))
        raise
    for old in doomed.values():
        await store.delete(layout.frozen_file_key(old.file, prefix))
    for name in names:
        await store.delete(layout.frozen_tombstone_key(name.hex(), prefix))
    removed = manifest.rows - new.rows
    log.info(
        "compacted the frozen index under %s: %d rows of %d names rewritten away in %d files",
        prefix,
        removed,
        len(names),
        len(doomed),
    )
    return removed
