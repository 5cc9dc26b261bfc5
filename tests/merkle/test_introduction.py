"""merkle.introduction: a new shard's first keys, in one canonical text, signed by shard 0's log
key, and refused when anything about them is wrong."""

from __future__ import annotations

import pytest

from merkle.cosignature import CosignatureSigner
from merkle.introduction import Introduction, open_introduction, parse_introduction
from merkle.note import Signer, parse_note

ORIGIN = "intro.test/log"


def shard(origin: str) -> tuple[Signer, CosignatureSigner]:
    return Signer.generate(origin), CosignatureSigner.generate(origin + "/clock")


def test_an_introduction_signed_by_shard_zero_opens_under_its_key() -> None:
    first, _ = shard(ORIGIN)
    log, clock = shard(ORIGIN + "/3")
    intro = Introduction(ORIGIN, ORIGIN + "/3", log.verifier(), clock.verifier())
    note = intro.sign(first)
    assert parse_note(note).text.splitlines()[0] == "notar.shard-introduction.v1"
    assert open_introduction(note, first.verifier()) == intro
    assert parse_introduction(intro.text()) == intro
    other, _ = shard(ORIGIN)  # another key of the same name: not shard 0's
    with pytest.raises(ValueError, match="not signed"):
        open_introduction(note, other.verifier())
    with pytest.raises(ValueError, match="signed by the log key"):
        intro.sign(log)  # only shard 0's log key introduces


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("notar.shard-introduction.v1", "notar.key-rotation.v1"),
        lambda t: t + "extra line\n",
        lambda t: t.replace("shard ", "shard  "),
        lambda t: t.replace(f"shard {ORIGIN}/3", "shard elsewhere.test/log/3"),
        lambda t: t.rstrip("\n"),
    ],
)
def test_a_changed_text_is_refused(change: object) -> None:
    log, clock = shard(ORIGIN + "/3")
    text = Introduction(ORIGIN, ORIGIN + "/3", log.verifier(), clock.verifier()).text()
    with pytest.raises(ValueError):
        parse_introduction(change(text))  # type: ignore[operator]


def test_keys_must_be_named_after_the_shard() -> None:
    log, clock = shard(ORIGIN + "/3")
    wrong_log, wrong_clock = shard(ORIGIN + "/4")
    with pytest.raises(ValueError, match="log key"):
        Introduction(ORIGIN, ORIGIN + "/3", wrong_log.verifier(), clock.verifier())
    with pytest.raises(ValueError, match="clock key"):
        Introduction(ORIGIN, ORIGIN + "/3", log.verifier(), wrong_clock.verifier())
    with pytest.raises(ValueError, match="not under"):
        Introduction(ORIGIN, "other.test/log/3", log.verifier(), clock.verifier())
