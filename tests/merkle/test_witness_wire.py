"""The tlog-witness wire format (merkle.witness): the spec's example bodies, strict parsing, merging
cosignatures into a checkpoint, and reading a witness's answers."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.checkpoint import Checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.hashing import EMPTY_ROOT
from merkle.mldsa import MLDSA44CosignatureSigner
from merkle.note import Signer, open_note, parse_note, sign_note
from merkle.witness import (
    Outcome,
    add_checkpoint_body,
    checkpoint_path,
    format_size,
    merge_cosignatures,
    origin_hash,
    parse_add_checkpoint,
    parse_cosignatures,
    parse_size,
    read_answer,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "tlog_witness.json").read_text(encoding="utf-8")
)
REQUEST = VECTORS["add_checkpoint_request"]
RESPONSE = VECTORS["add_checkpoint_response"]
ORIGIN = "example.org/log"
LOG = Signer(ORIGIN, bytes(32))
W1 = CosignatureSigner("w.example/1", bytes([1]) * 32)
W2 = MLDSA44CosignatureSigner("w.example/2", bytes([2]) * 32)
STRANGER = CosignatureSigner("w.example/3", bytes([3]) * 32)
NOTE = sign_note(Checkpoint(ORIGIN, 7, bytes(range(32))).format(), [LOG])
PROOF = [bytes([i]) * 32 for i in range(3)]


def test_spec_request_example() -> None:
    parsed = parse_add_checkpoint(REQUEST["body"].encode())
    assert parsed.old_size == REQUEST["old_size"] and len(parsed.proof) == REQUEST["proof_lines"]
    assert (parsed.checkpoint.origin, parsed.checkpoint.size) == (REQUEST["origin"], REQUEST["size"])
    assert len(parse_note(parsed.note).signatures) == REQUEST["signatures"]
    assert parsed.body().decode() == REQUEST["body"]  # the writer gives the same bytes back


def test_spec_response_example() -> None:
    lines = parse_cosignatures(RESPONSE["body"])
    assert len(lines) == RESPONSE["lines"]
    assert "".join(s.line() for s in lines) == RESPONSE["body"]


def test_round_trip_and_empty_proof() -> None:
    body = add_checkpoint_body(5, PROOF, NOTE)
    parsed = parse_add_checkpoint(body)
    assert (parsed.old_size, list(parsed.proof), parsed.note) == (5, PROOF, NOTE)
    assert add_checkpoint_body(0, [], NOTE) == b"old 0\n\n" + NOTE.encode()
    assert parse_add_checkpoint(b"old 0\n\n" + NOTE.encode()).proof == ()


@pytest.mark.parametrize(
    "body",
    [
        b"old 01\n\n" + NOTE.encode(),
        b"old -1\n\n" + NOTE.encode(),
        b"old  1\n\n" + NOTE.encode(),
        b"Old 1\n\n" + NOTE.encode(),
        b"old 1\n" + NOTE.encode(),  # no empty line
        b"old 1\nAAAA\n\n" + NOTE.encode(),  # a proof line of 3 bytes
        b"old 1\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64)) + b"\n" + NOTE.encode(),
        b"old 1\n\n" + NOTE.encode().replace(b"\n7\n", b"\n07\n"),  # not a checkpoint
        b"old 1\n\n" + NOTE.encode().split(b"\n\n")[0] + b"\n",  # no signature
        b"old 1\n\n\xff" + NOTE.encode(),
        b"",
    ],
)
def test_malformed_requests(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_add_checkpoint(body)


def test_writer_refuses_what_the_spec_forbids() -> None:
    for bad in [(-1, [], NOTE), (1, [bytes(31)], NOTE), (1, [bytes(32)] * 64, NOTE), (1, [], "hello\n")]:
        with pytest.raises(ValueError):
            add_checkpoint_body(*bad)


def test_size_answers() -> None:
    assert parse_size(format_size(1234)) == 1234 and format_size(0) == b"0\n"
    for bad in [b"12", b"012\n", b" 12\n", b"12\n\n", b"-1\n", b""]:
        with pytest.raises(ValueError):
            parse_size(bad)


def answer_of(note: str, *signers: Any) -> str:
    """The lines a witness answers: its cosignatures over ``note``'s checkpoint."""
    text = parse_note(note).text
    return sign_note(text, [s.at(1_700_000_000) for s in signers]).split("\n\n", 1)[1]


def test_merge_keeps_only_trusted_valid_cosignatures() -> None:
    answer = answer_of(NOTE, W1, W2, STRANGER)
    merged = merge_cosignatures(NOTE, answer, [W1.verifier(), W2.verifier()])
    opened = open_note(merged, [LOG.verifier(), W1.verifier(), W2.verifier()])
    assert [s.name for s in opened.verified] == [ORIGIN, "w.example/1", "w.example/2"]
    assert not opened.unverified  # the stranger's line was not moved
    again = merge_cosignatures(merged, answer, [W1.verifier()])  # a repeat replaces, adds nothing
    assert sorted(parse_note(again).signatures, key=repr) == sorted(parse_note(merged).signatures, key=repr)
    # An answer over another checkpoint carries lines that do not verify: refused whole.
    other = sign_note(Checkpoint(ORIGIN, 8, EMPTY_ROOT).format(), [LOG])
    with pytest.raises(ValueError, match="do not verify"):
        merge_cosignatures(NOTE, answer_of(other, W1), [W1.verifier()])
    for bad in ["", "\n", answer + "\n", "— w.example/1 AAAA\n", answer.replace("\n", "\n\n", 1)]:
        with pytest.raises(ValueError):
            merge_cosignatures(NOTE, bad, [W1.verifier()])


def test_reading_answers() -> None:
    request = parse_add_checkpoint(add_checkpoint_body(5, PROOF, NOTE))
    ok = read_answer(request, 200, "text/plain", answer_of(NOTE, W1).encode())
    assert ok.outcome is Outcome.COSIGNED and ok.cosignatures[0].name == "w.example/1"
    resync = read_answer(request, 409, "text/x.tlog.size", b"3\n")
    assert (resync.outcome, resync.size) == (Outcome.RESYNC, 3)
    assert read_answer(request, 422, "application/problem+json", b"{}").outcome is Outcome.INCONSISTENT
    for status in (400, 403, 404, 500, 503):
        assert read_answer(request, status, None, b"").outcome is Outcome.REFUSED
    with pytest.raises(ValueError):
        read_answer(request, 409, "text/plain", b"3\n")
    # tlog-witness v1.0.0 answered another root for the witness's own size with a 409 of that size.
    same = parse_add_checkpoint(add_checkpoint_body(7, [], NOTE))
    assert read_answer(same, 409, "text/x.tlog.size; charset=utf-8", b"7\n").outcome is Outcome.INCONSISTENT


def test_origin_hash_path() -> None:
    expected = "4d3203c8f35cdf600e475f55fede6081a703d3d322f208865fca2ec4f0e030f8"  # sha256sum of the origin
    assert origin_hash("example.com/log") == expected
    assert checkpoint_path("example.com/log") == f"/{origin_hash('example.com/log')}/checkpoint"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bodies_parse_or_raise_value_error(body: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_add_checkpoint(body)
