"""Signed notes: Go and C2SP vectors byte for byte, strict parsing, tampering, round trips."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.cosignature import verifier_from_key
from merkle.note import (
    MAX_SIGNATURES,
    NoteVerifier,
    Signature,
    Signer,
    Verifier,
    add_signatures,
    b64decode_canonical,
    compute_key_id,
    generate_signer,
    is_valid_key_name,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "signed_note.json").read_text(encoding="utf-8")
)
PETER_SKEY = VECTORS["signer_keys"][0]["skey"]
PETER_VKEY = VECTORS["signer_keys"][0]["vkey"]
PETER_NOTE = VECTORS["notes"][0]["note"]
TEXT = VECTORS["notes"][0]["text"]
SEED = bytes(range(32))


def only_value_error(fn: Callable[..., object], *args: Any) -> None:
    """``fn(*args)`` raises ValueError itself, not a subclass such as binascii.Error."""
    with pytest.raises(ValueError) as info:
        fn(*args)
    assert type(info.value) is ValueError, repr(info.value)


def survives_or_value_error(fn: Callable[..., object], *args: Any) -> None:
    try:
        fn(*args)
    except ValueError as e:
        assert type(e) is ValueError, repr(e)


@pytest.mark.parametrize("case", VECTORS["notes"], ids=lambda c: c["id"])
def test_note_vectors(case: dict[str, Any]) -> None:
    verifiers = [verifier_from_key(k) for k in case["vkeys"]]
    opened = open_note(case["note"], verifiers)
    assert opened.text == case["text"]
    assert [s.name for s in opened.verified] == case["verified"]
    assert [s.name for s in opened.unverified] == case["unverified"]
    assert [s.name for s in opened.invalid] == case["invalid"]
    assert opened.ok == (bool(case["verified"]) and not case["invalid"])
    parsed = parse_note(case["note"].encode("utf-8"))
    assert parsed.text == case["text"]
    if "key_ids" in case:
        assert [f"{s.key_id:08x}" for s in parsed.signatures] == case["key_ids"]
    # Re-serialising the parsed signatures gives back the note byte for byte.
    assert parsed.text + "\n" + "".join(s.line() for s in parsed.signatures) == case["note"]


@pytest.mark.parametrize("case", VECTORS["sign"], ids=lambda c: c["source"])
def test_sign_vectors_byte_for_byte(case: dict[str, str]) -> None:
    signer = Signer.from_key(case["skey"])
    assert sign_note(case["text"], [signer]) == case["note"]
    assert signer.to_key() == case["skey"]


@pytest.mark.parametrize("case", VECTORS["signer_keys"], ids=lambda c: c["source"])
def test_key_strings_round_trip(case: dict[str, str]) -> None:
    signer = Signer.from_key(case["skey"])
    verifier = Verifier.from_key(case["vkey"])
    assert signer.verifier() == verifier
    assert verifier.to_key() == case["vkey"]
    assert verifier.key_id == signer.key_id == int(case["vkey"].split("+")[1], 16)
    parsed = parse_verifier_key(case["vkey"])
    assert (parsed.name, parsed.sig_type, parsed.key) == (verifier.name, 1, verifier.public_key)
    secret = parse_signer_key(case["skey"])
    assert (secret.name, secret.key_id, secret.sig_type) == (signer.name, signer.key_id, 1)
    assert secret.key == signer.seed


def test_go_peter_neumann_key_id() -> None:
    verifier = Verifier.from_key(PETER_VKEY)
    assert verifier.key_id == 0xC74F20A3
    assert compute_key_id("PeterNeumann", 1, verifier.public_key) == 0xC74F20A3


@pytest.mark.parametrize("key", [PETER_VKEY, PETER_SKEY], ids=["vkey", "skey"])
def test_go_key_manglings_rejected(key: str) -> None:
    """As Go's TestNewVerifier/TestNewSigner: no proper substring and no one-byte change works."""
    load = Signer.from_key if key.startswith("PRIVATE") else Verifier.from_key
    for i in range(len(key) + 1):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                only_value_error(load, key[i:j])
    for i in range(len(key)):
        only_value_error(load, key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :])


@pytest.mark.parametrize("case", VECTORS["malformed_vkeys"], ids=lambda c: c["why"])
def test_malformed_verifier_keys(case: dict[str, str]) -> None:
    only_value_error(Verifier.from_key, case["vkey"])
    only_value_error(verifier_from_key, case["vkey"])


