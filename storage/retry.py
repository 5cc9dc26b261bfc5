"""Retries with capped exponential backoff and full jitter, for calls that are safe to repeat."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; before try n+1 sleep a random time in
    ``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter", so that many clients throttled at
    once do not come back in step)."""

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def delay(self, retry: int) -> float:
        """How long to wait before retry number ``retry`` (0 for the first retry)."""
        return random.uniform(0.0, min(self.max_delay, self.base_delay * (2**retry)))  # noqa: S311


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    transient: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await ``call()`` until it returns, retrying while it raises an ``Exception`` that
    ``transient`` accepts and attempts remain; the last error propagates unchanged."""
    retry = 0
    while True:
        try:
            return await call()
        except Exception as e:
            if retry + 1 >= policy.attempts or not transient(e):
                raise
        await sleep(policy.delay(retry))
        retry += 1
