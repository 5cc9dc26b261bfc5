"""Path traversal in the document, receipt and log routes: `..`, `%2e%2e`, `%2F`, backslashes,
absolute paths, NUL bytes, double and overlong encodings. Nothing outside the store is ever read:
the targets are named pipes, which a server that opened one would block on (and the test would
see, as a reader appears on the pipe), and the log signing key, whose bytes never come back.
On the fs store, and — one representative test — on SeaweedFS, where the target is an object
under another prefix of the same bucket."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from tests.hostile.conftest import Served
from tests.hostile.rawhttp import exchange, request
from tests.seaweed import S3Target

ROUTES = [
    "/v1/documents/{}",
    "/v1/receipts/{}",
    "/log/tile/{}",
    "/log/tile/0/{}",
    "/log/tile/entries/{}",
    "/log/{}",
    "/log/checkpoint/{}",
    "/{}",
]


def payloads(name: str, absolute: str) -> list[str]:
    """Ways to say ../../`name` (and the absolute path `absolute`) in a URL path segment."""
    up = ["..", "%2e%2e", "%2E%2E", ".%2e", "%252e%252e", "%c0%ae%c0%ae", "%ef%bc%8e%ef%bc%8e"]
    seps = ["/", "%2f", "%2F", "%5c", "\\", "%252f"]
    out = [f"{u}{s}{u}{s}{u}{s}{name}" for u in up for s in seps]
    out += [
        absolute,
        absolute.replace("/", "%2f"),
        "%2f" + absolute.lstrip("/"),
        f"../../{name}%00",
        f"../../{name}%00.json",
        f"0/../../../{name}",
        f"....//....//{name}",
        f"..;/..;/{name}",
        f"blake3:{'0' * 64}/../../../{name}",
        f"sha256:..%2f..%2f{name}",
        "%00",
        "..%00/..%00/" + name,
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "file:///etc/passwd",
    ]
    return out


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.mkfifo(path)
    return path


def opened_by_someone(pipe: Path) -> bool:
    """True when a process holds `pipe` open for reading (a server that tried to read it)."""
    try:
        fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        assert e.errno == errno.ENXIO, e
        return False
    os.close(fd)
    return True


@pytest.fixture
def targets(served: Served) -> Iterator[list[Path]]:
    pipes = [fifo(served.data / "canary"), fifo(served.data / "store" / "canary")]
    yield pipes
    for p in pipes:
        p.unlink()


async def test_traversal_never_leaves_the_store_on_fs(served: Served, targets: list[Path]) -> None:
    key_bytes = (served.data / "keys" / "log.key").read_bytes()
    auth = {"Authorization": f"Bearer {served.acme}"}
    tried = 0
    for route in ROUTES:
        for name, absolute in (
            ("canary", str(targets[0])),
            ("keys/log.key", str(served.data / "keys/log.key")),
        ):
            for p in payloads(name, absolute):
                target = route.replace("{}", p)
                answer = await exchange(served.port, request("GET", target, headers=auth), within=10)
                tried += 1
                assert 400 <= answer.status < 500 and answer.is_problem(), (target, answer)
                assert key_bytes not in answer.body and b"PRIVATE" not in answer.body, target
                for pipe in targets:
                    assert not opened_by_someone(pipe), f"{target} made the server open {pipe}"
    assert tried == len(ROUTES) * 2 * len(payloads("x", "/x"))
    ok = await exchange(served.port, request("GET", "/log/checkpoint"))
    assert ok.status == 200, "the log is still served"


async def test_a_tile_path_is_only_ever_a_tile(served: Served) -> None:
    """Well-formed tile paths are served; anything else under /log/tile/ is a 404 problem."""
    await served.marker()
    good = await exchange(served.port, request("GET", "/log/tile/entries/000.p/1"))
    assert good.status in (200, 404), good
    for odd in (
        "0/000.p/0",
        "0/000.p/257",
        "0/x",
        "9/000",
        "0/-1",
        "0/0001",
        "entries/000/../000",
        "0/000.p/1/",
    ):
        answer = await exchange(served.port, request("GET", f"/log/tile/{odd}"))
        assert answer.status == 404 and answer.is_problem(404), (odd, answer)


def s3_client(target: S3Target) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=target.endpoint,
        region_name=target.region,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
    )


async def test_traversal_never_leaves_the_prefix_on_seaweedfs(served_s3: Served, s3_target: S3Target) -> None:
    prefix = served_s3.env["NOTAR_S3_PREFIX"]
    secret = b"canary " + os.urandom(16).hex().encode()
    client = s3_client(s3_target)
    outside = ["canary", "other/log/checkpoint", prefix.rstrip("/") + "-sibling/canary"]
    try:
        for key in outside:
            client.put_object(Bucket=s3_target.bucket, Key=key, Body=secret)
        await served_s3.marker()
        auth = {"Authorization": f"Bearer {served_s3.acme}"}
        for route in ("/log/tile/{}", "/v1/documents/{}", "/log/{}"):
            for name in ("canary", "other/log/checkpoint", "x/" + outside[2]):
                for p in payloads(name, "/" + s3_target.bucket + "/canary")[::3]:
                    target = route.replace("{}", p)
                    answer = await exchange(served_s3.port, request("GET", target, headers=auth), within=10)
                    assert 400 <= answer.status < 500 and answer.is_problem(), (target, answer)
                    assert secret not in answer.body, target
        ok = await exchange(served_s3.port, request("GET", "/log/checkpoint"))
        assert ok.status == 200 and secret not in ok.body
    finally:
        for key in outside:
            client.delete_object(Bucket=s3_target.bucket, Key=key)
        client.close()
