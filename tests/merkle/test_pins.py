"""Pinned trust (merkle.pins): a server's keys are accepted only when signed statements link them to
the pinned ones — rotations forwards and backwards, new logs introduced by a pinned log's key —
and first use pins what it sees only when allowed."""

from __future__ import annotations

import re

import pytest

from merkle.cosignature import CosignatureSigner
from merkle.keyhistory import LogKey, Rotation, clock_key_name, open_rotation
from merkle.note import Signer, parse_note, sign_note, verify_note
from merkle.pins import Introduction, OfferedLog, PinningError, Pins, reconcile

ORIGIN = "pins.notar.test/log"
SHARD = ORIGIN + "/1"
KEYS = [Signer(ORIGIN, bytes([i]) * 32) for i in range(1, 5)]
CLOCKS = [CosignatureSigner(clock_key_name(ORIGIN), bytes([50 + i]) * 32) for i in range(1, 5)]
SHARD_KEY = Signer(SHARD, bytes([90]) * 32)
SHARD_CLOCK = CosignatureSigner(clock_key_name(SHARD), bytes([91]) * 32)


def vk(signer: Signer | CosignatureSigner) -> str:
    return signer.verifier().to_key()


def offered(i: int, origin: str = ORIGIN) -> OfferedLog:
    return OfferedLog(origin, vk(KEYS[i]), vk(CLOCKS[i]))


def rotate(i: int, size: int) -> str:
    """KEYS[i] -> KEYS[i + 1] at `size`, signed by KEYS[i]."""
    rotation = Rotation(ORIGIN, size, KEYS[i].verifier(), KEYS[i + 1].verifier(), CLOCKS[i + 1].verifier())
    return rotation.sign(KEYS[i])


SHARD_HEADER = "test.shard-keys\n"


def shard_statement(signer: Signer) -> str:
    """A made-up kind of statement, as shards may define one: the new log's keys, signed."""
    return sign_note(f"{SHARD_HEADER}{vk(SHARD_KEY)}\n{vk(SHARD_CLOCK)}\n", [signer])


def open_shard(statement: str, signer: LogKey) -> Introduction:
    note = parse_note(statement)
    if not note.text.startswith(SHARD_HEADER) or not verify_note(note, [signer]).verified:
        raise ValueError("not a shard statement signed by that key")
    log, clock = note.text[len(SHARD_HEADER) :].splitlines()
    assert (log, clock) == (vk(SHARD_KEY), vk(SHARD_CLOCK))
    return Introduction(SHARD, SHARD_KEY.verifier(), SHARD_CLOCK.verifier())


def test_first_use_pins_what_the_server_shows_only_when_allowed() -> None:
    with pytest.raises(PinningError, match="none of which is trusted"):
        reconcile(Pins(), [offered(0)], [], first_use=False)
    pins, notes = reconcile(Pins(), [offered(0)], [], first_use=True)
    assert pins.keys() == [vk(KEYS[0]), vk(CLOCKS[0])] and "first use" in notes[0]
    assert pins.keys_at(ORIGIN, 5) == [vk(KEYS[0]), vk(CLOCKS[0])] and pins.keys_at("else/log", 5) == []
    again, notes = reconcile(pins, [offered(0)], [], first_use=True)
    assert again == pins and notes == []
    assert Pins.from_obj(pins.to_obj()) == pins


def test_other_keys_for_a_pinned_log_are_refused_without_a_statement() -> None:
    pins, _ = reconcile(Pins(), [offered(0)], [], first_use=True)
    with pytest.raises(PinningError, match=re.escape(f"log key {vk(KEYS[1])}")):
        reconcile(pins, [offered(1)], [], first_use=True)  # first use does not apply to a pinned log
    forged = Rotation(ORIGIN, 10, KEYS[0].verifier(), KEYS[1].verifier(), CLOCKS[1].verifier()).text()
    with pytest.raises(PinningError):  # the statement signed by the new key itself
        reconcile(pins, [offered(1)], [sign_note(forged, [KEYS[1]])], first_use=True)
    wrong_clock = OfferedLog(ORIGIN, vk(KEYS[0]), vk(CLOCKS[2]))
    with pytest.raises(PinningError, match="clock key"):
        reconcile(pins, [wrong_clock], [], first_use=True)


