"""Small HTTP probes the scenarios poll while a fault is on."""

from __future__ import annotations

import aiohttp


async def ready(s: aiohttp.ClientSession, url: str) -> bool:
    """True when ``url``/readyz answers 200 within 3 s; False on any other answer or error."""
    try:
        async with s.get(url + "/readyz", timeout=aiohttp.ClientTimeout(total=3)) as r:
            await r.read()
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
