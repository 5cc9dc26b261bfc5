"""Checkpoint bodies (C2SP tlog-checkpoint) and notar's signed checkpoints (SPEC §3)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from merkle.cosignature import CosignatureSigner, CosignatureVerifier, verifier_from_key
from merkle.note import Signature, Signer, Verifier, add_signatures, is_valid_key_name, parse_note, sign_note

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "signed_note.json").read_text(encoding="utf-8")
)
REAL = next(c for c in VECTORS["notes"] if c["id"] == "real-world-cosigned-checkpoint")
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
ROOT = bytes(range(32))
ROOT64 = base64.b64encode(ROOT).decode()
ORIGIN = "notar.localhost/log"
LOG = Signer(ORIGIN, bytes(32))
CLOCK = CosignatureSigner("notar.localhost/clock", bytes([1]) * 32)
T = 1_700_000_000


def only_value_error(fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    assert type(info.value) is ValueError, repr(info.value)


def test_c2sp_example_body() -> None:
    cp = parse_checkpoint(SPEC_TEXT, origin="example.com/behind-the-sofa")
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.format() == SPEC_TEXT


def test_extensions_round_trip() -> None:
    text = f"{ORIGIN}\n0\n{ROOT64}\nextension 1\n— not a signature\n"
    cp = parse_checkpoint(text)
    assert cp.size == 0 and cp.extensions == ("extension 1", "— not a signature")
    assert cp.format() == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        f"{ORIGIN}\n1\n",  # two lines
        f"{ORIGIN}\n1\n{ROOT64}",  # no final newline
        f"\n1\n{ROOT64}\n",  # empty origin
        f"{ORIGIN}\n01\n{ROOT64}\n",  # leading zero
        f"{ORIGIN}\n00\n{ROOT64}\n",
        f"{ORIGIN}\n-1\n{ROOT64}\n",
        f"{ORIGIN}\n+1\n{ROOT64}\n",
        f"{ORIGIN}\n 1\n{ROOT64}\n",
        f"{ORIGIN}\n1 \n{ROOT64}\n",
        f"{ORIGIN}\n1_000\n{ROOT64}\n",
        f"{ORIGIN}\n1e3\n{ROOT64}\n",
        f"{ORIGIN}\n0x10\n{ROOT64}\n",
        f"{ORIGIN}\n\u0661\n{ROOT64}\n",  # Arabic-Indic digit one: int() would take it
        f"{ORIGIN}\n\uff11\n{ROOT64}\n",  # fullwidth digit one
        f"{ORIGIN}\n{MAX_TREE_SIZE + 1}\n{ROOT64}\n",
        f"{ORIGIN}\n{'9' * 5000}\n{ROOT64}\n",
        f"{ORIGIN}\n\n{ROOT64}\n",  # empty size
        f"{ORIGIN}\n1\n{base64.b64encode(bytes(31)).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(bytes(33)).decode()}\n",
        f"{ORIGIN}\n1\n{ROOT64.rstrip('=')}\n",  # unpadded
        f"{ORIGIN}\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",  # padding bits set
        f"{ORIGIN}\n1\n{base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()}\n",
        f"{ORIGIN}\n1\n {ROOT64}\n",
        f"{ORIGIN}\n1\n{ROOT64}\n\n",  # empty extension line
        f"{ORIGIN}\n1\n{ROOT64}\nok\n\nok\n",
        f"{ORIGIN}\r\n1\n{ROOT64}\n",  # control character
        f"{ORIGIN}\x00\n1\n{ROOT64}\n",
        f"\ud800\n1\n{ROOT64}\n",  # not UTF-8 encodable
    ],
)
def test_malformed_bodies(text: str) -> None:
    only_value_error(parse_checkpoint, text)


def test_origin_checked() -> None:
    text = Checkpoint(ORIGIN, 1, ROOT).format()
    assert parse_checkpoint(text, origin=ORIGIN).origin == ORIGIN
    only_value_error(parse_checkpoint, text, origin="notar.localhost/log/2")
    only_value_error(parse_checkpoint, text, origin="")


@pytest.mark.parametrize(
    "args",
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("a\x01", 1, ROOT, ()),
        (ORIGIN, -1, ROOT, ()),
        (ORIGIN, MAX_TREE_SIZE + 1, ROOT, ()),
        (ORIGIN, True, ROOT, ()),
        (ORIGIN, 1.0, ROOT, ()),
        (ORIGIN, 1, ROOT[:31], ()),
        (ORIGIN, 1, ROOT.hex(), ()),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, ("two\nlines",)),
    ],
)
def test_invalid_checkpoints_refused(args: tuple[Any, ...]) -> None:
    only_value_error(Checkpoint, *args)


def test_sign_and_open() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    note = sign_checkpoint(cp, LOG, CLOCK, T)
    assert note.startswith(cp.format() + "\n— notar.localhost/log ")
    opened = open_checkpoint(
        note, origin=ORIGIN, log_verifiers=[LOG.verifier()], clock_verifiers=[CLOCK.verifier()]
    )
    assert opened.ok and opened.checkpoint == cp
    assert (opened.log_key_name, opened.cosigned_time, opened.cosigned_by) == (ORIGIN, T, CLOCK.name)

    without_clock = open_checkpoint(note, origin=ORIGIN, log_verifiers=[LOG.verifier()])
    assert without_clock.ok and without_clock.cosigned_time is None
    assert [s.name for s in without_clock.note.unverified] == ["notar.localhost/clock"]


def test_open_reports_untrusted_and_failing_signatures() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), LOG, CLOCK, T)
    stranger = Signer(ORIGIN, bytes([9]) * 32).verifier()  # same name, another key
    untrusted = open_checkpoint(note, origin=ORIGIN, log_verifiers=[stranger])
    assert not untrusted.ok and untrusted.log_key_name is None

    parsed = parse_note(note)
    log_sig, clock_sig = parsed.signatures
    flipped = clock_sig.signature[:-1] + bytes([clock_sig.signature[-1] ^ 1])
    tampered = Signature(clock_sig.name, clock_sig.key_id, flipped)
    lines = [parsed.text, log_sig.line() + tampered.line()]
    bad_clock = open_checkpoint(
        "\n".join(lines),
        origin=ORIGIN,
        log_verifiers=[LOG.verifier()],
        clock_verifiers=[CLOCK.verifier()],
    )
    assert bad_clock.log_key_name == ORIGIN and bad_clock.cosigned_time is None
    assert not bad_clock.ok and [s.name for s in bad_clock.note.invalid] == [CLOCK.name]


def test_open_refuses_wrong_origin_and_non_checkpoints() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), LOG, CLOCK, T)
    only_value_error(open_checkpoint, note, origin="other/log", log_verifiers=[LOG.verifier()])
    not_a_checkpoint = sign_note("hello\nworld\n", [LOG])
    only_value_error(open_checkpoint, not_a_checkpoint, origin="hello", log_verifiers=[LOG.verifier()])


def test_witness_cosignatures_added_later() -> None:
    """SPEC §3: external witnesses add cosignatures; they are ignored unless trusted."""
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), LOG, CLOCK, T)
    witness = CosignatureSigner("witness.example/w1", bytes([2]) * 32)
    cosigned = add_signatures(note, [witness.at(T + 5)])
    opened = open_checkpoint(
        cosigned,
        origin=ORIGIN,
        log_verifiers=[LOG.verifier()],
        clock_verifiers=[CLOCK.verifier(), witness.verifier()],
    )
    assert opened.ok and opened.cosigned_time == T  # the earliest verified time
    only_clock = open_checkpoint(cosigned, origin=ORIGIN, log_verifiers=[LOG.verifier()])
    assert only_clock.ok and len(only_clock.note.unverified) == 2


def test_real_world_cosigned_checkpoint() -> None:
    verifiers = [verifier_from_key(k) for k in REAL["vkeys"]]
    logs = [v for v in verifiers if isinstance(v, Verifier)]
    witnesses = [v for v in verifiers if isinstance(v, CosignatureVerifier)]
    opened = open_checkpoint(
        REAL["note"], origin=REAL["checkpoint"]["origin"], log_verifiers=logs,
        clock_verifiers=witnesses,
    )  # fmt: skip
    assert opened.ok and opened.log_key_name == REAL["checkpoint"]["origin"]
    assert opened.checkpoint.size == REAL["checkpoint"]["size"]
    assert opened.checkpoint.root == base64.b64decode(REAL["checkpoint"]["root"])
    assert opened.cosigned_time == REAL["checkpoint"]["cosigned_time"]
    assert len(opened.note.verified) == 5 and len(opened.note.unverified) == 1


# --- Hypothesis ---------------------------------------------------------------------------

lines = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters=[chr(c) for c in range(32)]),
    min_size=1,
    max_size=40,
)
checkpoints = st.builds(
    Checkpoint,
    origin=lines,
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(lines, max_size=3).map(tuple),
)


@given(checkpoints)
def test_format_parse_round_trip(cp: Checkpoint) -> None:
    assert parse_checkpoint(cp.format(), origin=cp.origin) == cp


@given(checkpoints, st.integers(0, 2**63 - 1))
def test_signed_round_trip(cp: Checkpoint, timestamp: int) -> None:
    opened = open_checkpoint(
        sign_checkpoint(cp, LOG, CLOCK, timestamp),
        origin=cp.origin,
        log_verifiers=[LOG.verifier()],
        clock_verifiers=[CLOCK.verifier()],
    )
    assert opened.checkpoint == cp and opened.cosigned_time == timestamp
    assert opened.ok is (cp.origin == ORIGIN)  # the log key signs only the log it is named after
    if is_valid_key_name(cp.origin):
        own = Signer(cp.origin, bytes([3]) * 32)
        mine = open_checkpoint(sign_checkpoint(cp, own, CLOCK, timestamp), origin=cp.origin,
                               log_verifiers=[own.verifier()])
        assert mine.ok and mine.log_key_name == cp.origin


def test_only_a_key_named_after_the_origin_signs_the_log() -> None:
    """SPEC §2: the log key's name is the origin; a trusted key of another name vouches for nothing."""
    other = Signer("other.example/log", bytes([7]) * 32)
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), other, CLOCK, T)
    opened = open_checkpoint(
        note,
        origin=ORIGIN,
        log_verifiers=[other.verifier(), LOG.verifier()],
        clock_verifiers=[CLOCK.verifier()],
    )
    assert not opened.ok and opened.log_key_name is None
    assert [s.name for s in opened.note.verified] == ["other.example/log", CLOCK.name]
    assert (opened.cosigned_time, opened.cosigned_by) == (T, CLOCK.name)  # any trusted clock key, named