@pytest.mark.parametrize("case", VECTORS["malformed_notes"], ids=lambda c: c["why"])
def test_malformed_notes(case: dict[str, str]) -> None:
    only_value_error(parse_note, case["note"])
    only_value_error(open_note, case["note"], [Verifier.from_key(PETER_VKEY)])
    only_value_error(add_signatures, case["note"], [Signer.from_key(PETER_SKEY)])


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff" + PETER_NOTE.encode(),  # Go: invalid UTF-8
        PETER_NOTE.encode().replace("—".encode(), b"\xe2\x80"),  # truncated em dash
        b"\xed\xa0\x80\n\n" + PETER_NOTE.encode().split(b"\n\n")[1],  # UTF-8 encoded surrogate
    ],
)
def test_invalid_utf8_notes(raw: bytes) -> None:
    only_value_error(parse_note, raw)


def test_lone_surrogate_in_str() -> None:
    only_value_error(parse_note, "\ud800" + PETER_NOTE)
    only_value_error(sign_note, "\udfff\n", [Signer("a", SEED)])


def test_max_signatures_accepted() -> None:
    signers = [Signer(f"s{i}", bytes([i]) * 32) for i in range(MAX_SIGNATURES)]
    note = sign_note("text\n", signers)
    assert open_note(note, [s.verifier() for s in signers]).ok
    only_value_error(add_signatures, note, [Signer("one-too-many", SEED)])


def test_sign_replaces_existing_signature_of_same_key() -> None:
    """As Go's TestSign: re-signing by a key replaces its old signature line."""
    peter = Signer.from_key(PETER_SKEY)
    stale = TEXT + "\n" + Signature("PeterNeumann", peter.key_id, b"BAD").line()
    assert add_signatures(stale, [peter]) == PETER_NOTE


def test_add_signatures_appends_after_existing() -> None:
    other = Signer("witness.example/w1", SEED)
    cosigned = add_signatures(PETER_NOTE, [other])
    assert cosigned.startswith(PETER_NOTE)
    opened = open_note(cosigned, [Verifier.from_key(PETER_VKEY), other.verifier()])
    assert [s.name for s in opened.verified] == ["PeterNeumann", "witness.example/w1"]


@pytest.mark.parametrize("text", ["abc", "", "a\nb", "a\x01\n", "a\r\n"])
def test_sign_rejects_bad_text(text: str) -> None:
    only_value_error(sign_note, text, [Signer("a", SEED)])


def test_sign_rejects_bad_signers() -> None:
    only_value_error(sign_note, TEXT, [])
    only_value_error(sign_note, TEXT, [Signer("a", SEED), Signer("a", SEED)])

    @dataclass
    class Named:
        name: str
        key_id: int = 1

        def sign(self, message: bytes) -> bytes:
            return b"sig"

    for bad in [Named("bad name"), Named("a+b"), Named(""), Named("ok", -1), Named("ok", 2**32)]:
        only_value_error(sign_note, TEXT, [bad])


def test_ambiguous_verifiers_rejected_only_when_used() -> None:
    """As Go's VerifierList: two different keys with one (name, key ID) are a config error."""
    peter = Verifier.from_key(PETER_VKEY)

    @dataclass(frozen=True)
    class Impostor:
        name: str = "PeterNeumann"
        key_id: int = 0xC74F20A3
        tag: int = 0

        def verify(self, message: bytes, signature: bytes) -> bool:
            return True

    only_value_error(open_note, PETER_NOTE, [peter, Impostor()])
    assert open_note(PETER_NOTE, [peter, peter]).ok  # the same key twice is harmless
    unused: list[NoteVerifier] = [peter, Impostor(name="x"), Impostor(name="x", tag=1)]
    assert open_note(PETER_NOTE, unused).ok


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\u3000b"])
def test_invalid_key_names(name: str) -> None:
    assert not is_valid_key_name(name)
    only_value_error(Signer, name, SEED)
    only_value_error(generate_signer, name)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_wrong_seed_length(seed: bytes) -> None:
    only_value_error(Signer, "a", seed)


@pytest.mark.parametrize("public", [b"", bytes(31), bytes(33)])
def test_wrong_public_key_length(public: bytes) -> None:
    only_value_error(Verifier, "a", public)


@pytest.mark.parametrize("text", ["A", "AA=", "AA==A", "A===", "AB==", "AAA=\n", " AAAA", "QQ=="])
def test_b64decode_canonical(text: str) -> None:
    if text == "QQ==":
        assert b64decode_canonical(text) == b"A"
    else:
        only_value_error(b64decode_canonical, text)


