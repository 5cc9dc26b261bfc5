"""Ingest's spreading of writes over shards (services/ingest/spread.py), with fake shards: parts by
spare capacity, answers joined in request order, failover within a request, back-off and probe,
503 with Retry-After ≤ 2 s, and nothing a shard acknowledged ever sent elsewhere."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from merkle import compact as compact_answer
from services.common.problems import to_response
from services.ingest.spread import Loaded, Spread, SpreadConfig, _carve, _shares
from services.model import Digests
from storage.errors import NotarError, PushbackError, RepeatsCapped, StorageError


class Shard:
    """A shard that answers each digest with a fake receipt naming it, and records what it got.
    `fail` is raised (once per element) by the next submissions; `hang` makes them never answer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[str] = []
        self.fail: list[BaseException] = []
        self.hang = False
        self.answer: bytes | None = None
        self.answers_left: int | None = None  # then it fails every submission

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        await asyncio.sleep(0)
        if self.fail:
            raise self.fail.pop(0)
        if self.answers_left is not None:
            if self.answers_left == 0:
                raise StorageError("down now", transient=True)
            self.answers_left -= 1
        if self.hang:
            await asyncio.Event().wait()
        self.got += digests.texts
        if self.answer is not None:
            return self.answer
        if compact:  # the framing of merkle.compact, one part naming its digests
            part = {"shard": self.name, "subject": tenant, "digests": list(digests.texts)}
            return compact_answer.answer([orjson.dumps(part)])
        return orjson.dumps(
            {"receipts": [{"digest": d, "shard": self.name, "subject": tenant} for d in digests.texts]}
        )

    def refusal(self, count: int = 1) -> NotarError | None:
        return None


class LoadedShard(Shard):
    def __init__(self, name: str, spare: int) -> None:
        super().__init__(name)
        self.room = spare

    def spare(self) -> int | None:
        return self.room


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(n: int) -> Digests:
    return Digests.parse(["blake3:" + os.urandom(32).hex() for _ in range(n)])


async def receipts(spread: Spread, digests: Digests) -> list[dict[str, str]]:
    answer = orjson.loads(await spread.submit("acme", digests))
    assert [r["digest"] for r in answer["receipts"]] == list(digests.texts), "in request order"
    return list(answer["receipts"])


