"""tlog-cosignature/v1 (Ed25519, note type 0x04): spec example, real witnesses, strictness."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from merkle.checkpoint import Checkpoint
from merkle.cosignature import (
    MAX_TIMESTAMP,
    CosignatureSigner,
    CosignatureVerifier,
    cosigned_message,
    generate_cosigner,
    signature_timestamp,
    verifier_from_key,
)
from merkle.note import (
    Signer,
    Verifier,
    compute_key_id,
    open_note,
    parse_note,
    parse_verifier_key,
    sign_note,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "signed_note.json").read_text(encoding="utf-8")
)
SPEC = next(c for c in VECTORS["notes"] if c["id"] == "c2sp-cosignature-example")
REAL = next(c for c in VECTORS["notes"] if c["id"] == "real-world-cosigned-checkpoint")
BODY = "example.com/log\n123\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n"
COSIGNER = CosignatureSigner("witness.example/w1", bytes(range(32)))
T = 1_700_000_000


def only_value_error(fn: Callable[..., object], *args: Any) -> None:
    with pytest.raises(ValueError) as info:
        fn(*args)
    assert type(info.value) is ValueError, repr(info.value)


def test_spec_example_message_and_timestamp() -> None:
    """The spec's example line carries time 1679315147 and signs exactly its example message."""
    cosig = SPEC["cosignature"]
    (witness,) = [s for s in parse_note(SPEC["note"]).signatures if s.name == cosig["name"]]
    assert signature_timestamp(witness.signature) == cosig["timestamp"]
    assert cosigned_message(SPEC["text"], cosig["timestamp"]) == cosig["message"].encode()


@pytest.mark.parametrize("vkey", [k for k in REAL["vkeys"] if parse_verifier_key(k).sig_type == 4])
def test_real_witness_cosignatures(vkey: str) -> None:
    verifier = CosignatureVerifier.from_key(vkey)
    assert verifier.to_key() == vkey
    assert verifier.key_id == compute_key_id(verifier.name, 0x04, verifier.public_key)
    (sig,) = [s for s in parse_note(REAL["note"]).signatures if s.name == verifier.name]
    text = REAL["text"].encode()
    assert verifier.verify_timestamp(text, sig.signature) == REAL["checkpoint"]["cosigned_time"]
    assert verifier.timestamp(sig.signature) == REAL["checkpoint"]["cosigned_time"]
    assert not verifier.verify(text.replace(b"1432088532", b"1432088533"), sig.signature)
    later = (REAL["checkpoint"]["cosigned_time"] + 1).to_bytes(8, "big") + sig.signature[8:]
    assert not verifier.verify(text, later)  # the timestamp is signed too
    # Read as a plain Ed25519 key (type 0x01), the same bytes mean another key ID and no match.
    plain = Verifier(verifier.name, verifier.public_key)
    assert plain.key_id != verifier.key_id and not plain.verify(text, sig.signature)


