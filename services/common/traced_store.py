"""An ObjectStore wrapper that times and counts every call and, inside a trace, makes each one a
client span (`TracedStore`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from services.published.layout import LOG_PREFIX
from storage.base import ObjectStore, Versioned
from storage.errors import StorageError

if TYPE_CHECKING:
    from services.common.telemetry import Telemetry


OPERATIONS = ("get", "get_range", "put", "put_if_absent", "put_all_if_absent", "put_stream", "get_versioned",
              "put_if_version", "list", "delete")  # fmt: skip


def _area(key: str) -> str:
    """What a key is about, without what would identify a document: `log/tile`, `documents`…"""
    head, _, rest = key.partition("/")
    return f"{head}/{rest.partition('/')[0]}" if head + "/" == LOG_PREFIX and rest else head


class TracedStore:
    """An ObjectStore that times every call and counts failures (`notar_store_errors_total`);
    inside a trace, each call is a client span. Keys stay out of spans: digests are private."""

    def __init__(self, store: ObjectStore, telemetry: Telemetry) -> None:
        self.inner = store
        self._tel = telemetry
        for op in OPERATIONS:  # every series from 0, so that rate() and alerts see the first error
            telemetry.store_errors.add(0, {"operation": op})

    async def _call(self, op: str, key: str, call: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        try:
            if not self._tel.recording or not trace.get_current_span().get_span_context().is_valid:
                return await call
            with self._tel.tracer.start_as_current_span(
                f"store {op}",
                kind=SpanKind.CLIENT,
                attributes={"notar.store.operation": op, "notar.store.area": _area(key)},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return await call
                except StorageError as e:
                    span.set_status(StatusCode.ERROR, type(e).__name__)
                    raise
        except StorageError:
            self._tel.store_errors.add(1, {"operation": op})
            raise
        finally:
            self._tel.store_seconds.record(time.perf_counter() - start, {"operation": op})

    async def get(self, key: str) -> bytes:
        data: bytes = await self._call("get", key, self.inner.get(key))
        return data

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        data: bytes = await self._call("get_range", key, self.inner.get_range(key, start, end))
        return data

    async def put(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        await self._call("put", key, self.inner.put(key, data, cache_control=cache_control))

    async def put_if_absent(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        call = self.inner.put_if_absent(key, data, cache_control=cache_control)
        await self._call("put_if_absent", key, call)

    async def put_all_if_absent(
        self, items: Sequence[tuple[str, bytes]], *, cache_control: str | None = None
    ) -> None:
        call = self.inner.put_all_if_absent(items, cache_control=cache_control)
        await self._call("put_all_if_absent", items[0][0] if items else "", call)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], *, immutable: bool) -> int:
        call = self.inner.put_stream(key, chunks, immutable=immutable)
        size: int = await self._call("put_stream", key, call)
        return size

    async def get_versioned(self, key: str) -> Versioned:
        found: Versioned = await self._call("get_versioned", key, self.inner.get_versioned(key))
        return found

    async def put_if_version(
        self, key: str, data: bytes, version: str | None, *, cache_control: str | None = None
    ) -> str:
        call = self.inner.put_if_version(key, data, version, cache_control=cache_control)
        new: str = await self._call("put_if_version", key, call)
        return new

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        try:
            async for key in self.inner.list(prefix):
                yield key
        except StorageError:
            self._tel.store_errors.add(1, {"operation": "list"})
            raise

    async def delete(self, key: str) -> None:
        await self._call("delete", key, self.inner.delete(key))

    async def close(self) -> None:
        await self.inner.close()