def by_shard(rs: list[dict[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rs:
        counts[r["shard"]] = counts.get(r["shard"], 0) + 1
    return counts


def unavailable() -> StorageError:
    return StorageError("the anchor answered 502", transient=True)


async def test_a_request_is_split_by_spare_capacity_and_joined_in_order() -> None:
    a, b, c = LoadedShard("a", 30_000), LoadedShard("b", 10_000), LoadedShard("c", 0)
    assert isinstance(a, Loaded) and not isinstance(Shard("x"), Loaded)
    spread = Spread({0: a, 1: b, 2: c})
    digests = request(4000)
    counts = by_shard(await receipts(spread, digests))
    assert counts == {"a": 3000, "b": 1000}, "3:1 as their spare; the full one gets nothing"
    assert sorted(a.got + b.got) == sorted(digests.texts), "each digest sent exactly once"


async def test_a_request_that_fits_nowhere_gets_503_with_retry_after_of_at_most_2_s() -> None:
    a, b = LoadedShard("a", 100), LoadedShard("b", 100)
    spread = Spread({0: a, 1: b})
    with pytest.raises(PushbackError) as raised:
        await spread.submit("acme", request(300))
    assert a.got == [] and b.got == [], "nothing sent that the shards could not hold"
    assert 1 <= raised.value.retry_after <= 2
    assert to_response(raised.value).headers["Retry-After"] in {"1", "2"}
    assert len(await receipts(spread, request(200))) == 200


async def test_without_a_load_signal_the_least_busy_shard_gets_more() -> None:
    a, b = Shard("a"), Shard("b")
    spread = Spread({0: a, 1: b}, config=SpreadConfig(window=20_000))
    a.hang = True
    busy = asyncio.create_task(spread.submit("acme", request(200)))  # one part: all on one shard
    await asyncio.sleep(0.01)
    hung = 0 if spread.health()[0].inflight else 1
    assert spread.health()[hung].inflight == 200
    a.hang = False
    counts = by_shard(await receipts(spread, request(8000)))
    idle = "b" if hung == 0 else "a"
    assert counts[idle] > counts["a" if idle == "b" else "b"], counts
    busy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await busy
    assert spread.health()[hung].inflight == 0


async def test_small_requests_take_turns_over_idle_shards() -> None:
    a, b = Shard("a"), Shard("b")
    spread = Spread({0: a, 1: b})
    for _ in range(6):
        await receipts(spread, request(1))
    assert len(a.got) == 3 and len(b.got) == 3, "not all on the first shard"


@pytest.mark.parametrize(
    ("error", "sure"),
    [
        (PushbackError("busy", retry_after=1.5), "true"),
        (StorageError("the anchor answered 500", transient=True), "false"),
        (ConnectionResetError("reset"), "false"),
    ],
)
async def test_a_failing_shard_is_marked_down_and_its_part_goes_to_the_others(
    error: BaseException, sure: str
) -> None:
    reader = InMemoryMetricReader()
    clock = Clock()
    a, b, c = Shard("a"), Shard("b"), Shard("c")
    spread = Spread({0: a, 1: b, 2: c}, meter=MeterProvider([reader]).get_meter("t"), clock=clock)
    b.fail = [error]
    digests = request(3000)
    counts = by_shard(await receipts(spread, digests))
    assert "b" not in counts and sum(counts.values()) == 3000
    assert sorted(a.got + c.got) == sorted(digests.texts), "each digest acknowledged once"
    health = spread.health()[1]
    assert health.failures == 1 and not health.usable(clock.now)
    assert metric(reader, "notar_spread_moved_entries") == {(("shard", "1"), ("sure", sure)): 1000}
    assert metric(reader, "notar_spread_shard_up")[(("shard", "1"),)] == 0

    await receipts(spread, request(3000))
    assert b.got == [], "down: not asked during its back-off"
    clock.now += 2.0
    counts = by_shard(await receipts(spread, request(3000)))
    assert 0 < counts["b"] <= SpreadConfig().probe_max, "probed with a small part after the back-off"
    counts = by_shard(await receipts(spread, request(3000)))
    assert counts["b"] == 1000, "up again: its full share"
    assert metric(reader, "notar_spread_shard_up")[(("shard", "1"),)] == 1
    assert sum(metric(reader, "notar_spread_entries").values()) == 12_000


async def test_a_pushback_backs_off_for_its_retry_after_capped_at_2_s() -> None:
    clock = Clock()
    a, b = Shard("a"), Shard("b")
    spread = Spread({0: a, 1: b}, clock=clock)
    a.fail = [PushbackError("busy", retry_after=30)]
    b.fail = [PushbackError("busy", retry_after=0.5)]
    with pytest.raises(PushbackError) as raised:
        await spread.submit("acme", request(1000))
    assert raised.value.retry_after == 1.0, "the earliest back-off, at least 1 s"
    assert spread.health()[0].down_until == clock.now + 2.0
    assert spread.refusal() is not None, "shed before reading the body while none is up"
    clock.now += 0.5
    assert spread.refusal() is None
    assert by_shard(await receipts(spread, request(10))) == {"b": 10}


async def test_a_loaded_shard_that_pushes_back_is_not_marked_down() -> None:
    a, b = LoadedShard("a", 10_000), LoadedShard("b", 10_000)
    spread = Spread({0: a, 1: b})
    a.fail = [PushbackError("full", retry_after=1)]
    assert by_shard(await receipts(spread, request(2000))) == {"b": 2000}
    assert spread.health()[0].usable(0) and spread.health()[0].failures == 0, "its spare tells when"


async def test_what_a_shard_acknowledged_is_never_sent_elsewhere() -> None:
    a, b, c = Shard("a"), Shard("b"), Shard("c")
    spread = Spread({0: a, 1: b, 2: c})
    b.fail = [unavailable()]
    digests = request(3000)
    await receipts(spread, digests)
    sent = a.got + c.got
    assert sorted(sent) == sorted(digests.texts), "b's third went to a and c, nothing else twice"

    a2, b2 = Shard("a"), Shard("b")
    spread = Spread({0: a2, 1: b2})
    a2.answers_left, b2.fail = 1, [unavailable()]
    digests = request(2000)
    with pytest.raises(PushbackError):
        await spread.submit("acme", digests)  # b fails, then a fails b's half: none left
    assert len(a2.got) == 1000 and b2.got == [], "a's acknowledged half was sent nowhere else"
    assert set(a2.got) <= set(digests.texts)


async def test_an_unsure_part_is_resent_or_refused_as_configured() -> None:
    reader = InMemoryMetricReader()
    a, b = Shard("a"), Shard("b")
    config = SpreadConfig(timeout_s=0.05)
    spread = Spread({0: a, 1: b}, config=config, meter=MeterProvider([reader]).get_meter("t"))
    a.hang = True
    digests = request(2000)
    assert by_shard(await receipts(spread, digests)) == {"b": 2000}
    assert metric(reader, "notar_spread_moved_entries") == {(("shard", "0"), ("sure", "false")): 1000}
    assert metric(reader, "notar_spread_failures") == {(("reason", "timeout"), ("shard", "0")): 1}

    a2, b2 = Shard("a"), Shard("b")
    strict = Spread({0: a2, 1: b2}, config=SpreadConfig(timeout_s=0.05, resend_unsure=False))
    a2.hang = True
    with pytest.raises(PushbackError):
        await strict.submit("acme", request(2000))
    assert len(b2.got) == 1000, "only its own half: the unsure one is not re-sent"


async def test_compact_answers_are_joined_part_by_part_in_request_order() -> None:
    """A compact request's parts come back from each shard in the compact framing and are joined
    into one compact answer, the request's digests in order; a shard that fails has its part
    sent elsewhere, and an answer in the other framing is a failure."""
    a, b, c = Shard("a"), Shard("b"), Shard("c")
    spread = Spread({0: a, 1: b, 2: c})
    b.fail = [PushbackError("busy", retry_after=1)]
    c.answer = b'{"receipts":[{"digest":"x"}]}'  # not what was asked for
    digests = request(3000)
    raw = await spread.submit("acme", digests, compact=True)
    assert raw.startswith(compact_answer.HEAD) and raw.endswith(compact_answer.TAIL)
    parts = orjson.loads(raw)["parts"]
    assert [d for p in parts for d in p["digests"]] == list(digests.texts)
    assert {p["shard"] for p in parts} == {"a"}
    assert spread.health()[2].failures == 1


async def test_a_malformed_answer_is_a_failure_not_a_receipt() -> None:
    a, b = Shard("a"), Shard("b")
    spread = Spread({0: a, 1: b})
    a.answer = b'{"receipts":[]}'
    assert by_shard(await receipts(spread, request(1000))) == {"b": 1000}
    assert spread.health()[0].failures == 1


async def test_the_request_s_own_error_is_answered_as_it_is() -> None:
    a, b = Shard("a"), Shard("b")
    spread = Spread({0: a, 1: b})
    a.fail = [RepeatsCapped("too many", digest="blake3:00", cap=3)]
    with pytest.raises(RepeatsCapped):
        await spread.submit("acme", request(1000))
    assert spread.health()[0].failures == 0 and len(b.got) == 500, "not re-sent, shard not blamed"


async def test_the_shards_change_and_health_stays() -> None:
    clock = Clock()
    a, b, c = Shard("a"), Shard("b"), Shard("c")
    spread = Spread({0: a, 1: b}, clock=clock)
    b.fail = [unavailable()]
    await receipts(spread, request(1000))
    spread.set_shards({1: b, 2: c})
    assert spread.health()[1].failures == 1 and 0 not in spread.health()
    assert by_shard(await receipts(spread, request(1000))) == {"c": 1000}
    with pytest.raises(ValueError):
        spread.set_shards({})
    assert await spread.submit("acme", Digests.parse([])) == b'{"receipts":[]}'


@given(
    total=st.integers(0, 50_000),
    shards=st.lists(
        st.tuples(st.integers(1, 30_000), st.one_of(st.none(), st.integers(0, 20_000))), max_size=6
    ),
)
def test_shares_fill_in_proportion_never_over_a_cap(total: int, shards: list[tuple[int, int | None]]) -> None:
    weights, caps = [w for w, _ in shards], [c for _, c in shards]
    sizes = _shares(total, weights, caps)
    room = sum(float("inf") if c is None else c for c in caps)
    if room < total or (total and not shards):
        assert sizes is None
        return
    assert sizes is not None and sum(sizes) == total
    assert all(c is None or n <= c for n, c in zip(sizes, caps, strict=True))
    if all(c is None for c in caps):
        for n, w in zip(sizes, weights, strict=True):
            assert abs(n - total * w / sum(weights)) <= 1


@given(st.lists(st.integers(1, 50), min_size=1, max_size=5), st.data())
def test_carved_parts_cover_the_pending_ranges_in_order(lengths: list[int], data: st.DataObject) -> None:
    pending, start = [], 0
    for n in lengths:
        pending.append((start, start + n))
        start += n + data.draw(st.integers(0, 3))
    total = sum(lengths)
    cuts = sorted(data.draw(st.lists(st.integers(0, total), max_size=4)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
    parts = _carve(pending, [(i, Shard(str(i)), n) for i, n in enumerate(sizes)])
    covered = [k for p in parts for k in range(p.start, p.end)]
    assert covered == [k for a, b in pending for k in range(a, b)]
    assert all(p.end > p.start for p in parts)


def metric(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    data = reader.get_metrics_data()
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    for p in m.data.data_points:
                        out[tuple(sorted((k, str(v)) for k, v in p.attributes.items()))] = p.value  # type: ignore[union-attr]
    return out
