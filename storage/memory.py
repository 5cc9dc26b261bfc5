"""In-memory fakes of ``ObjectStore`` and ``Index`` for fast tests, with injectable faults.

They enforce the contract at least as strictly as the real drivers (an immutable key never
changes, not even through ``put``) and can make any call fail, before or after its effect:
"failed and not stored" and "failed but stored", the two ways a real write can fail.
"""

from __future__ import annotations

import asyncio
import bisect
import fnmatch
import itertools
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from storage.base import Versioned, check_key, check_prefix
from storage.errors import ConflictError, NotarError, NotFoundError, StorageError, raise_worst

T = TypeVar("T")
MEMORY_FILE = "memory-index"
WRITES = frozenset({
    "put", "put_if_absent", "put_stream", "put_if_version", "delete",
    "write_batch", "compare_and_swap", "compact",
})


@dataclass
class Fault:
    """Makes matching calls raise. ``op`` is a method name, ``"write"`` (any write) or ``"*"``;
    ``key`` an fnmatch pattern (index keys are matched as latin-1 text; a batch matches if any of
    its keys does). The first ``skip`` matching calls pass, the next ``times`` fail; with
    ``stored`` the call takes effect before it raises."""

    op: str = "write"
    key: str = "*"
    stored: bool = False
    skip: int = 0
    times: int = 1
    error: Callable[[str, str], BaseException] | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, op: str, keys: Sequence[str]) -> bool:
        op_ok = self.op == "*" or self.op == op or (self.op == "write" and op in WRITES)
        return op_ok and any(fnmatch.fnmatchcase(k, self.key) for k in keys)

    def exception(self, op: str, key: str) -> BaseException:
        if self.error is not None:
            return self.error(op, key)
        effect = "but stored" if self.stored else "and not stored"
        return StorageError(f"injected fault: {op} {key!r} failed {effect}", key=key,
                            location="memory", transient=True)


@dataclass
class Faults:
    """The faults armed on one fake, and a journal of every write it was asked to do."""

    armed: list[Fault] = field(default_factory=list)
    journal: list[tuple[str, str]] = field(default_factory=list)

    def inject(self, op: str = "write", key: str = "*", *, stored: bool = False, skip: int = 0,
               times: int = 1, error: Callable[[str, str], BaseException] | None = None) -> Fault:
        fault = Fault(op, key, stored, skip, times, error)
        self.armed.append(fault)
        return fault

    def clear(self) -> None:
        self.armed.clear()

    def _due(self, op: str, keys: Sequence[str]) -> Fault | None:
        if op in WRITES:
            self.journal.append((op, keys[0] if len(keys) == 1 else ",".join(keys)))
        for fault in self.armed:
            if fault.fired < fault.times and fault.matches(op, keys):
                fault.seen += 1
                if fault.seen > fault.skip:
                    fault.fired += 1
                    return fault
        return None

    async def run(self, op: str, keys: Sequence[str], effect: Callable[[], T]) -> T:
        """Run ``effect`` as call ``op`` on ``keys``, failing it if a fault is due."""
        await asyncio.sleep(0)  # let other tasks interleave, as real I/O would
        fault = self._due(op, keys or [""])
        if fault is None:
            return effect()
        if fault.stored:
            effect()
        raise fault.exception(op, keys[0] if keys else "")


