"""Writing a finished JSON answer, of any size, to the client."""

from __future__ import annotations

from aiohttp import web

from merkle.compact import MEDIA_TYPE

COMPACT = MEDIA_TYPE  # the compact batch answer's media type (merkle.compact)

_WRITE_SLICE = 256 * 1024
_JSON_RANGES = ("application/json", "application/*", "*/*")


def accepts_compact(accept: str | None) -> bool:
    """Whether an `Accept` header asks for the compact batch answer (merkle.compact): it names
    `application/vnd.notar.batch+json` with a quality above 0 and at least that of any range
    JSON falls in. Without the header, or with anything else, the default answer is sent."""
    if not accept or MEDIA_TYPE not in accept.lower():
        return False
    compact = json = 0.0
    for item in accept.lower().split(","):
        kind, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if kind == MEDIA_TYPE:
            compact = max(compact, q)
        elif kind in _JSON_RANGES:
            json = max(json, q)
    return compact > 0 and compact >= json


async def send_json(
    request: web.Request, body: bytes, *, status: int = 200, content_type: str = "application/json"
) -> web.StreamResponse:
    """`body` (JSON bytes) as the answer. 10,000 receipts are ~20 MB: handed over whole, asyncio
    (3.11) copies them into the transport's buffer and moves the rest down after every send;
    written in slices that wait for the socket, the server spends half the CPU on it (10 -> 4.5
    ms per answer)."""
    if len(body) <= _WRITE_SLICE:
        return web.Response(body=body, status=status, content_type=content_type)
    response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    try:
        for at in range(0, len(body), _WRITE_SLICE):
            await response.write(view[at : at + _WRITE_SLICE])
    except ConnectionError:
        pass  # the client left: aiohttp finishes the response and logs it as such
    return response
