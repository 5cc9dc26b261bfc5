"""One call to the anchor for the submissions of one tenant that arrive together.

A worker of `notar serve --workers N` answering single-digest requests would otherwise make one
internal HTTP request per digest: the anchor then parses, routes and answers each (about as much
CPU as the whole request costs in one process), while its sequencer puts them in one batch
anyway. `Coalescer.submit` holds each submission until the event loop has run every callback
that is ready — all the requests whose bytes arrived in that round — and sends the tenant's
submissions of that round as one, at most MAX_DIGESTS digests; each caller gets its own receipts
back, byte for byte as the anchor wrote them. The anchor refuses a request that would take a
digest past REPEATS_MAX whole: a merged submission so refused is sent again one by one, so that
only the request at fault is refused. Other errors (pushback, an anchor unreachable) are every
caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.internal.wire import MAX_DIGESTS, RECEIPTS_HEAD, RECEIPTS_TAIL
from services.model import Digests
from storage.errors import RepeatsCapped, StorageError

Submit = Callable[[str, Digests], Awaitable[bytes]]
_SEPARATOR = b',{"format":'  # between two receipts; never inside one (a quote in a string is \")


@dataclass
class _Round:
    members: list[tuple[Digests, asyncio.Future[bytes]]] = field(default_factory=list)
    count: int = 0


class Coalescer:
    """`submit(tenant, digests)` as `send` answers it, merged per tenant and loop round."""

    def __init__(self, send: Submit) -> None:
        self._send = send
        self._open: dict[str, _Round] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, tenant: str, digests: Digests) -> bytes:
        if len(digests) >= MAX_DIGESTS:
            return await self._send(tenant, digests)
        loop = asyncio.get_running_loop()
        current = self._open.get(tenant)
        if current is None or current.count + len(digests) > MAX_DIGESTS:
            current = self._open[tenant] = _Round()
            loop.call_soon(self._flush, tenant, current)
        future: asyncio.Future[bytes] = loop.create_future()
        current.members.append((digests, future))
        current.count += len(digests)
        return await future

    def _flush(self, tenant: str, closing: _Round) -> None:
        if self._open.get(tenant) is closing:
            del self._open[tenant]
        task = asyncio.get_running_loop().create_task(self._answer(tenant, closing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, tenant: str, closing: _Round) -> None:
        members = [(d, f) for d, f in closing.members if not f.done()]  # a caller gone: not sent
        if not members:
            return
        if len(members) == 1:
            await _settle(members[0][1], self._send(tenant, members[0][0]))
            return
        merged = Digests([t for d, _ in members for t in d.texts], b"".join(d.values for d, _ in members))
        try:
            answer = await self._send(tenant, merged)
        except RepeatsCapped:  # whose digest it was is not said: each is sent alone
            await asyncio.gather(*(_settle(f, self._send(tenant, d)) for d, f in members))
            return
        except BaseException as e:
            for _, future in members:
                if not future.done():
                    future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        try:
            parts = split_answer(answer, [len(d) for d, _ in members])
        except ValueError as e:
            error = StorageError(f"the anchor's answer cannot be split: {e}", location="anchor")
            for _, future in members:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), part in zip(members, parts, strict=True):
            if not future.done():
                future.set_result(part)


async def _settle(future: asyncio.Future[bytes], answer: Awaitable[bytes]) -> None:
    try:
        result = await answer
    except Exception as e:
        if not future.done():
            future.set_exception(e)
        return
    if not future.done():
        future.set_result(result)


def split_answer(answer: bytes, counts: list[int]) -> list[bytes]:
    """`{"receipts":[…]}` of a merged submission as one such answer per member, of `counts`
    receipts each, with the receipts' bytes as they are; ValueError when it holds another count."""
    if not (answer.startswith(RECEIPTS_HEAD + b"{") and answer.endswith(b"}" + RECEIPTS_TAIL)):
        raise ValueError(f"not an answer of receipts: {answer[:80]!r}")
    first, *rest = answer[len(RECEIPTS_HEAD) : -len(RECEIPTS_TAIL)].split(_SEPARATOR)
    receipts = [first, *(_SEPARATOR[1:] + r for r in rest)]
    if len(receipts) != sum(counts):
        raise ValueError(f"{len(receipts)} receipts for {sum(counts)} digests")
    out, at = [], 0
    for n in counts:
        out.append(RECEIPTS_HEAD + b",".join(receipts[at : at + n]) + RECEIPTS_TAIL)
        at += n
    return out
