"""Multipart upload of a stream of any size, for ``storage.s3``: parts go up concurrently within
a bound, each with its SHA-256 checksum; the upload is completed (conditionally for immutable
keys) or aborted, never left behind."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Protocol, TypeVar

from botocore.exceptions import ClientError

from storage.errors import ConflictError, NotarError, NotFoundError, StorageError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import (
        CompletedMultipartUploadTypeDef,
        CompletedPartTypeDef,
    )

T = TypeVar("T")
MiB = 1024 * 1024
MAX_PARTS = 10_000
_HASH_OFF_LOOP = 256 * 1024  # hashing more than this in a thread keeps the event loop free


class S3Calls(Protocol):
    """What an upload needs from the store: its client and bucket, where keys live, and its
    retrying, error-translating way of making a call."""

    client: S3Client
    bucket: str
    where: str

    def object_key(self, key: str) -> str: ...

    async def call(self, op: str, key: str, call: Callable[[], Awaitable[T]]) -> T: ...


async def upload(s3: S3Calls, key: str, parts: AsyncIterator[bytes], *, immutable: bool,
                 part_size: int, concurrency: int) -> int:
    """Upload ``parts`` (each ``part_size`` bytes but the last) as ``key``; return the size.
    Memory stays within ``concurrency`` parts plus the one being read."""
    bucket, k = s3.bucket, s3.object_key(key)
    created = await s3.call("put", key, lambda: s3.client.create_multipart_upload(
        Bucket=bucket, Key=k, ChecksumAlgorithm="SHA256"))
    upload_id = created["UploadId"]
    done: dict[int, CompletedPartTypeDef] = {}
    hashes: list[bytes] = []
    tasks: list[asyncio.Task[None]] = []
    slots = asyncio.Semaphore(concurrency)
    size, completed = 0, False

    async def send(number: int, body: bytes, digest: bytes) -> None:
        try:
            checksum = base64.b64encode(digest).decode()
            r = await s3.call("put", key, lambda: s3.client.upload_part(
                Bucket=bucket, Key=k, UploadId=upload_id, PartNumber=number, Body=body,
                ChecksumSHA256=checksum))
            done[number] = {"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": checksum}
        finally:
            slots.release()

    async def complete() -> object:
        listing: CompletedMultipartUploadTypeDef = {"Parts": [done[n] for n in sorted(done)]}
        if immutable:
            return await s3.client.complete_multipart_upload(
                Bucket=bucket, Key=k, UploadId=upload_id, MultipartUpload=listing,
                IfNoneMatch="*")
        return await s3.client.complete_multipart_upload(
            Bucket=bucket, Key=k, UploadId=upload_id, MultipartUpload=listing)

    try:
        async for body in parts:
            if len(tasks) == MAX_PARTS:
                raise StorageError(f"{key!r} is larger than {MAX_PARTS} parts of {part_size} "
                                   "bytes; raise the part size", key=key, location=s3.where)
            await slots.acquire()
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    await task  # a part failed: stop reading and raise its error
            hashes.append(await sha256(body))
            size += len(body)
            tasks.append(asyncio.create_task(send(len(tasks) + 1, body, hashes[-1])))
        await asyncio.gather(*tasks)
        try:
            await s3.call("put", key, complete)
            completed = True
        except (ConflictError, NotFoundError):
            # 412: the key exists already. 404 NoSuchUpload: a retried completion whose first
            # attempt landed. Either way it is a success if the stored bytes are ours.
            if not await _same_parts(s3, key, size, hashes, part_size):
                raise ConflictError(f"immutable {key!r} in {s3.where} already holds different "
                                    "bytes", key=key) from None
        return size
    finally:
        if not completed:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.shield(_abort(s3, key, upload_id))


async def _abort(s3: S3Calls, key: str, upload_id: str) -> None:
    with suppress(NotarError):  # the error that made us abort is the one worth raising
        await s3.call("abort upload of", key, lambda: s3.client.abort_multipart_upload(
            Bucket=s3.bucket, Key=s3.object_key(key), UploadId=upload_id))


async def _same_parts(s3: S3Calls, key: str, size: int, hashes: list[bytes],
                      part_size: int) -> bool:
    """Whether ``key`` holds ``size`` bytes whose ``part_size`` pieces have these hashes."""
    async def call() -> list[bytes] | None:
        try:
            r = await s3.client.get_object(Bucket=s3.bucket, Key=s3.object_key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        if r["ContentLength"] != size:
            return []
        async with r["Body"] as body:
            return [await sha256(p) async for p in split(body.iter_chunks(MiB), part_size)]
    return await s3.call("get", key, call) == hashes


async def sha256(data: bytes) -> bytes:
    if len(data) > _HASH_OFF_LOOP:
        return await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
    return hashlib.sha256(data).digest()


async def split(chunks: AsyncIterable[bytes], size: int) -> AsyncGenerator[bytes, None]:
    """Re-cut a stream of any chunks into pieces of exactly ``size`` bytes, the last shorter."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


async def chain(*first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for part in first:
        yield part
    async for part in rest:
        yield part
