"""The S3 driver's view of the server's clock (``S3Store.clock_offset_s``, exported as
``notar_store_clock_offset_seconds`` for the clock-skew alerts): this host's wall clock minus the
``Date`` of the server's latest answer, error answers included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from email.utils import formatdate

import pytest
from aiobotocore.session import AioSession
from aiohttp import web

from storage.errors import NotFoundError
from storage.retry import RetryPolicy
from storage.s3 import S3Config, S3Store
from tests.seaweed import S3Target
from tests.storage.conftest import open_s3

AN_HOUR = 3600.0


async def test_a_server_on_this_host_has_the_same_clock(s3_target: S3Target, aio_session: AioSession) -> None:
    store = await open_s3(s3_target, aio_session)
    try:
        assert store.clock_offset_s is None  # nothing answered yet
        with pytest.raises(NotFoundError):
            await store.get("no-such-key")
        assert store.clock_offset_s is not None and abs(store.clock_offset_s) < 2
    finally:
        await store.close()


@pytest.fixture
async def an_hour_behind() -> AsyncIterator[S3Store]:
    """A server whose every answer is 404 NoSuchKey, dated an hour before this host's clock."""

    async def handle(_: web.Request) -> web.Response:
        xml = "<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>"
        date = formatdate(time.time() - AN_HOUR, usegmt=True)
        return web.Response(status=404, text=xml, content_type="application/xml", headers={"Date": date})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    config = S3Config(
        bucket="skewed",
        endpoint=f"http://127.0.0.1:{runner.addresses[0][1]}",
        access_key_id="k",
        secret_access_key="s",
        retry=RetryPolicy(attempts=1),
    )
    store = await S3Store.from_config(config)
    yield store
    await store.close()
    await runner.cleanup()


async def test_a_server_clock_behind_gives_a_positive_offset(an_hour_behind: S3Store) -> None:
    with pytest.raises(NotFoundError):
        await an_hour_behind.get("tile/0/000")
    offset = an_hour_behind.clock_offset_s
    assert offset is not None and abs(offset - AN_HOUR) < 2, offset