def test_transparency_dev_timestamp_vector() -> None:
    """transparency-dev/formats TestCosignatureTimestamp: 1727964367, and a type 0x01 line fails."""
    raw = base64.b64decode(
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert signature_timestamp(raw[4:]) == 1727964367
    plain = base64.b64decode(
        "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY="
    )
    only_value_error(signature_timestamp, plain[4:])


def test_vkey_types_are_not_mixed() -> None:
    ed25519 = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"  # transparency-dev
    assert isinstance(verifier_from_key(ed25519), Verifier)
    only_value_error(CosignatureVerifier.from_key, ed25519)
    cosigner = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    assert isinstance(verifier_from_key(cosigner), CosignatureVerifier)
    only_value_error(Verifier.from_key, cosigner)
    only_value_error(verifier_from_key, "rekor.sigstore.dev+12345678+AwEB")  # unknown type
    skey = VECTORS["signer_keys"][0]["skey"]
    only_value_error(CosignatureSigner.from_key, skey)  # type 0x01 signer key


def test_sign_verify_and_note_interop() -> None:
    log = Signer("example.com/log", bytes(32))
    note = sign_note(BODY, [log, COSIGNER.at(T)])
    opened = open_note(note, [log.verifier(), COSIGNER.verifier()])
    assert opened.ok and len(opened.verified) == 2
    raw = opened.verified[1].signature
    assert raw[:8] == T.to_bytes(8, "big") and len(raw) == 72
    assert COSIGNER.verifier().verify_timestamp(BODY.encode(), raw) == T


def test_extension_lines_are_signed() -> None:
    """As transparency-dev's TestSigCoversExtensionLines."""
    text = BODY + "Extendo\n"
    sig = COSIGNER.sign_at(text.encode(), T)
    assert COSIGNER.verifier().verify(text.encode(), sig)
    assert not COSIGNER.verifier().verify((BODY + "Extendo!\n").encode(), sig)


@pytest.mark.parametrize(
    "message", [b"not a checkpoint\n", b"a\n01\n" + BODY.encode().split(b"\n")[2] + b"\n", b"\xff"]
)
def test_only_checkpoints_are_cosigned(message: bytes) -> None:
    only_value_error(COSIGNER.sign_at, message, T)
    forged = T.to_bytes(8, "big") + COSIGNER._key.sign(b"cosignature/v1\ntime %d\n" % T + message)
    assert not COSIGNER.verifier().verify(message, forged)


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP + 1, 2**64, True])
def test_timestamp_range(timestamp: int) -> None:
    only_value_error(COSIGNER.at, timestamp)
    only_value_error(COSIGNER.sign_at, BODY.encode(), timestamp)
    only_value_error(cosigned_message, BODY, timestamp)


def test_timestamp_above_int63_never_verifies() -> None:
    signed = b"cosignature/v1\ntime %d\n" % (2**63) + BODY.encode()
    sig = (2**63).to_bytes(8, "big") + COSIGNER._key.sign(signed)
    assert not COSIGNER.verifier().verify(BODY.encode(), sig)
    only_value_error(signature_timestamp, sig)


@pytest.mark.parametrize("length", [0, 8, 64, 71, 73])
def test_wrong_signature_length(length: int) -> None:
    sig = COSIGNER.sign_at(BODY.encode(), T)
    assert not COSIGNER.verifier().verify(BODY.encode(), (sig * 2)[:length])
    only_value_error(signature_timestamp, (sig * 2)[:length])


def test_generate_cosigner() -> None:
    skey, vkey = generate_cosigner("notar.localhost/clock")
    signer, verifier = CosignatureSigner.from_key(skey), CosignatureVerifier.from_key(vkey)
    assert signer.verifier() == verifier and CosignatureSigner.from_key(signer.to_key()) == signer
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    plain: object = Verifier(verifier.name, verifier.public_key)
    assert verifier != plain  # same name and key, other signature type
    assert "PRIVATE" not in repr(signer) and "PRIVATE" not in repr(signer.at(T))


# --- Hypothesis ---------------------------------------------------------------------------


@given(
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)
def test_round_trip(timestamp: int, size: int, root: bytes, seed: bytes) -> None:
    text = Checkpoint("example.com/log", size, root).format().encode()
    cosigner = CosignatureSigner("w", seed)
    sig = cosigner.sign_at(text, timestamp)
    assert cosigner.verifier().verify_timestamp(text, sig) == timestamp


@given(st.binary(max_size=100), st.binary(max_size=100))
def test_verify_never_raises(message: bytes, signature: bytes) -> None:
    verifier = COSIGNER.verifier()
    assert verifier.verify_timestamp(message, signature) is None
    assert verifier.verify(BODY.encode(), signature) is False


@given(st.text() | st.text(alphabet="+/=ABab019").map(lambda s: "w+" + s))
def test_key_parsers_raise_only_value_error(text: str) -> None:
    for parse in (verifier_from_key, CosignatureVerifier.from_key, CosignatureSigner.from_key):
        try:
            parse(text)
        except ValueError as e:
            assert type(e) is ValueError, repr(e)
