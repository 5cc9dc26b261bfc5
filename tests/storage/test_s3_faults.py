"""The S3 driver when things go wrong: bad settings, a missing bucket, refused credentials, a
server that is down, bodies corrupted in transit, uploads interrupted half-way, throttling and
timeouts. Each must end in one clear notar error naming endpoint, bucket and key, and leave
nothing half-written behind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import AioSession
from aiohttp import web

from storage.errors import ConfigError, ConflictError, NotFoundError, StorageError
from storage.retry import RetryPolicy
from storage.s3 import MiB, S3Config, S3Store
from tests import seaweed
from tests.seaweed import S3Target, free_ports
from tests.storage.conftest import open_s3

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)


def b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def pending_uploads(store: S3Store) -> list[str]:
    listing = await store.client.list_multipart_uploads(
        Bucket=store.bucket, Prefix=store.config.key_prefix)
    return [u["Key"] for u in listing.get("Uploads", [])]


def assert_names_place(error: BaseException, target: S3Target, bucket: str, key: str) -> None:
    text = str(error)
    assert target.endpoint in text and repr(bucket) in text and repr(key) in text, text
    assert "botocore" not in text and "Traceback" not in text


# -- the test server ------------------------------------------------------------------------

@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])
def test_without_weed_s3_tests_skip_locally_but_fail_in_ci(
        monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]) -> None:
    monkeypatch.setattr(seaweed, "find_weed", lambda: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="weed"):
        seaweed.weed_or_skip()


# -- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "setting"), [
    ({"bucket": "UPPER"}, "S3_BUCKET"),
    ({"bucket": "ab"}, "S3_BUCKET"),
    ({"endpoint": "127.0.0.1:9000"}, "S3_ENDPOINT"),
    ({"endpoint": "ftp://host"}, "S3_ENDPOINT"),
    ({"prefix": "a/../b"}, "S3_PREFIX"),
    ({"access_key_id": "only-the-id"}, "AWS_ACCESS_KEY_ID"),
])
def test_wrong_settings_stop_with_the_setting_named(overrides: dict[str, Any],
                                                    setting: str) -> None:
    settings: dict[str, Any] = {"bucket": "notar", "endpoint": "http://127.0.0.1:9000"}
    settings.update(overrides)
    with pytest.raises(ConfigError, match=setting) as caught:
        S3Config(**settings)
    assert caught.value.setting == setting


# -- a real server, misused --------------------------------------------------------------------

async def test_missing_bucket_is_one_clear_error(s3_target: S3Target,
                                                 aio_session: AioSession) -> None:
    store = await open_s3(s3_target, aio_session, bucket="notar-no-such-bucket")
    try:
        for call in (store.put_if_absent("tile/0/000", b"x"), store.get("tile/0/000")):
            with pytest.raises(StorageError, match="NoSuchBucket") as caught:
                await call
            assert_names_place(caught.value, s3_target, "notar-no-such-bucket", "tile/0/000")
            assert "S3_BUCKET" in str(caught.value) and not caught.value.transient
    finally:
        await store.close()


async def test_wrong_credentials_are_one_clear_error(s3_target: S3Target,
                                                     aio_session: AioSession) -> None:
    store = await open_s3(s3_target, aio_session, secret_access_key="not-the-secret")
    try:
        with pytest.raises(StorageError, match="AWS_SECRET_ACCESS_KEY") as caught:
            await store.put("checkpoint", b"x")
        assert_names_place(caught.value, s3_target, s3_target.bucket, "checkpoint")
        assert isinstance(caught.value.__cause__, Exception)  # the library error, chained
    finally:
        await store.close()


async def test_server_down_is_one_clear_transient_error(aio_session: AioSession) -> None:
    (port,) = free_ports(1)  # nothing listens there
    target = S3Target(f"http://127.0.0.1:{port}", "notar", "key", "secret")
    store = await S3Store.from_config(target.config(retry=FAST_RETRY, connect_timeout=1.0),
                                      session=aio_session)
    try:
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            await store.get("checkpoint")
        assert time.monotonic() - started < 5
        assert_names_place(caught.value, target, "notar", "checkpoint")
        assert caught.value.transient
    finally:
        await store.close()


def corrupt_body(request: Any, **_: Any) -> None:
    """A botocore before-send hook that flips the first byte of the body after it was signed
    and checksummed: corruption in transit."""
    body = request.body
    data = body.getvalue() if isinstance(body, io.BytesIO) else bytes(body)
    flipped = bytes([data[0] ^ 0xFF]) + data[1:]
    request.body = io.BytesIO(flipped) if isinstance(body, io.BytesIO) else flipped


async def test_a_body_corrupted_in_transit_is_refused(s3_target: S3Target,
                                                      s3_store: S3Store) -> None:
    s3_store.client.meta.events.register("before-send.s3.PutObject", corrupt_body)
    with pytest.raises(StorageError, match="corrupted in transit") as caught:
        await s3_store.put_if_absent("tile/0/000", b"tile bytes")
    assert_names_place(caught.value, s3_target, s3_target.bucket, "tile/0/000")
    s3_store.client.meta.events.unregister("before-send.s3.PutObject", corrupt_body)
    with pytest.raises(NotFoundError):
        await s3_store.get("tile/0/000")


async def test_a_corrupted_part_aborts_the_whole_upload(s3_store: S3Store) -> None:
    def corrupt_second_part(request: Any, **kwargs: Any) -> None:
        if "partNumber=2" in request.url:
            corrupt_body(request)

    s3_store.client.meta.events.register("before-send.s3.UploadPart", corrupt_second_part)
    with pytest.raises(StorageError, match="corrupted in transit"):
        await s3_store.put_stream("doc/big", one_chunk(os.urandom(12 * MiB)), immutable=True)
    with pytest.raises(NotFoundError):
        await s3_store.get("doc/big")
    assert await pending_uploads(s3_store) == []


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_an_interrupted_multipart_upload_leaves_no_object_and_no_parts(
        s3_store: S3Store) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(13):  # 13 MiB: two parts of 5 MiB are on their way when it breaks
            yield os.urandom(MiB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await s3_store.put_stream("doc/big", body(), immutable=True)
    assert [key async for key in s3_store.list()] == []
    assert await pending_uploads(s3_store) == []


async def test_a_cancelled_multipart_upload_is_aborted(s3_store: S3Store) -> None:
    uploading, forever = asyncio.Event(), asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(11 * MiB)
        await forever.wait()  # the client stalls; the server gives up on it
        yield b"never"

    s3_store.client.meta.events.register("before-send.s3.UploadPart",
                                         lambda **_: uploading.set())
    task = asyncio.create_task(s3_store.put_stream("doc/big", body(), immutable=False))
    await uploading.wait()
    assert await pending_uploads(s3_store) != []  # so the abort below is really tested
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pending_uploads(s3_store) == []
    assert [key async for key in s3_store.list()] == []


async def test_parts_go_up_concurrently_but_within_the_bound(
        s3_target: S3Target, aio_session: AioSession, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await open_s3(s3_target, aio_session, part_concurrency=3)
    in_flight, peak, checksums = 0, 0, {}
    real_upload_part = store.client.upload_part

    async def counting_upload_part(**kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        checksums[kwargs["PartNumber"]] = (kwargs["ChecksumSHA256"], b64sha256(kwargs["Body"]))
        try:
            return await real_upload_part(**kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(store.client, "upload_part", counting_upload_part)
    data = os.urandom(31 * MiB)  # 7 parts of 5 MiB
    try:
        assert await store.put_stream("doc/big", one_chunk(data), immutable=True) == len(data)
        assert await store.get("doc/big") == data
    finally:
        await store.delete("doc/big")
        await store.close()
    assert 2 <= peak <= 3
    assert sorted(checksums) == list(range(1, 8))
    assert all(sent == actual for sent, actual in checksums.values())


async def test_every_put_carries_the_sha256_of_its_body(s3_store: S3Store) -> None:
    seen: list[tuple[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        body = request.body
        data = body.getvalue() if isinstance(body, io.BytesIO) else bytes(body or b"")
        seen.append((request.headers.get("x-amz-checksum-sha256", b"").decode(),
                     b64sha256(data)))

    s3_store.client.meta.events.register("before-send.s3.PutObject", capture)
    await s3_store.put("checkpoint", b"c")
    await s3_store.put_if_absent("tile/0/000", b"t")
    await s3_store.put_if_version("lease", b"l", None)
    await s3_store.put_stream("doc/small", one_chunk(b"d" * 1000), immutable=True)
    assert len(seen) == 4
    assert all(sent == actual for sent, actual in seen), seen


async def test_the_prefix_keeps_stores_apart(s3_target: S3Target, aio_session: AioSession
                                             ) -> None:
    a = await open_s3(s3_target, aio_session)
    b = await open_s3(s3_target, aio_session)
    try:
        await a.put_if_absent("checkpoint", b"a")
        assert [k async for k in b.list()] == []
        with pytest.raises(NotFoundError):
            await b.get("checkpoint")
        raw = await a.client.get_object(Bucket=s3_target.bucket,
                                        Key=f"{a.config.key_prefix}checkpoint")
        async with raw["Body"] as body:
            assert await body.read() == b"a"
    finally:
        await a.delete("checkpoint")
        await a.close()
        await b.close()


# -- a scripted server: throttling, 5xx and timeouts --------------------------------------------

class ScriptedS3:
    """A minimal S3 (PUT with If-None-Match, GET) on loopback, whose next answers a test
    scripts: ``("error", status, code)``, ``("hang",)`` (stall before doing anything) or
    ``("store-then-hang",)`` (do the work, then stall so that the client times out)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.script: list[tuple[Any, ...]] = []
        self.requests: list[str] = []
        self.release = asyncio.Event()  # ends every stall, at teardown

    async def stall(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 5)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.method)
        body = await request.read()
        step = self.script.pop(0) if self.script else ("normal",)
        if step[0] == "error":
            return error(step[1], step[2])
        if step[0] == "hang":
            await self.stall()
        answer = self.answer(request, body)
        if step[0] == "store-then-hang":
            await self.stall()
        return answer

    def answer(self, request: web.Request, body: bytes) -> web.Response:
        key = request.path
        if request.method == "PUT":
            if request.headers.get("If-None-Match") == "*" and key in self.objects:
                return error(412, "PreconditionFailed")
            self.objects[key] = body
            return web.Response(headers={"ETag": '"e"'})
        if key not in self.objects:
            return error(404, "NoSuchKey")
        return web.Response(body=self.objects[key], headers={"ETag": '"e"'})


