"""HTTP/1.1 spoken by hand over asyncio streams, for the bytes aiohttp's client refuses to send
(raw non-UTF-8, 100 KB headers, stalled bodies) and for answers read exactly as they arrive."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

PROBLEM_JSON = "application/problem+json"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = field(repr=False, default=b"")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def json(self) -> Any:
        return json.loads(self.body)

    def is_problem(self, status: int | None = None) -> bool:
        """A problem+json answer (RFC 9457) whose `status` member matches the HTTP status."""
        if self.content_type != PROBLEM_JSON:
            return False
        doc = self.json()
        return (
            doc.get("status") == self.status
            and str(doc.get("type", "")).startswith("urn:notar:problem:")
            and bool(doc.get("detail"))
            and (status is None or self.status == status)
        )


def request(
    method: str,
    target: bytes | str,
    *,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    raw_headers: bytes = b"",
) -> bytes:
    """The bytes of one request (Host and Connection: close added), Content-Length set when a body
    is given; `raw_headers` are inserted verbatim (already CRLF-terminated)."""
    t = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method.encode() + b" " + t + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    items = headers.items() if isinstance(headers, dict) else headers or []
    lines += [f"{k}: {v}".encode("latin-1") for k, v in items]
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n" + raw_headers + b"\r\n" + (body or b"")


async def read_answer(reader: asyncio.StreamReader, *, within: float = 20.0) -> Answer:
    """One HTTP answer from `reader` (body by Content-Length, chunked, or up to EOF)."""
    async with asyncio.timeout(within):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = await reader.read()
    return Answer(status, headers, body, head)


async def exchange(port: int, data: bytes, *, within: float = 20.0) -> Answer:
    """Send `data` on a fresh connection to 127.0.0.1:`port` and read one answer. A server that
    answers before reading everything may reset the rest of the send: that is ignored."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    try:
        writer.write(data)
        try:
            async with asyncio.timeout(within):
                await writer.drain()
        except ConnectionError:
            pass
        return await read_answer(reader, within=within)
    finally:
        writer.close()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What the server sent before it closed the connection, or None if it was still open after
    `seconds`."""
    got = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                got += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return got
