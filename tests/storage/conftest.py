"""Fixtures that give the contract suites every driver: ``store`` (memory, fs, s3) and ``index``
(memory, rocks). The S3 store is a real server: SeaweedFS started for the session, or the
endpoint named by ``NOTAR_TEST_S3_ENDPOINT``; each test works under its own random prefix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiobotocore.session import AioSession

from storage.base import Index, ObjectStore
from storage.fs import FsStore
from storage.memory import MemoryIndex, MemoryStore
from storage.rocks import RocksIndex
from storage.s3 import MiB, S3Store
from tests.seaweed import S3Target, s3_target

__all__ = ["s3_target"]  # the session fixture, re-exported for pytest


@pytest.fixture(scope="session")
def aio_session() -> AioSession:
    """One botocore session for all tests, so its service models are loaded once."""
    return AioSession()


async def open_s3(target: S3Target, session: AioSession, **overrides: object) -> S3Store:
    """An S3 store under a fresh random prefix of the target bucket (parts of the 5 MiB
    minimum, so that multipart is exercised by bodies of a few MiB)."""
    settings: dict[str, object] = {"prefix": f"test-{uuid.uuid4().hex[:12]}",
                                   "part_size": 5 * MiB}
    settings.update(overrides)
    return await S3Store.from_config(target.config(**settings), session=session)


async def wipe(store: ObjectStore) -> None:
    async for key in store.list():
        await store.delete(key)


@pytest.fixture
async def s3_store(s3_target: S3Target, aio_session: AioSession) -> AsyncIterator[S3Store]:
    store = await open_s3(s3_target, aio_session)
    yield store
    await wipe(store)
    await store.close()


@pytest.fixture(params=["memory", "fs", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    opened: ObjectStore
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "fs":
        opened = FsStore(tmp_path / "objects")
    else:
        opened = await open_s3(request.getfixturevalue("s3_target"),
                               request.getfixturevalue("aio_session"))
    yield opened
    if request.param == "s3":
        await wipe(opened)
    await opened.close()


@pytest.fixture(params=["memory", "rocks"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Index]:
    opened: Index = MemoryIndex() if request.param == "memory" else RocksIndex.open(
        tmp_path / "index")
    yield opened
    await opened.close()
