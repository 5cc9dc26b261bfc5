"""Small HTTP probes the scenarios poll while a fault is on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp


async def ready(s: aiohttp.ClientSession, url: str) -> bool:
    """True when ``url``/readyz answers 200 within 3 s; False on any other answer or error."""
    try:
        async with s.get(url + "/readyz", timeout=aiohttp.ClientTimeout(total=3)) as r:
            await r.read()
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def pushback_problems(load: Mapping[str, Any]) -> list[str]:
    """What a load summary (``Record.summary()``) shows of writes answered other than by a receipt
    or a 503 problem+json with Retry-After, or not answered in time."""
    found = []
    bad = {code: n for code, n in load["requests"].items() if code not in ("200", "503", "connection")}
    if bad:
        found.append(f"answers other than 200 or 503 to writes: {bad}")
    if load["bare_503"]:
        found.append(f"{load['bare_503']} answers were 503 without Retry-After or problem+json")
    if load["timeouts"]:
        found.append(f"{load['timeouts']} writes got no answer within the client's timeout")
    return found
