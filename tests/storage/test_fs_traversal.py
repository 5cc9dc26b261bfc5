"""The directory store never touches a path outside its root, whatever key it is handed: every
method refuses keys and prefixes with `..`, `.`, absolute or empty segments, backslashes, NUL or
control characters before any I/O — a file planted next to the root is neither read, nor
overwritten, nor deleted, nor listed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from storage.fs import FsStore

ESCAPES = [
    "../outside",
    "../../outside",
    "a/../../outside",
    "a/../../../outside",
    "./../outside",
    "/outside",
    "//outside",
    "a/./../../outside",
    "..",
    ".",
    "..\\outside",
    "a\\..\\..\\outside",
    "outside\x00",
    "a/\x00/../outside",
    "a\n/../outside",
    "",
]


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "outside").write_bytes(b"secret next to the store")
    return tmp_path / "store"


@pytest.mark.parametrize("key", ESCAPES)
async def test_every_method_refuses_a_key_that_leaves_the_root(root: Path, key: str) -> None:
    store = FsStore(root)
    outside = root.parent / "outside"
    before = outside.stat()
    try:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "get": lambda: store.get(key),
            "get_range": lambda: store.get_range(key, 0, 5),
            "get_versioned": lambda: store.get_versioned(key),
            "put": lambda: store.put(key, b"x"),
            "put_if_absent": lambda: store.put_if_absent(key, b"x"),
            "put_all_if_absent": lambda: store.put_all_if_absent([("fine", b"x"), (key, b"x")]),
            "put_if_version": lambda: store.put_if_version(key, b"x", None),
            "put_stream": lambda: store.put_stream(key, _one(b"x"), immutable=False),
            "delete": lambda: store.delete(key),
        }
        for name, call in calls.items():
            with pytest.raises(ValueError):
                await call()
            assert outside.read_bytes() == b"secret next to the store", name
        with pytest.raises(ValueError):
            async for _ in store.list(key if key.endswith("/") else key + "/"):
                pass
    finally:
        await store.close()
    after = outside.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert sorted(os.listdir(root)) == [".tmp"], "nothing was written inside the root either"
