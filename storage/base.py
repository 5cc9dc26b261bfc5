"""What notar needs from storage: one Protocol per consistency need.

``ObjectStore`` holds the published log (tiles, entry bundles, checkpoint) and documents;
``Index`` holds the sequencer's working state and the tenant-private index. Drivers live one per
file next to this one; the contract tests in ``tests/storage/`` run against every driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Versioned:
    """Bytes read together with the opaque version token that a conditional write compares."""

    data: bytes
    version: str


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise ``ValueError``.

    A key is a relative, ``/``-separated path of non-empty segments that do not start with ``.``
    and hold no backslash, NUL or control character, at most 1024 bytes of UTF-8. The same rule
    in every driver keeps a log portable between a directory and a bucket, and rules out path
    traversal in the directory store.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"object key must be a non-empty string, got {key!r}")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"object key is longer than {MAX_KEY_BYTES} bytes: {key[:60]!r}…")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise ValueError(
                f"object key {key!r} has an empty segment or one starting with '.'; "
                "keys are relative paths like 'tile/0/001'"
            )
    if any(c == "\\" or ord(c) < 0x20 or c == "\x7f" for c in key):
        raise ValueError(f"object key {key!r} holds a backslash or a control character")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid listing prefix: empty, or a key's leading part."""
    if prefix:
        check_key(prefix + "x" if prefix.endswith("/") else prefix)
    return prefix


class ObjectStore(Protocol):
    """A flat namespace of byte objects under string keys (see ``check_key``).

    Every write is durable once it returns: a crash afterwards never loses it. A write that raises
    may or may not have been stored; retrying it is always safe. Immutable writes succeed when the
    very same bytes are already stored (so a retry after "failed but stored" succeeds) and raise
    ``ConflictError`` when different bytes are. A missing key raises ``NotFoundError``; any other
    failure raises ``StorageError`` naming the store and the key. Invalid keys raise ``ValueError``.
    A key must not be a path prefix of another ("a" and "a/b"): a directory cannot hold both,
    and some S3 servers (SeaweedFS) refuse it too; the log layout never needs it.

    ``cache_control`` on a write is the HTTP ``Cache-Control`` the object is served with by a
    store that serves objects over HTTP (S3 keeps it as the object's metadata, for a CDN in front
    of the public ``log/`` prefix); a store that serves nothing (a directory) ignores it.
    """

    async def get(self, key: str) -> bytes:
        """The whole object."""
        ...

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        """``data[start:end]`` of the object, for ``0 <= start < end``; shorter (possibly
        empty) when the object ends before ``end``. Read a big object in ranges to stream it."""
        ...

    async def put(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        """Store ``data`` under a mutable key, replacing whatever is there."""
        ...

    async def put_if_absent(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        """Store ``data`` under an immutable key (tiles, bundles, documents)."""
        ...

    async def put_all_if_absent(
        self, items: Sequence[tuple[str, bytes]], *, cache_control: str | None = None
    ) -> None:
        """``put_if_absent`` of every ``(key, data)``, all durable when it returns (a round of the
        log's tiles and bundles). A driver may write them at once and pay its durability once for
        all. When it raises, any of them may or may not be stored (retrying all is safe); a
        ``ConflictError`` (a key holding different bytes) is raised over any other error. An
        invalid key raises ``ValueError`` before anything is written."""
        ...

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, immutable: bool
    ) -> int:
        """Store a body of any size, read from ``chunks``, in bounded memory; return its size.

        Nothing is visible under ``key`` unless the whole body was stored: when ``chunks`` raises
        or the upload fails, partial data is cleaned up and the error propagates. With
        ``immutable`` it behaves as ``put_if_absent``, otherwise as ``put``.
        """
        ...

    async def get_versioned(self, key: str) -> Versioned:
        """The object and its current version token, for a later ``put_if_version``."""
        ...

    async def put_if_version(
        self, key: str, data: bytes, version: str | None, *, cache_control: str | None = None
    ) -> str:
        """Replace the object only if its version is still ``version`` (``None``: only if the key
        is absent) and return the new version; otherwise raise ``ConflictError``.

        This is how a single writer owns a mutable key such as the checkpoint: a second writer
        holding a stale version cannot overwrite it. If the stored bytes already equal ``data``
        it succeeds and returns their version (a retried write that had landed).
        """
        ...

    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with ``prefix``, each exactly once, in no guaranteed order
        (S3-compatible servers differ: SeaweedFS lists in directory order)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key succeeds."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        ...


class Index(Protocol):
    """An ordered key-value index of bytes (RocksDB in production).

    A write with ``sync=True`` is on disk (fsynced) once it returns; with ``sync=False`` it
    survives a process crash but maybe not a machine crash. A write that raises may or may not
    have been applied, but always entirely or not at all.
    """

    async def get(self, key: bytes) -> bytes | None:
        """The value under ``key``, or ``None``."""
        ...

    async def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The values under ``keys``, in the same order, ``None`` where missing."""
        ...

    async def write_batch(
        self,
        puts: Mapping[bytes, bytes],
        deletes: Iterable[bytes] = (),
        *,
        sync: bool = True,
    ) -> None:
        """Apply every put and delete atomically: after a crash, all of them or none.
        A key both put and deleted ends up deleted."""
        ...

    def scan(
        self, prefix: bytes, *, start: bytes | None = None, limit: int | None = None
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        """``(key, value)`` for keys starting with ``prefix``, in ascending byte order, from
        ``start`` (inclusive) when given, at most ``limit`` of them. Writes made during the
        scan may or may not be seen; no key is seen twice."""
        ...

    async def compare_and_swap(
        self,
        key: bytes,
        expected: bytes | None,
        new: bytes,
        *,
        puts: Mapping[bytes, bytes] | None = None,
        deletes: Iterable[bytes] = (),
        sync: bool = True,
    ) -> bool:
        """If the value under ``key`` is ``expected`` (``None``: absent), atomically write
        ``new`` there together with ``puts`` and ``deletes``, and return ``True``; otherwise
        write nothing and return ``False``. Meant for a small head record (the log's size)."""
        ...

    async def compact(self, ranges: Sequence[tuple[bytes, bytes]]) -> None:
        """Make the values deleted under each key range ``[start, end)`` unreadable from the
        index's files too, not only hidden: RocksDB keeps a deleted value in its write-ahead log
        and table files until a compaction meets it with its deletion (erasure needs it gone)."""
        ...

    async def checkpoint(self, path: Path) -> None:
        """Write a copy of the whole index as of one moment into the new directory ``path`` (its
        parent exists, it does not; else ``StorageError``): every batch entirely or not at all,
        complete once this returns, and read back as an index by the driver's own opener.
        Writes go on meanwhile. Backups take it; nothing in it is decrypted or re-encoded."""
        ...

    async def close(self) -> None:
        """Flush and release the index; it is unusable afterwards."""
        ...
