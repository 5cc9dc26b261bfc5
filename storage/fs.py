"""Object store in a local directory: the embedded default (``STORE=fs``).

Each object is a file at its key's path under the root. Writes go to a temporary file that is
fsynced and then renamed (or hard-linked, for immutable keys) into place, and the directory is
fsynced, so a write is durable once it returns and never visible half-done; several immutable
objects at once (a round of tiles: `put_all_if_absent`) share their directories' fsyncs. Blocking
calls run in a small thread pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import filecmp
import functools
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, TypeVar

from storage.base import Versioned, check_key, check_prefix
from storage.errors import ConflictError, NotarError, NotFoundError, StorageError, raise_worst

T = TypeVar("T")
_TMP, _LOCK = ".tmp", ".lock"  # never valid keys: no key segment starts with "."
_STALE_TMP_S = 3600.0
_WRITE_BUFFER = 1024 * 1024


class FsStore:
    """``ObjectStore`` on a directory. A key that is a path prefix of another ("a" and "a/b")
    cannot be stored; the log layout never needs one. A directory serves nothing over HTTP:
    ``cache_control`` is ignored (the verify service's ``/log/`` routes answer their own)."""

    def __init__(self, root: str | os.PathLike[str], *, threads: int = 8) -> None:
        self.root = Path(root).absolute()
        self._tmp = self.root / _TMP
        self._tmp.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.root.parent)
        fsync_dir(self.root)
        self._dirs: set[Path] = {self.root}
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="notar-fs")
        now = time.time()
        for leftover in self._tmp.iterdir():  # temp files of writers that crashed long ago
            with suppress(FileNotFoundError):  # one that another process's writer just renamed
                if now - leftover.stat().st_mtime > _STALE_TMP_S:
                    leftover.unlink(missing_ok=True)

    async def get(self, key: str) -> bytes:
        return await self._run("get", key, lambda: self._path(key).read_bytes())

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        if not 0 <= start < end:
            raise ValueError(f"need 0 <= start < end, got {start}, {end}")

        def read() -> bytes:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read(end - start)
        return await self._run("get", key, read)

    async def get_versioned(self, key: str) -> Versioned:
        def read() -> Versioned:
            data = self._path(key).read_bytes()
            return Versioned(data, "sha256:" + hashlib.sha256(data).hexdigest())
        return await self._run("get", key, read)

    async def put(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        self._path(key)  # a bad key is refused before anything is written

        def replace() -> None:
            tmp = self._write_tmp(data)
            with self._locked():
                self._install(key, tmp, False)
        await self._run("put", key, replace)

    async def put_if_absent(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        await self._run("put", key, lambda: self._install(key, self._write_tmp(data), True))

    async def put_all_if_absent(
        self, items: Sequence[tuple[str, bytes]], *, cache_control: str | None = None
    ) -> None:
        """The objects in one share per thread of the pool but one, which stays free for reads
        (a verify route reading a tile waits for no round of publication); each share pays one
        fsync per directory, not one per object (`_install_all`). Shares are as large as that
        makes them: a round cut in smaller ones fell behind the sequencer again."""
        placed = [(key, self._path(key), data) for key, data in items]  # each key checked once
        writers = max(1, self._threads - 1)
        size = -(-len(placed) // writers) if placed else 1
        shares = [placed[i : i + size] for i in range(0, len(placed), size)]
        outcomes = await asyncio.gather(
            *(self._run("put", share[0][0], functools.partial(self._install_all, share)) for share in shares),
            return_exceptions=True,
        )
        raise_worst(outcomes)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], *, immutable: bool) -> int:
        self._path(key)
        tmp = self._tmp / uuid.uuid4().hex
        f = await self._run("put", key, lambda: open(tmp, "xb"))  # noqa: SIM115
        size, buf = 0, bytearray()
        try:
            async for chunk in chunks:
                buf += chunk
                if len(buf) >= _WRITE_BUFFER:
                    size += await self._run("put", key, functools.partial(f.write, bytes(buf)))
                    buf.clear()
            size += await self._run("put", key, lambda: f.write(buf))
            await self._run("put", key, functools.partial(_flush_and_sync, f))
        except BaseException:
            await asyncio.shield(self._run("put", key, lambda: _discard(f, tmp)))
            raise
        await self._run("put", key, f.close)

        def install() -> None:
            if immutable:
                self._install(key, tmp, True)
                return
            with self._locked():
                self._install(key, tmp, False)
        await self._run("put", key, install)
        return size

    async def put_if_version(
        self, key: str, data: bytes, version: str | None, *, cache_control: str | None = None
    ) -> str:
        def swap() -> str:
            path = self._path(key)
            with self._locked():
                try:
                    current: bytes | None = path.read_bytes()
                except FileNotFoundError:
                    current = None
                new_version = "sha256:" + hashlib.sha256(data).hexdigest()
                if current == data:
                    return new_version
                now = None if current is None else "sha256:" + hashlib.sha256(current).hexdigest()
                if now != version:
                    raise ConflictError(f"{key!r} in directory {self.root} is no longer at "
                                        f"version {version}; another writer changed it", key=key)
                self._install(key, self._write_tmp(data), False)
                return new_version
        return await self._run("put", key, swap)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        base = prefix.rpartition("/")[0]
        keys = await self._run("list", prefix, lambda: sorted(_walk(self.root / base, base)))
        for key in keys:
            if key.startswith(prefix):
                yield key

    async def delete(self, key: str) -> None:
        def remove() -> None:
            path = self._path(key)
            with self._locked():
                try:
                    path.unlink()
                except (FileNotFoundError, NotADirectoryError):
                    return
                fsync_dir(path.parent)
        await self._run("delete", key, remove)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- internals (run in the pool) ---------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's lock file, held: a write that replaces or removes an object is then wholly
        before or after a conditional write's check and replacement (`put_if_version`), in this
        process or another, as an S3 server orders them; it cannot land in between and be
        overwritten unseen."""
        with open(self.root / _LOCK, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_tmp(self, data: bytes) -> Path:
        tmp = self._tmp / uuid.uuid4().hex
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep what was written of it
            raise
        finally:
            os.close(fd)
        return tmp

    def _install(self, key: str, tmp: Path, immutable: bool) -> None:
        """Move the fsynced ``tmp`` to ``key`` (`_place`) and make that durable."""
        try:
            fsync_dir(self._place(key, self._path(key), tmp, immutable))
        finally:
            tmp.unlink(missing_ok=True)

    def _install_all(self, items: Sequence[tuple[str, Path, bytes]]) -> None:
        """Write each object (its key, its checked path, its bytes) to a temporary file, fsynced
        before it is placed (as `_install`), then fsync each directory once for all its new
        entries. An OSError names its key."""
        directories: dict[Path, str] = {}  # each directory, and a key in it for errors
        for key, path, data in items:
            try:
                tmp = self._write_tmp(data)
                try:
                    directories.setdefault(self._place(key, path, tmp, immutable=True), key)
                finally:
                    tmp.unlink(missing_ok=True)
            except OSError as e:
                raise self._failure("put", key, e) from e
        for directory, key in directories.items():
            try:
                fsync_dir(directory)
            except OSError as e:
                raise self._failure("put", key, e) from e

    def _place(self, key: str, path: Path, tmp: Path, immutable: bool) -> Path:
        """Move the fsynced ``tmp`` to ``key`` (at ``path``, its checked path): rename over it,
        or (immutable) hard-link it only if the key is absent, since a link never replaces an
        existing file. Its directory, which the caller fsyncs: the entry is durable only then,
        also when identical bytes were already there (written by a writer that then crashed)."""
        self._make_parents(path.parent)
        if not immutable:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                if not filecmp.cmp(tmp, path, shallow=False):
                    raise ConflictError(f"immutable {key!r} in directory {self.root} "
                                        "already holds different bytes", key=key) from None
        return path.parent

    def _make_parents(self, directory: Path) -> None:
        if directory in self._dirs:
            return
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                if not d.is_dir():
                    raise
            fsync_dir(d.parent)
            self._dirs.add(d)

    async def _run(self, op: str, key: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except OSError as e:
            raise self._failure(op, key, e) from e

    def _failure(self, op: str, key: str, e: OSError) -> NotarError:
        """The notar error of an OSError of `op` on `key`."""
        if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
            if op == "get":
                return NotFoundError(f"{key!r} not found in directory {self.root}", key=key)
            return StorageError(f"{op} {key!r} in directory {self.root} failed: {e.strerror}; "
                                "is another key a path prefix of this one?", key=key,
                                location=str(self.root))
        return StorageError(f"{op} {key!r} in directory {self.root} failed: {e.strerror}",
                            key=key, location=str(self.root),
                            transient=e.errno in (errno.EAGAIN, errno.EINTR))


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a new, renamed or removed file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_and_sync(f: BinaryIO) -> None:
    f.flush()  # out of the Python buffer, or fsync would not see the tail
    os.fsync(f.fileno())


def _discard(f: BinaryIO, tmp: Path) -> None:
    f.close()
    tmp.unlink(missing_ok=True)


def _walk(directory: Path, relative: str) -> list[str]:
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    keys = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        key = f"{relative}/{entry.name}" if relative else entry.name
        if entry.is_dir(follow_symlinks=False):
            keys.extend(_walk(Path(entry.path), key))
        else:
            keys.append(key)
    return keys
