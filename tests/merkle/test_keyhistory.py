"""Key rotation statements and key histories (merkle.keyhistory): the exact text, strict parsing,
signatures, and chains of statements — tampered statements and out-of-order chains refused."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.cosignature import CosignatureSigner
from merkle.keyhistory import (
    ROTATION_HEADER,
    KeyHistory,
    Rotation,
    clock_key_name,
    open_rotation,
    parse_rotation,
    read_rotation,
)
from merkle.mldsa import MLDSA44CosignatureSigner
from merkle.note import Signer, add_signatures, parse_note, sign_note

ORIGIN = "notar.example/log"
KEYS = [Signer(ORIGIN, bytes([i]) * 32) for i in range(1, 6)]
CLOCKS = [CosignatureSigner(clock_key_name(ORIGIN), bytes([100 + i]) * 32) for i in range(1, 6)]
SIZES = [0, 10, 10, 250, 1_000_000]  # handover sizes of KEYS[1:], in order (two at the same size)


def only_value_error(fn: Callable[..., object], *args: Any) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args)
    assert type(info.value) is ValueError, repr(info.value)
    return str(info.value)


def rotation(i: int, size: int | None = None) -> Rotation:
    """KEYS[i] -> KEYS[i + 1] (with CLOCKS[i + 1]) at SIZES[i + 1]."""
    return Rotation(
        ORIGIN,
        SIZES[i + 1] if size is None else size,
        KEYS[i].verifier(),
        KEYS[i + 1].verifier(),
        CLOCKS[i + 1].verifier(),
    )


def chain(n: int = 4) -> list[str]:
    return [rotation(i).sign(KEYS[i]) for i in range(n)]


def test_the_statement_text_is_exactly_six_lines() -> None:
    r = rotation(0, 1234)
    assert r.text() == (
        "notar.key-rotation.v1\n"
        "origin notar.example/log\n"
        "from 1234\n"
        f"old {KEYS[0].verifier().to_key()}\n"
        f"log {KEYS[1].verifier().to_key()}\n"
        f"clock {CLOCKS[1].verifier().to_key()}\n"
    )
    assert parse_rotation(r.text()) == r
    note = r.sign(KEYS[0])
    assert parse_note(note).text == r.text()
    assert open_rotation(note, KEYS[0].verifier()) == r
    assert read_rotation(note) == r


def test_a_rotation_is_never_a_checkpoint_and_a_checkpoint_never_a_rotation() -> None:
    from merkle.checkpoint import Checkpoint, parse_checkpoint

    only_value_error(parse_checkpoint, rotation(0).text())
    only_value_error(parse_rotation, Checkpoint(ROTATION_HEADER, 3, bytes(32)).format())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("from 10\n", "from 010\n"),
        lambda t: t.replace("from 10\n", "from  10\n"),
        lambda t: t.replace("from 10\n", "from 10 \n"),
        lambda t: t.replace("from 10\n", "from -1\n"),
        lambda t: t.replace("from 10\n", "from 9223372036854775808\n"),
        lambda t: t.replace("notar.key-rotation.v1", "notar.key-rotation.v2"),
        lambda t: t.replace("origin ", "Origin "),
        lambda t: t + "extra line\n",
        lambda t: t[:-1],
        lambda t: t.replace("\n", "\r\n"),
        lambda t: "\n".join(t.split("\n")[:2] + [t.split("\n")[3], t.split("\n")[2]] + t.split("\n")[4:]),
        lambda t: t.replace(f"log {KEYS[1].verifier().to_key()}", f"log {KEYS[0].verifier().to_key()}"),
        lambda t: t.replace(f"clock {CLOCKS[1].verifier().to_key()}", f"clock {KEYS[1].verifier().to_key()}"),
        lambda t: t.replace(f"log {KEYS[1].verifier().to_key()}", f"log {CLOCKS[1].verifier().to_key()}"),
        lambda t: t.replace("origin notar.example/log\n", "origin notar.example/other\n"),
    ],
)
def test_malformed_statements_are_refused(mutate: Callable[[str], str]) -> None:
    text = rotation(0).text()
    assert mutate(text) != text
    only_value_error(parse_rotation, mutate(text))


def test_keys_must_be_named_after_the_origin() -> None:
    stranger = Signer("other.example/log", bytes([9]) * 32)
    only_value_error(Rotation, ORIGIN, 1, KEYS[0].verifier(), stranger.verifier(), CLOCKS[1].verifier())
    bad_clock = CosignatureSigner("notar.example/log/clock2", bytes([9]) * 32)
    only_value_error(Rotation, ORIGIN, 1, KEYS[0].verifier(), KEYS[1].verifier(), bad_clock.verifier())
    only_value_error(Rotation, ORIGIN, 1, KEYS[0].verifier(), KEYS[0].verifier(), CLOCKS[1].verifier())
    pq_clock = MLDSA44CosignatureSigner(clock_key_name(ORIGIN), bytes(32))
    r = Rotation(ORIGIN, 1, KEYS[0].verifier(), KEYS[1].verifier(), pq_clock.verifier())
    assert parse_rotation(r.text()) == r  # an ML-DSA-44 clock key is a cosignature key too


def test_only_the_old_key_signs_it() -> None:
    r = rotation(0)
    only_value_error(r.sign, KEYS[1])
    forged = sign_note(r.text(), [KEYS[1]])  # signed by the new key only
    assert "not signed" in only_value_error(open_rotation, forged, KEYS[0].verifier())
    only_value_error(open_rotation, r.sign(KEYS[0]), KEYS[1].verifier())  # names another old key
    both = add_signatures(r.sign(KEYS[0]), [KEYS[1]])  # other signatures are ignored
    assert open_rotation(both, KEYS[0].verifier()) == r


def test_history_periods_and_keys_at_a_size() -> None:
    h = KeyHistory.from_statements(KEYS[0].verifier(), chain(), CLOCKS[0].verifier())
    assert [(p.from_size, p.until_size, p.state) for p in h.periods] == [
        (0, 10, "retired"),
        (10, 10, "retired"),
        (10, 250, "retired"),
        (250, 1_000_000, "retired"),
        (1_000_000, None, "active"),
    ]
    assert h.current.log == KEYS[4].verifier() and h.current.clock == CLOCKS[4].verifier()
    assert h.statements == tuple(chain())
    assert h.log_keys_at(0) == [KEYS[0].verifier()]
    assert h.log_keys_at(9) == [KEYS[0].verifier()]
    assert h.log_keys_at(10) == [KEYS[0].verifier(), KEYS[1].verifier(), KEYS[2].verifier()]
    assert h.log_keys_at(11) == [KEYS[2].verifier()]
    assert h.log_keys_at(250) == [KEYS[2].verifier(), KEYS[3].verifier()]
    assert h.log_keys_at(2**62) == [KEYS[4].verifier()]
    assert h.clock_keys_at(5) == [CLOCKS[0].verifier()]
    assert h.period_of(KEYS[3].verifier()) == h.periods[3]
    assert h.period_of(Signer(ORIGIN, bytes(32)).verifier()) is None
    only_value_error(h.at, -1)
    without_first_clock = KeyHistory.from_statements(KEYS[0].verifier().to_key(), chain(1))
    assert without_first_clock.clock_keys_at(0) == [] and without_first_clock.clock_keys_at(10) == [
        CLOCKS[1].verifier()
    ]


def test_a_chain_must_start_at_the_first_key() -> None:
    message = only_value_error(KeyHistory.from_statements, KEYS[1].verifier(), chain())
    assert message.startswith("rotation statement 1:")


def test_reusing_a_key_is_refused() -> None:
    h = KeyHistory.from_statements(KEYS[0].verifier(), chain(2))
    back = Rotation(ORIGIN, 20, KEYS[2].verifier(), KEYS[0].verifier(), CLOCKS[3].verifier()).sign(KEYS[2])
    assert "already used" in only_value_error(h.rotate, back)
    old_clock = Rotation(ORIGIN, 20, KEYS[2].verifier(), KEYS[3].verifier(), CLOCKS[1].verifier())
    old_clock_note = old_clock.sign(KEYS[2])
    assert "already used" in only_value_error(h.rotate, old_clock_note)


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(4)))
def test_out_of_order_chains_are_refused(order: list[int]) -> None:
    statements = chain()
    shuffled = [statements[i] for i in order]
    if order == sorted(order):
        assert KeyHistory.from_statements(KEYS[0].verifier(), shuffled).current.log == KEYS[4].verifier()
    else:
        only_value_error(KeyHistory.from_statements, KEYS[0].verifier(), shuffled)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=4))
def test_sizes_must_not_go_back(sizes: list[int]) -> None:
    statements = [rotation(i, size).sign(KEYS[i]) for i, size in enumerate(sizes)]
    if all(a <= b for a, b in itertools.pairwise(sizes)):
        h = KeyHistory.from_statements(KEYS[0].verifier(), statements)
        assert [p.from_size for p in h.periods] == [0, *sizes]
        for size in range(0, 1001, 37):  # every size has a key, and the current one is the last
            assert h.log_keys_at(size) and h.at(size)[-1].covers(size)
    else:
        assert "out of order" in only_value_error(KeyHistory.from_statements, KEYS[0].verifier(), statements)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_tampered_statements_are_refused(data: st.DataObject) -> None:
    note = rotation(0).sign(KEYS[0])
    at = data.draw(st.integers(0, len(note) - 1))
    replacement = data.draw(st.characters(codec="utf-8"))
    tampered = note[:at] + replacement + note[at + 1 :]
    if tampered == note:
        return
    history = KeyHistory.start(KEYS[0].verifier())
    try:
        rotated = history.rotate(tampered)
    except ValueError:
        return
    # A change that survives can only be in the signature lines' unverified parts: the statement
    # and the old key's valid signature are the same as the original's.
    assert rotated.current.log == KEYS[1].verifier()
    assert parse_note(tampered).text == parse_note(note).text


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(raw: bytes) -> None:
    try:
        read_rotation(raw)
    except ValueError as e:
        assert type(e) is ValueError or isinstance(e, UnicodeError)


def test_the_documented_example_is_a_valid_statement() -> None:
    """docs/witness.md shows a statement and its signature: they must stay valid."""
    doc = (Path(__file__).parents[2] / "docs" / "witness.md").read_text(encoding="utf-8")
    start = doc.index("    notar.key-rotation.v1\n    origin example.org/log")
    block = doc[start : doc.index("\n\n", doc.index("\n    — ", start)) + 1]
    note = "".join(line.removeprefix("    ") + "\n" for line in block.splitlines())
    old = read_rotation(note).old_log
    assert open_rotation(note, old) == parse_rotation(parse_note(note).text)
    assert KeyHistory.from_statements(old, [note]).current.from_size == 1234


# -- follow: a client that trusts one key of the history accepts later keys only by the chain -------


@pytest.mark.parametrize("trusted", range(5))
def test_follow_from_any_trusted_key_gives_the_periods_from_it_on(trusted: int) -> None:
    statements = chain(4)
    full = KeyHistory.from_statements(KEYS[0].verifier(), statements, CLOCKS[0].verifier())
    followed = KeyHistory.follow(KEYS[trusted].verifier(), statements)
    assert followed.periods[1:] == full.periods[trusted + 1 :]
    first = followed.periods[0]
    want = full.periods[trusted]
    assert (first.log, first.from_size, first.until_size) == (want.log, want.from_size, want.until_size)
    # the trusted key's clock: the one its (untrusted) statement named, or none for the first key
    assert first.clock == (None if trusted == 0 else CLOCKS[trusted].verifier())
    assert first.statement is None  # the statement that introduced it is not vouched for by it


def test_follow_refuses_a_key_outside_the_chain_and_a_forged_link_after_it() -> None:
    statements = chain(3)
    stranger = Signer(ORIGIN, b"\x77" * 32)
    assert "not in this key history" in only_value_error(KeyHistory.follow, stranger.verifier(), statements)
    # a statement after the trusted key that its predecessor did not sign: refused
    forged = Rotation(ORIGIN, 300, KEYS[2].verifier(), stranger.verifier(), CLOCKS[4].verifier())
    with pytest.raises(ValueError, match="rotation statement 3"):
        KeyHistory.follow(KEYS[1].verifier(), [*statements[:2], sign_note(forged.text(), [stranger])])
    # the same link signed by the right key is accepted, from any trusted point before it
    good = [*statements[:2], forged.sign(KEYS[2])]
    assert KeyHistory.follow(KEYS[1].verifier(), good).current.log == stranger.verifier()
    # statements before the trusted key are read, not trusted: a bad signature there does not matter
    tampered = [sign_note(read_rotation(statements[0]).text(), [stranger]), *statements[1:]]
    assert KeyHistory.follow(KEYS[1].verifier(), tampered).current.log == KEYS[3].verifier()
    with pytest.raises(ValueError):
        KeyHistory.follow(KEYS[0].verifier(), tampered)


def test_follow_with_no_statements_is_the_trusted_key_alone() -> None:
    h = KeyHistory.follow(KEYS[0].verifier().to_key(), [], CLOCKS[0].verifier().to_key())
    assert [(p.log, p.clock, p.from_size, p.until_size) for p in h.periods] == [
        (KEYS[0].verifier(), CLOCKS[0].verifier(), 0, None)
    ]