fragments = st.sampled_from(["\n", "0", "1", "01", "-", "=", "A", ROOT64, ORIGIN, " ", "+"])


@settings(max_examples=300)
@given(st.text() | st.lists(fragments | st.text(max_size=3), max_size=12).map("".join))
def test_parse_raises_only_value_error_and_accepts_only_canonical(text: str) -> None:
    try:
        cp = parse_checkpoint(text)
    except ValueError as e:
        assert type(e) is ValueError, repr(e)
    else:
        assert cp.format() == text  # whatever is accepted is in canonical form


@settings(max_examples=200)
@given(st.data())
def test_mutated_signed_checkpoints_raise_only_value_error(data: st.DataObject) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 10, ROOT), LOG, CLOCK, T)
    i = data.draw(st.integers(0, len(note)))
    j = data.draw(st.integers(i, min(len(note), i + 3)))
    mutated = note[:i] + data.draw(st.text(max_size=2) | fragments) + note[j:]
    try:
        opened = open_checkpoint(
            mutated, origin=ORIGIN, log_verifiers=[LOG.verifier()],
            clock_verifiers=[CLOCK.verifier()],
        )  # fmt: skip
    except ValueError as e:
        assert type(e) is ValueError, repr(e)
    else:
        if mutated != note and opened.ok:  # still valid: the change left the signed bytes alone
            assert parse_note(mutated).text == parse_note(note).text