class MemoryStore:
    """``ObjectStore`` in a dict. A key written by an immutable write keeps its bytes until it
    is deleted: ``put`` or ``put_if_version`` with other bytes raise ``ConflictError``. Like the
    directory store (the default in production), it refuses a key that is a path prefix of
    another ("a" and "a/b") with ``StorageError``. ``cache_control`` records the Cache-Control
    each object was stored with, as S3 keeps it."""

    def __init__(self, *, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.objects: dict[str, bytes] = {}
        self._versions: dict[str, str] = {}
        self._immutable: set[str] = set()
        self._below: Counter[str] = Counter()  # "a/b" -> how many keys start with "a/b/"
        self._counter = itertools.count(1)
        self.cache_control: dict[str, str] = {}  # key -> Cache-Control of its last write that gave one

    async def get(self, key: str) -> bytes:
        return (await self.get_versioned(key)).data

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        if not 0 <= start < end:
            raise ValueError(f"need 0 <= start < end, got {start}, {end}")
        return (await self.get(key))[start:end]

    async def get_versioned(self, key: str) -> Versioned:
        return await self.faults.run("get", [check_key(key)], lambda: self._read(key))

    async def put(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        await self.faults.run("put", [check_key(key)],
                              lambda: self._write(key, data, False, cache_control))

    async def put_if_absent(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        await self.faults.run("put_if_absent", [check_key(key)],
                              lambda: self._write(key, data, True, cache_control))

    async def put_all_if_absent(
        self, items: Sequence[tuple[str, bytes]], *, cache_control: str | None = None
    ) -> None:
        for key, _ in items:
            check_key(key)
        errors: list[BaseException | None] = []
        for key, data in items:  # one by one, each a put_if_absent to `faults`
            try:
                await self.put_if_absent(key, data, cache_control=cache_control)
                errors.append(None)
            except NotarError as e:
                errors.append(e)
        raise_worst(errors)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], *, immutable: bool) -> int:
        check_key(key)
        data = b"".join([bytes(chunk) async for chunk in chunks])
        await self.faults.run("put_stream", [key], lambda: self._write(key, data, immutable))
        return len(data)

    async def put_if_version(
        self, key: str, data: bytes, version: str | None, *, cache_control: str | None = None
    ) -> str:
        def effect() -> str:
            if self.objects.get(key) == data:
                return self._versions[key]
            if self._versions.get(key) != version:
                raise ConflictError(f"{key!r} in memory is no longer at version {version}",
                                    key=key)
            return self._write(key, data, False, cache_control)
        return await self.faults.run("put_if_version", [check_key(key)], effect)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        keys = await self.faults.run("list", [prefix], lambda: sorted(self.objects))
        for key in keys:
            if key.startswith(prefix) and key in self.objects:
                yield key

    async def delete(self, key: str) -> None:
        def effect() -> None:
            if self.objects.pop(key, None) is not None:
                self._below.subtract(_parents(key))
            self._versions.pop(key, None)
            self.cache_control.pop(key, None)
            self._immutable.discard(key)
        await self.faults.run("delete", [check_key(key)], effect)

    async def close(self) -> None:
        pass

    def _read(self, key: str) -> Versioned:
        if key not in self.objects:
            raise NotFoundError(f"{key!r} not found in memory store", key=key)
        return Versioned(self.objects[key], self._versions[key])

    def _write(self, key: str, data: bytes, immutable: bool, cache_control: str | None = None) -> str:
        data = bytes(data)
        current = self.objects.get(key)
        if current is not None and current != data and (immutable or key in self._immutable):
            raise ConflictError(f"immutable {key!r} in memory already holds different bytes",
                                key=key)
        if current is None and (self._below[key] > 0
                                or any(p in self.objects for p in _parents(key))):
            raise StorageError(f"{key!r} cannot be stored in memory: it is a path prefix of "
                               "another key, or another key is one of it", key=key,
                               location="memory")
        if current is None:
            self._below.update(_parents(key))
        if immutable:
            self._immutable.add(key)
        if current != data or key not in self._versions:
            self.objects[key] = data
            self._versions[key] = f"v{next(self._counter)}"
            if cache_control is not None:
                self.cache_control[key] = cache_control
        return self._versions[key]


class MemoryIndex:
    """``Index`` in a sorted list and a dict; every write is atomic and instantly "durable"."""

    def __init__(self, *, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    async def get(self, key: bytes) -> bytes | None:
        return await self.faults.run("get", [_text(key)], lambda: self.data.get(key))

    async def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return await self.faults.run("multi_get", [_text(k) for k in keys],
                                     lambda: [self.data.get(k) for k in keys])

    async def write_batch(self, puts: Mapping[bytes, bytes], deletes: Iterable[bytes] = (), *,
                          sync: bool = True) -> None:
        deletes = list(deletes)
        await self.faults.run("write_batch", [_text(k) for k in [*puts, *deletes]],
                              lambda: self._apply(puts, deletes))

    async def scan(self, prefix: bytes, *, start: bytes | None = None,
                   limit: int | None = None) -> AsyncIterator[tuple[bytes, bytes]]:
        await self.faults.run("scan", [_text(prefix)], lambda: None)
        position = max(prefix, start or prefix)
        count = 0
        while limit is None or count < limit:
            i = bisect.bisect_left(self._keys, position)
            if i == len(self._keys) or not self._keys[i].startswith(prefix):
                return
            key = self._keys[i]
            yield key, self.data[key]
            count += 1
            position = key + b"\x00"

    async def compare_and_swap(self, key: bytes, expected: bytes | None, new: bytes, *,
                               puts: Mapping[bytes, bytes] | None = None,
                               deletes: Iterable[bytes] = (), sync: bool = True) -> bool:
        deletes = list(deletes)

        def effect() -> bool:
            if self.data.get(key) != expected:
                return False
            self._apply({**(puts or {}), key: new}, [d for d in deletes if d != key])
            return True
        keys = [_text(k) for k in [key, *(puts or {}), *deletes]]
        return await self.faults.run("compare_and_swap", keys, effect)

    async def compact(self, ranges: Sequence[tuple[bytes, bytes]]) -> None:
        await self.faults.run("compact", [_text(k) for r in ranges for k in r], lambda: None)

    async def checkpoint(self, path: Path) -> None:
        """One file, ``MEMORY_FILE``: each pair as u32be length and bytes of key, then of value."""
        def effect() -> None:
            try:
                Path(path).mkdir()
            except OSError as e:
                raise StorageError(f"cannot make the checkpoint {path}: {e}", location=str(path)) from e
            parts = [bytes(p) for k in self._keys for p in _framed(k, self.data[k])]
            (Path(path) / MEMORY_FILE).write_bytes(b"".join(parts))
        await self.faults.run("checkpoint", [str(path)], effect)

    @classmethod
    def load(cls, path: Path) -> MemoryIndex:
        """The index a ``checkpoint`` wrote into ``path``."""
        data = (Path(path) / MEMORY_FILE).read_bytes()
        index, at, pairs = cls(), 0, []
        while at < len(data):
            key_size = int.from_bytes(data[at : at + 4], "big")
            key = data[at + 4 : at + 4 + key_size]
            at += 4 + key_size
            value_size = int.from_bytes(data[at : at + 4], "big")
            pairs.append((key, data[at + 4 : at + 4 + value_size]))
            at += 4 + value_size
        index._apply(dict(pairs), ())
        return index

    async def close(self) -> None:
        pass

    def _apply(self, puts: Mapping[bytes, bytes], deletes: Iterable[bytes]) -> None:
        for key, value in puts.items():
            if key not in self.data:
                bisect.insort(self._keys, key)
            self.data[key] = bytes(value)
        for key in deletes:
            if self.data.pop(key, None) is not None:
                del self._keys[bisect.bisect_left(self._keys, key)]


def _framed(key: bytes, value: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    return len(key).to_bytes(4, "big"), key, len(value).to_bytes(4, "big"), value


def _parents(key: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b"]."""
    segments = key.split("/")
    return ["/".join(segments[:i]) for i in range(1, len(segments))]


def _text(key: bytes) -> str:
    return key.decode("latin-1")