def error(status: int, code: str) -> web.Response:
    xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>scripted</Message></Error>"
    return web.Response(status=status, text=xml, content_type="application/xml")


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedS3, S3Store]]:
    server = ScriptedS3()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = S3Config(bucket="scripted", endpoint=f"http://127.0.0.1:{port}",
                      access_key_id="k", secret_access_key="s", read_timeout=0.5,
                      retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05))
    store = await S3Store.from_config(config)
    yield server, store
    server.release.set()
    await store.close()
    await runner.cleanup()


async def test_throttling_is_retried_until_it_passes(
        scripted: tuple[ScriptedS3, S3Store]) -> None:
    server, store = scripted
    server.script = [("error", 503, "SlowDown"), ("error", 429, "TooManyRequests")]
    await store.put_if_absent("tile/0/000", b"x")
    assert server.requests == ["PUT", "PUT", "PUT"]
    assert await store.get("tile/0/000") == b"x"


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    delays = [policy.delay(n) for n in range(8) for _ in range(50)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 300  # random, so that throttled clients do not return in step
    assert max(policy.delay(0) for _ in range(200)) <= 0.1


async def test_persistent_5xx_gives_up_after_the_policy_attempts(
        scripted: tuple[ScriptedS3, S3Store]) -> None:
    server, store = scripted
    server.script = [("error", 500, "InternalError")] * 10
    with pytest.raises(StorageError, match="InternalError") as caught:
        await store.put("checkpoint", b"x")
    assert server.requests == ["PUT"] * 4  # ours only: botocore's own retries are off
    assert caught.value.transient and "'scripted'" in str(caught.value)
    assert "'checkpoint'" in str(caught.value)


async def test_a_refusal_that_cannot_pass_is_not_retried(
        scripted: tuple[ScriptedS3, S3Store]) -> None:
    server, store = scripted
    server.script = [("error", 400, "InvalidArgument")]
    with pytest.raises(StorageError, match="InvalidArgument") as caught:
        await store.put("checkpoint", b"x")
    assert server.requests == ["PUT"] and not caught.value.transient


async def test_a_timed_out_write_that_landed_is_recognised_on_retry(
        scripted: tuple[ScriptedS3, S3Store]) -> None:
    server, store = scripted
    server.script = [("store-then-hang",)]  # "failed but stored"
    await store.put_if_absent("tile/0/000", b"x")
    assert server.requests == ["PUT", "PUT", "GET"]  # stored, 412, same bytes: success
    server.script = [("store-then-hang",)]
    await store.put_if_absent("tile/0/001", b"y")
    with pytest.raises(ConflictError):
        await store.put_if_absent("tile/0/001", b"z")


async def test_a_read_timeout_is_retried(scripted: tuple[ScriptedS3, S3Store]) -> None:
    server, store = scripted
    await store.put("checkpoint", b"x")
    server.script = [("hang",)]
    assert await store.get("checkpoint") == b"x"
    assert server.requests == ["PUT", "GET", "GET"]
