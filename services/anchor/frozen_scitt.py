"""A frozen shard's SCITT registrations in the object store (SPEC §10, §12): the rows
``state.ENTRY`` (entry -> index) and ``state.RECEIPT`` (entry -> COSE receipt) of its RocksDB as
immutable sorted files, so that `GET /entries/{id}` and a registration of the same statement
again still find a statement's first receipt once the shard's RocksDB is deleted.

When a shard freezes (freeze.py, after the tenant index) `export` writes them; any anchor reads
them (`FrozenScitt`, held by services.anchor.frozen_shards). Entries and receipts are public
(the receipt is what the registration answered), so nothing is sealed; they are kept under the
log's private prefix as the tenant index is. Format ``notar.frozen-scitt.v1``::

    file   = receipt* || record* || fence
    record = entry (33) || u64be(index) || u64be(offset of its receipt) || u32be(length)   53 bytes
    fence  = the entry of the first record of each block of `block_rows` records, 33 bytes each

Records are sorted by entry, each entry once; the manifest (``layout.frozen_scitt_manifest_key``,
JSON) lists the files by first entry with their row counts, where their records start and their
SHA-256. A look-up reads the file's fence once (kept), then one range GET of a block of records
and one of the receipt. No erasure: a registration is not a tenant's private row.

An entry whose receipt was lost (receipts are written unsynced: registrar.py) gets it made again
from the published log while exporting, by the freezing anchor, which still holds the log key.
Again after a crash: the files of an export that wrote no manifest are deleted and written anew.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import orjson

from services.anchor import state
from services.published import layout
from storage.base import Index, ObjectStore
from storage.errors import CorruptedError, NotFoundError

log = logging.getLogger("notar.anchor")
FORMAT = "notar.frozen-scitt.v1"
ENTRY = 33
RECORD = ENTRY + 8 + 8 + 4
BLOCK_ROWS = 256  # 13 KiB of records a look-up reads
FILE_ROWS = 1 << 20  # the records of one file are held in memory while its receipts stream out
CACHED_FILES = 64
PAGE = 4096  # entries read from RocksDB at once (their receipts in one multi_get)

Remake = Callable[[bytes, int], Awaitable[bytes]]
"""The receipt of a logged entry (its index given) whose kept receipt was lost."""


@dataclass(frozen=True, slots=True)
class ScittFile:
    file: str  # 32 hex digits: layout.frozen_scitt_file_key
    rows: int
    first: bytes
    last: bytes
    records_at: int  # the receipts come first: where the records start
    sha256: str


@dataclass(frozen=True)
class ScittManifest:
    origin: str
    size: int  # the final tree size
    block_rows: int
    files: tuple[ScittFile, ...]  # by first entry

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def file_for(self, entry: bytes) -> ScittFile | None:
        at = bisect.bisect_right([f.first for f in self.files], entry) - 1
        return self.files[at] if at >= 0 and entry <= self.files[at].last else None

    def to_json(self) -> bytes:
        files = [
            {
                "file": f.file,
                "rows": f.rows,
                "first": f.first.hex(),
                "last": f.last.hex(),
                "records_at": f.records_at,
                "sha256": f.sha256,
            }
            for f in self.files
        ]
        obj = {"format": FORMAT, "origin": self.origin, "size": self.size, "block_rows": self.block_rows}
        return orjson.dumps(obj | {"files": files}, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> ScittManifest:
        """CorruptedError when `data` is not a manifest of this format."""
        try:
            obj = orjson.loads(data)
            if obj["format"] != FORMAT:
                raise ValueError(f"format {obj['format']!r}, not {FORMAT!r}")
            files = tuple(
                ScittFile(
                    str(f["file"]),
                    int(f["rows"]),
                    bytes.fromhex(f["first"]),
                    bytes.fromhex(f["last"]),
                    int(f["records_at"]),
                    str(f["sha256"]),
                )
                for f in obj["files"]
            )
            manifest = cls(str(obj["origin"]), int(obj["size"]), int(obj["block_rows"]), files)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CorruptedError(f"not a frozen SCITT manifest: {e}") from e
        if manifest.block_rows < 1 or [f.first for f in files] != sorted(f.first for f in files):
            raise CorruptedError("a frozen SCITT manifest with files out of order or no block size")
        return manifest


async def _registrations(index: Index, remake: Remake) -> AsyncIterator[tuple[bytes, int, bytes]]:
    """(entry, index, receipt) of every SCITT entry of `index`, by entry."""
    page: list[tuple[bytes, int]] = []

    async def with_receipts() -> list[tuple[bytes, int, bytes]]:
        kept = await index.multi_get([state.receipt_key(e) for e, _ in page])
        return [
            (e, i, r if r is not None else await remake(e, i)) for (e, i), r in zip(page, kept, strict=True)
        ]

    async for key, value in index.scan(state.ENTRY):
        entry = key[len(state.ENTRY) :]
        if len(entry) != ENTRY or len(value) != 8:
            raise CorruptedError(f"a SCITT entry row of {len(entry)} + {len(value)} bytes, not {ENTRY} + 8")
        page.append((entry, int.from_bytes(value, "big")))
        if len(page) == PAGE:
            for row in await with_receipts():
                yield row
            page = []
    for row in await with_receipts():
        yield row


async def _write_file(
    store: ObjectStore,
    rows: AsyncIterator[tuple[bytes, int, bytes]],
    first_row: tuple[bytes, int, bytes],
    *,
    prefix: str,
    block_rows: int,
    file_rows: int,
) -> tuple[ScittFile, tuple[bytes, int, bytes] | None]:
    """One file of `first_row` and at most `file_rows - 1` more of `rows`; the file, and the row
    read past its end (None at the end)."""
    digest, records = hashlib.sha256(), bytearray()
    count, offset, first, last = 0, 0, first_row[0], first_row[0]
    after: tuple[bytes, int, bytes] | None = None

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal count, offset, last, after
        row: tuple[bytes, int, bytes] | None = first_row
        while row is not None:
            entry, index, receipt = row
            records.extend(entry + state.u64(index) + state.u64(offset) + len(receipt).to_bytes(4, "big"))
            count, offset, last = count + 1, offset + len(receipt), entry
            digest.update(receipt)
            yield receipt
            row = await anext(rows, None)
            if row is not None and count == file_rows:
                after, row = row, None
        fence = b"".join(records[i * RECORD : i * RECORD + ENTRY] for i in range(0, count, block_rows))
        digest.update(records + fence)
        yield bytes(records) + fence

    file = os.urandom(16).hex()
    await store.put_stream(layout.frozen_scitt_file_key(file, prefix), chunks(), immutable=True)
    return ScittFile(file, count, first, last, offset, digest.hexdigest()), after


async def export(
    index: Index,
    store: ObjectStore,
    remake: Remake,
    *,
    prefix: str,
    origin: str,
    size: int,
    block_rows: int = BLOCK_ROWS,
    file_rows: int = FILE_ROWS,
) -> ScittManifest:
    """Write every SCITT entry of `index` (RocksDB) with its receipt (`remake` for a lost one) as
    the frozen SCITT files of the log under `prefix`, then their manifest; the manifest. An
    existing manifest is returned as it is; the files of an export that wrote none are deleted
    first (a crash cut it short)."""
    try:
        return ScittManifest.from_json(await store.get(layout.frozen_scitt_manifest_key(prefix)))
    except NotFoundError:
        pass
    async for key in store.list(layout.frozen_scitt_files(prefix)):
        await store.delete(key)
    rows, files = _registrations(index, remake), []
    row = await anext(rows, None)
    while row is not None:
        file, row = await _write_file(
            store, rows, row, prefix=prefix, block_rows=block_rows, file_rows=file_rows
        )
        files.append(file)
    manifest = ScittManifest(origin, size, block_rows, tuple(files))
    await store.put_if_version(layout.frozen_scitt_manifest_key(prefix), manifest.to_json(), None)
    log.info("exported the SCITT registrations of %s: %d in %d files", origin, manifest.rows, len(files))
    return manifest


class FrozenScitt:
    """The SCITT registrations of a frozen log, read from the store. Any number of processes may
    read them at once. A log frozen before they were exported has none here."""

    def __init__(self, store: ObjectStore, *, prefix: str, cached: int = CACHED_FILES) -> None:
        self._store, self._prefix, self._cached = store, prefix, cached
        self._manifest: ScittManifest | None = None
        self._fences: OrderedDict[str, bytes] = OrderedDict()

    def __repr__(self) -> str:
        return f"FrozenScitt({self._prefix!r})"

    async def manifest(self) -> ScittManifest:
        """The manifest (read once: the files never change); an empty one when there is none."""
        if self._manifest is None:
            try:
                data = await self._store.get(layout.frozen_scitt_manifest_key(self._prefix))
                self._manifest = ScittManifest.from_json(data)
            except NotFoundError:
                self._manifest = ScittManifest("", 0, BLOCK_ROWS, ())
        return self._manifest

    async def find(self, entry: bytes) -> tuple[int, bytes] | None:
        """(index, receipt) of the SCITT entry `entry` in this log, or None."""
        manifest = await self.manifest()
        file = manifest.file_for(entry)
        if file is None:
            return None
        key = layout.frozen_scitt_file_key(file.file, self._prefix)
        fence = await self._fence(key, file, manifest.block_rows)
        firsts = range(len(fence) // ENTRY)
        block = bisect.bisect_right(firsts, entry, key=lambda i: fence[i * ENTRY : (i + 1) * ENTRY])
        if block == 0:
            return None
        lo = (block - 1) * manifest.block_rows
        hi = min(lo + manifest.block_rows, file.rows)
        data = await self._range(key, file.records_at + lo * RECORD, file.records_at + hi * RECORD)
        n = hi - lo
        at = bisect.bisect_left(range(n), entry, key=lambda i: data[i * RECORD : i * RECORD + ENTRY])
        if at == n or data[at * RECORD : at * RECORD + ENTRY] != entry:
            return None
        record = data[at * RECORD + ENTRY : (at + 1) * RECORD]
        index, offset = int.from_bytes(record[:8], "big"), int.from_bytes(record[8:16], "big")
        length = int.from_bytes(record[16:20], "big")
        if offset + length > file.records_at:
            raise CorruptedError(f"frozen SCITT file {file.file}: a receipt beyond the receipts")
        return index, await self._range(key, offset, offset + length)

    async def receipt(self, entry: bytes) -> bytes | None:
        found = await self.find(entry)
        return None if found is None else found[1]

    async def _range(self, key: str, start: int, end: int) -> bytes:
        data = await self._store.get_range(key, start, end) if start < end else b""
        if len(data) != end - start:
            raise CorruptedError(f"frozen SCITT file {key} is shorter than its manifest says")
        return data

    async def _fence(self, key: str, file: ScittFile, block_rows: int) -> bytes:
        fence = self._fences.get(file.file)
        if fence is None:
            start = file.records_at + file.rows * RECORD
            fence = await self._range(key, start, start + -(-file.rows // block_rows) * ENTRY)
            self._fences[file.file] = fence
            while len(self._fences) > self._cached:
                self._fences.popitem(last=False)
        self._fences.move_to_end(file.file)
        return fence
