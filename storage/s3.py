"""Object store on any S3 API (AWS, MinIO, Ceph, SeaweedFS) over aiobotocore."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing, suppress
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from storage import s3_multipart
from storage.base import Versioned, check_key, check_prefix
from storage.errors import ConfigError, ConflictError, NotarError, NotFoundError, StorageError, raise_worst
from storage.retry import RetryPolicy, retrying

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ListObjectsV2OutputTypeDef, PutObjectRequestTypeDef

T = TypeVar("T")
MiB = s3_multipart.MiB
_TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestTimeout",
    "InternalError", "ServiceUnavailable", "ConditionalRequestConflict", "OperationAborted",
})
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_CREDENTIALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                          "ExpiredToken", "InvalidToken"})
_CORRUPT = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach the bucket. Credentials are given by the caller (read from the
    standard ``AWS_*`` variables at the entry point); ``None`` lets botocore find them itself."""

    bucket: str
    endpoint: str | None = None  # None: AWS S3 of ``region``
    region: str = "us-east-1"
    prefix: str = ""
    path_style: bool = True
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_connections: int = 32
    part_size: int = 8 * MiB
    part_concurrency: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not _BUCKET_NAME.match(self.bucket):
            raise ConfigError(f"S3_BUCKET {self.bucket!r} is not a valid bucket name "
                              "(3-63 of a-z, 0-9, '.', '-')", setting="S3_BUCKET")
        if self.endpoint is not None and not re.match(r"^https?://[^/]+/?$", self.endpoint):
            raise ConfigError(f"S3_ENDPOINT {self.endpoint!r} must look like "
                              "http(s)://host[:port]", setting="S3_ENDPOINT")
        try:
            check_prefix(self.key_prefix)
        except ValueError as e:
            raise ConfigError(f"S3_PREFIX {self.prefix!r} is not usable: {e}",
                              setting="S3_PREFIX") from e
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together",
                              setting="AWS_ACCESS_KEY_ID")
        if not 5 * MiB <= self.part_size <= 5 * 1024 * MiB:
            raise ValueError(f"S3Config.part_size must be 5 MiB..5 GiB, got {self.part_size}")

    @property
    def key_prefix(self) -> str:
        """``prefix`` as it starts every object key: empty, or ending with one ``/``."""
        return self.prefix.strip("/") + "/" if self.prefix.strip("/") else ""