def test_generate_signer_round_trip() -> None:
    skey, vkey = generate_signer("notar.example/log")
    signer, verifier = Signer.from_key(skey), Verifier.from_key(vkey)
    assert signer.verifier() == verifier
    assert skey.startswith("PRIVATE+KEY+notar.example/log+")
    assert open_note(sign_note("hello\n", [signer]), [verifier]).ok


def test_signer_repr_hides_secret() -> None:
    signer = Signer.from_key(PETER_SKEY)
    assert "AYEKFALV" not in repr(signer) and repr(SEED) not in repr(Signer("a", SEED))


# --- Hypothesis ---------------------------------------------------------------------------

names = st.text(
    st.characters(blacklist_categories=["Cs", "Zs", "Zl", "Zp", "Cc"], blacklist_characters="+"),
    min_size=1,
    max_size=20,
).filter(is_valid_key_name)
texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters=[chr(c) for c in range(32)])
    | st.just("\n"),
    max_size=200,
).map(lambda t: t + "\n")
seeds = st.binary(min_size=32, max_size=32)


@given(texts, names, seeds)
def test_round_trip(text: str, name: str, seed: bytes) -> None:
    signer = Signer(name, seed)
    note = sign_note(text, [signer])
    opened = open_note(note, [signer.verifier()])
    assert opened.ok and opened.text == text and opened.verified[0].name == name
    assert Verifier.from_key(signer.verifier().to_key()) == signer.verifier()
    assert Signer.from_key(signer.to_key()) == signer


@given(texts.filter(lambda t: len(t) >= 2), st.data())
def test_tampered_text_fails(text: str, data: st.DataObject) -> None:
    signer = Signer("log.example", SEED)
    note = sign_note(text, [signer])
    i = data.draw(st.integers(0, len(text) - 2))  # keep the final newline
    new = data.draw(st.characters(blacklist_categories=["Cs", "Cc"]).filter(lambda c: c != text[i]))
    opened = open_note(text[:i] + new + note[i + 1 :], [signer.verifier()])
    assert not opened.ok and not opened.verified


@given(seeds, st.integers(0, 67), st.integers(1, 255))
def test_tampered_signature_or_key_id_fails(seed: bytes, i: int, flip: int) -> None:
    signer = Signer("log.example", seed)
    note = sign_note(TEXT, [signer])
    raw = bytearray(parse_note(note).signatures[0].signature)
    full = bytearray(signer.key_id.to_bytes(4, "big")) + raw
    full[i] ^= flip
    line = f"— log.example {base64.b64encode(bytes(full)).decode()}\n"
    opened = open_note(TEXT + "\n" + line, [signer.verifier()])
    assert not opened.verified
    assert (opened.unverified if i < 4 else opened.invalid)[0].name == "log.example"


fragments = st.sampled_from(
    ["\n", "\n\n", "— ", "—", " ", "+", "=", "==", "PeterNeumann", "x08go/", "AAAA", "\x00", "é"]
)
noteish = st.lists(fragments | st.text(max_size=5), max_size=30).map("".join)


@settings(max_examples=300)
@given(st.one_of(st.text(), st.binary(), noteish, noteish.map(lambda s: s.encode())))
def test_parsers_raise_only_value_error(data: str | bytes) -> None:
    survives_or_value_error(parse_note, data)
    survives_or_value_error(open_note, data, [Verifier.from_key(PETER_VKEY)])
    if isinstance(data, str):
        survives_or_value_error(parse_verifier_key, data)
        survives_or_value_error(Verifier.from_key, data)
        survives_or_value_error(Signer.from_key, data)
        survives_or_value_error(Signer.from_key, "PRIVATE+KEY+" + data)
        survives_or_value_error(b64decode_canonical, data)
        survives_or_value_error(sign_note, data, [Signer("a", SEED)])


@settings(max_examples=300)
@given(st.sampled_from([PETER_NOTE, VECTORS["notes"][5]["note"], PETER_VKEY]), st.data())
def test_mutated_inputs_raise_only_value_error(base: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(base)))
    j = data.draw(st.integers(i, min(len(base), i + 4)))
    mutated = base[:i] + data.draw(st.text(max_size=3) | fragments) + base[j:]
    survives_or_value_error(open_note, mutated, [Verifier.from_key(PETER_VKEY)])
    survives_or_value_error(verifier_from_key, mutated)