def test_a_rotation_signed_by_the_pinned_key_is_followed() -> None:
    pins, _ = reconcile(Pins(), [offered(0)], [], first_use=True)
    statements = [rotate(1, 20), rotate(0, 10)]  # in any order
    after, notes = reconcile(pins, [offered(0), offered(1), offered(2)], statements, first_use=False)
    assert [p.log.to_key() for p in after.history(ORIGIN).periods] == [vk(k) for k in KEYS[:3]]  # type: ignore[union-attr]
    assert len(notes) == 2 and "from tree size 10" in notes[0] and "from tree size 20" in notes[1]
    assert after.keys_at(ORIGIN, 5) == [vk(KEYS[0]), vk(CLOCKS[0])]
    assert after.keys_at(ORIGIN, 15) == [vk(KEYS[1]), vk(CLOCKS[1])]
    assert after.keys_at(ORIGIN, 20) == [vk(KEYS[1]), vk(KEYS[2]), vk(CLOCKS[1]), vk(CLOCKS[2])]
    assert Pins.from_obj(after.to_obj()) == after
    # a server still showing the old key (a stale pod) is reconciled too: nothing is lost
    stale, notes = reconcile(after, [offered(0)], [], first_use=False)
    assert stale == after and notes == []


def test_a_client_pinned_after_a_rotation_accepts_the_retired_key_it_signed_over() -> None:
    pins, _ = reconcile(Pins(), [offered(1)], [], first_use=True)  # pinned KEYS[1] only
    after, notes = reconcile(pins, [offered(0), offered(1)], [rotate(0, 10)], first_use=False)
    history = after.history(ORIGIN)
    assert history is not None and [p.log for p in history.periods] == [
        KEYS[0].verifier(),
        KEYS[1].verifier(),
    ]
    assert history.periods[0].clock is None, "the retired key's clock key is not vouched for by anything"
    assert "before the pinned one" in notes[0]
    with pytest.raises(PinningError):
        reconcile(pins, [offered(0), offered(1)], [], first_use=False)


def test_a_new_log_needs_a_statement_by_a_pinned_logs_key() -> None:
    pins, _ = reconcile(Pins(), [offered(0)], [], first_use=True)
    shard = OfferedLog(SHARD, vk(SHARD_KEY), vk(SHARD_CLOCK))
    with pytest.raises(PinningError, match="no statement signed by a pinned log's key"):
        reconcile(pins, [offered(0), shard], [], first_use=True, introducers=[open_shard])
    stranger = Signer(ORIGIN, bytes([77]) * 32)
    with pytest.raises(PinningError):
        reconcile(
            pins, [offered(0), shard], [shard_statement(stranger)], first_use=True, introducers=[open_shard]
        )
    after, notes = reconcile(
        pins, [offered(0), shard], [shard_statement(KEYS[0])], first_use=False, introducers=[open_shard]
    )
    assert (
        after.keys_at(SHARD, 3) == [vk(SHARD_KEY), vk(SHARD_CLOCK)] and f"statement of {ORIGIN}" in notes[0]
    )
    # rotation statements are statements too: one signed by shard 0's key introduces no new log
    with pytest.raises(PinningError):
        reconcile(pins, [offered(0), shard], [rotate(0, 10)], first_use=False, introducers=[_rotations])


def _rotations(statement: str, signer: LogKey) -> Introduction:
    rotation = open_rotation(statement, signer)
    return Introduction(rotation.origin, rotation.new_log, rotation.new_clock)


def test_a_malformed_trust_file_is_refused() -> None:
    pins, _ = reconcile(Pins(), [offered(0)], [rotate(0, 10)], first_use=True)
    obj = pins.to_obj()
    for bad in (
        {"format": "x", "logs": []},
        {**obj, "logs": [{**obj["logs"][0], "statements": [rotate(1, 5)]}]},  # not chained
        {**obj, "logs": [{**obj["logs"][0], "origin": "else/log"}]},
        {**obj, "logs": obj["logs"] * 2},
    ):
        with pytest.raises(ValueError):
            Pins.from_obj(bad)