class S3Store:
    """``ObjectStore`` on an S3 bucket: conditional writes for immutable keys, a SHA-256 checksum
    on every put, concurrent multipart uploads for big streams, and jittered retries."""

    def __init__(self, config: S3Config, *, client: S3Client,
                 resources: AsyncExitStack | None = None) -> None:
        self.config = config
        self.client = client
        self.bucket = config.bucket
        self.where = f"s3 endpoint {client.meta.endpoint_url} bucket {config.bucket!r}"
        self._resources = resources
        self.clock_offset_s: float | None = None
        """This host's wall clock minus the server's, from the ``Date`` header of the latest
        answer (None before one): ±0.5 s plus the round trip, as ``Date`` has whole seconds."""
        client.meta.events.register("after-call.s3", self._saw_answer)

    @classmethod
    async def from_config(cls, config: S3Config, *, session: AioSession | None = None) -> S3Store:
        # Botocore's own retries are off: ours know which S3 errors are transient and keep
        # conditional writes correct when a retried write had in fact landed.
        aio_config = AioConfig(
            region_name=config.region, max_pool_connections=config.max_connections,
            connect_timeout=config.connect_timeout, read_timeout=config.read_timeout,
            retries={"total_max_attempts": 1},
            s3={"addressing_style": "path" if config.path_style else "virtual",
                # The body is covered by the signed x-amz-checksum-sha256 header, which the
                # server verifies; signing the payload as well would hash every byte twice.
                "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
        )
        resources = AsyncExitStack()
        client = await resources.enter_async_context((session or AioSession()).create_client(
            "s3", endpoint_url=config.endpoint, config=aio_config,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            aws_session_token=config.session_token,
        ))
        return cls(config, client=client, resources=resources)

    async def close(self) -> None:
        if self._resources is not None:
            await self._resources.aclose()

    async def get(self, key: str) -> bytes:
        return (await self.get_versioned(key)).data

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        if not 0 <= start < end:
            raise ValueError(f"need 0 <= start < end, got {start}, {end}")

        async def call() -> bytes:
            try:
                r = await self.client.get_object(Bucket=self.bucket, Key=self.object_key(key),
                                                 Range=f"bytes={start}-{end - 1}")
            except ClientError as e:
                if _code(e) == "InvalidRange":  # starts at or past the end of the object
                    return b""
                raise
            async with r["Body"] as body:
                return await body.read()
        return await self.call("get", key, call)

    async def get_versioned(self, key: str) -> Versioned:
        async def call() -> Versioned:
            r = await self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            async with r["Body"] as body:
                return Versioned(await body.read(), r["ETag"])
        return await self.call("get", key, call)

    async def put(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        await self._put(key, data, cache_control=cache_control)

    async def put_if_absent(self, key: str, data: bytes, *, cache_control: str | None = None) -> None:
        try:
            await self._put(key, data, if_none_match=True, cache_control=cache_control)
        except ConflictError:
            current = await self._get_or_none(key)
            if current is None:  # SeaweedFS: a "directory" of other keys is there
                raise ConflictError(f"{key!r} in {self.where} cannot be created: the server "
                                    "says it exists; is it a path prefix of other keys?",
                                    key=key) from None
            if current.data != data:
                raise ConflictError(f"immutable {key!r} in {self.where} already holds "
                                    "different bytes", key=key) from None

    async def put_all_if_absent(self, items: Sequence[tuple[str, bytes]], *,
                                cache_control: str | None = None) -> None:
        """One conditional PUT per object, half of ``max_connections`` at a time."""
        for key, _ in items:
            self.object_key(key)
        gate = asyncio.Semaphore(max(1, self.config.max_connections // 2))

        async def one(key: str, data: bytes) -> None:
            async with gate:
                await self.put_if_absent(key, data, cache_control=cache_control)
        outcomes = await asyncio.gather(*(one(k, d) for k, d in items), return_exceptions=True)
        raise_worst(outcomes)

    async def put_if_version(self, key: str, data: bytes, version: str | None, *,
                             cache_control: str | None = None) -> str:
        try:
            return await self._put(key, data, if_none_match=version is None, if_match=version,
                                   cache_control=cache_control)
        except (ConflictError, NotFoundError):  # NotFound: If-Match on a missing key
            current = await self._get_or_none(key)
            if current is not None and current.data == data:
                return current.version
            raise ConflictError(f"{key!r} in {self.where} is no longer at version {version}; "
                                "another writer changed it", key=key) from None

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], *, immutable: bool) -> int:
        self.object_key(key)
        size = self.config.part_size
        async with aclosing(s3_multipart.split(chunks, size)) as parts:
            first = await anext(parts, b"")
            second = await anext(parts, None) if len(first) == size else None
            if second is None:  # it fits in one part: one plain put
                await (self.put_if_absent(key, first) if immutable else self.put(key, first))
                return len(first)
            return await s3_multipart.upload(
                self, key, s3_multipart.chain(first, second, rest=parts), immutable=immutable,
                part_size=size, concurrency=self.config.part_concurrency)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        full = self.config.key_prefix + check_prefix(prefix)
        token = ""
        while True:
            async def call(token: str = token) -> ListObjectsV2OutputTypeDef:
                if token:
                    return await self.client.list_objects_v2(
                        Bucket=self.bucket, Prefix=full, ContinuationToken=token)
                return await self.client.list_objects_v2(Bucket=self.bucket, Prefix=full)
            page = await self.call("list", prefix, call)
            for item in page.get("Contents", []):
                yield item["Key"][len(self.config.key_prefix):]
            token = page.get("NextContinuationToken", "")
            if not page.get("IsTruncated") or not token:
                return

    async def delete(self, key: str) -> None:
        with suppress(NotFoundError):
            await self.call("delete", key, lambda: self.client.delete_object(
                Bucket=self.bucket, Key=self.object_key(key)))

    def _saw_answer(self, parsed: Mapping[str, Any], **_: Any) -> None:
        """Every answer, errors included (botocore's ``after-call``): note the server's clock."""
        date = parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if date:
            with suppress(TypeError, ValueError):
                self.clock_offset_s = time.time() - (parsedate_to_datetime(date).timestamp() + 0.5)

    def object_key(self, key: str) -> str:
        """The key in the bucket: the configured prefix, then ``key`` (checked)."""
        return self.config.key_prefix + check_key(key)

    async def call(self, op: str, key: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` with retries of transient failures; what still fails is translated into
        a notar error naming the operation, endpoint, bucket and key."""
        try:
            return await retrying(call, policy=self.config.retry, transient=_transient)
        except (ClientError, BotoCoreError, aiohttp.ClientError, TimeoutError) as e:
            raise self._translate(e, op, key) from e

    async def _put(self, key: str, data: bytes, *, if_none_match: bool = False,
                   if_match: str | None = None, cache_control: str | None = None) -> str:
        checksum = base64.b64encode(await s3_multipart.sha256(data)).decode()
        request: PutObjectRequestTypeDef = {"Bucket": self.bucket, "Key": self.object_key(key),
                                            "Body": data, "ChecksumSHA256": checksum}
        if if_none_match:
            request["IfNoneMatch"] = "*"
        if if_match is not None:
            request["IfMatch"] = if_match
        if cache_control is not None:
            request["CacheControl"] = cache_control
        r = await self.call("put", key, lambda: self.client.put_object(**request))
        return r["ETag"]

    async def _get_or_none(self, key: str) -> Versioned | None:
        try:
            return await self.get_versioned(key)
        except NotFoundError:
            return None

    def _translate(self, e: Exception, op: str, key: str) -> NotarError:
        what = f"{op} {key!r} in {self.where}"
        if not isinstance(e, ClientError):
            corrupt = isinstance(e, ChecksumError | FlexibleChecksumError)
            return StorageError(f"{what} failed{' (corrupted in transit)' if corrupt else ''}: "
                                f"{e}", key=key, location=self.where, transient=_transient(e))
        code, message = _code(e), e.response.get("Error", {}).get("Message", "")
        if code in _NOT_FOUND:
            return NotFoundError(f"{key!r} not found in {self.where}", key=key)
        if code == "PreconditionFailed":
            return ConflictError(f"{what}: precondition failed", key=key)
        if code == "NoSuchBucket":
            hint = "create it or fix S3_BUCKET"
        elif code in _CREDENTIALS:
            hint = "credentials refused; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        elif code in _CORRUPT:
            hint = "the body was corrupted in transit (checksum mismatch) and refused"
        else:
            hint = "the server refused it"
        return StorageError(f"{what} failed: {code} {message}: {hint}", key=key,
                            location=self.where, transient=_transient(e))


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _transient(e: BaseException) -> bool:
    if isinstance(e, ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return _code(e) in _TRANSIENT_CODES or status == 429 or status >= 500
    if isinstance(e, SSLError):
        return False
    # Refused or reset connections, timeouts, truncated or corrupted reads: worth another try.
    return isinstance(e, BotoConnectionError | HTTPClientError | IncompleteReadError | ChecksumError
                      | FlexibleChecksumError | aiohttp.ClientError | TimeoutError)
