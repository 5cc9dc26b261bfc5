"""services.internal.coalesce: the submissions of one tenant that arrive in one loop round go to
the anchor as one, each caller gets its own receipts byte for byte; a REPEATS_MAX refusal of the
merged submission refuses only the request at fault; other errors reach every caller."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from services.internal.coalesce import Coalescer, split_answer
from services.internal.wire import RECEIPTS_HEAD, RECEIPTS_TAIL
from services.model import Digests
from storage.errors import PushbackError, RepeatsCapped


def digests(*ns: int) -> Digests:
    return Digests.parse([f"sha256:{n:064x}" for n in ns])


class Anchor:
    """Answers like the anchor's framing: one receipt per digest, with quotes and the separator's
    look-alike inside its strings; refuses a request holding digest 666 (REPEATS_MAX)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def submit(self, tenant: str, ds: Digests) -> bytes:
        self.calls.append((tenant, list(ds.texts)))
        if any(t.endswith(f"{666:064x}") for t in ds.texts):
            raise RepeatsCapped("too many", digest=ds.texts[0], cap=1)
        receipts = [
            orjson.dumps({"format": "v2", "digest": t, "note": ',{"format": tricky', "tenant": tenant})
            for t in ds.texts
        ]
        return RECEIPTS_HEAD + b",".join(receipts) + RECEIPTS_TAIL


def expected(tenant: str, ds: Digests) -> bytes:
    return asyncio.run(Anchor().submit(tenant, ds))


def test_one_round_is_one_call_and_each_caller_gets_its_own_receipts() -> None:
    anchor = Anchor()

    async def main() -> tuple[bytes, ...]:
        c = Coalescer(anchor.submit)
        return await asyncio.gather(
            c.submit("acme", digests(1)), c.submit("acme", digests(2, 3)), c.submit("beta", digests(4))
        )

    answers = list(asyncio.run(main()))
    assert answers == [
        expected("acme", digests(1)), expected("acme", digests(2, 3)), expected("beta", digests(4))
    ]
    assert sorted(anchor.calls) == [("acme", list(digests(1, 2, 3).texts)), ("beta", list(digests(4).texts))]


def test_a_refusal_of_the_merged_call_refuses_only_the_request_at_fault() -> None:
    anchor = Anchor()

    async def main() -> list[bytes | BaseException]:
        c = Coalescer(anchor.submit)
        return list(
            await asyncio.gather(
                c.submit("acme", digests(1)), c.submit("acme", digests(666)), c.submit("acme", digests(2)),
                return_exceptions=True,
            )
        )

    first, refused, third = asyncio.run(main())
    assert first == expected("acme", digests(1)) and third == expected("acme", digests(2))
    assert isinstance(refused, RepeatsCapped)


def test_other_errors_reach_every_caller() -> None:
    async def busy(tenant: str, ds: Digests) -> bytes:
        raise PushbackError("busy", retry_after=1)

    async def main() -> list[bytes | BaseException]:
        c = Coalescer(busy)
        return list(
            await asyncio.gather(c.submit("a", digests(1)), c.submit("a", digests(2)), return_exceptions=True)
        )

    assert all(isinstance(r, PushbackError) for r in asyncio.run(main()))


def test_split_refuses_an_answer_of_another_count() -> None:
    answer = expected("acme", digests(1, 2))
    assert split_answer(answer, [1, 1]) == [expected("acme", digests(1)), expected("acme", digests(2))]
    with pytest.raises(ValueError, match="2 receipts for 3 digests"):
        split_answer(answer, [1, 2])
    with pytest.raises(ValueError, match="not an answer"):
        split_answer(b'{"error":1}', [1])
