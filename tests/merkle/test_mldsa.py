"""ML-DSA-44 cosignatures (tlog-cosignature type 0x06): torchwood's real signature, the message
layout written out from the spec, key strings, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from merkle.checkpoint import Checkpoint, open_checkpoint
from merkle.cosignature import verifier_from_key
from merkle.mldsa import (
    SIGNATURE_SIZE,
    MLDSA44CosignatureSigner,
    MLDSA44CosignatureVerifier,
    mldsa44_available,
    subtree_message,
)
from merkle.note import compute_key_id, open_note, parse_note, parse_verifier_key, sign_note

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "tlog_witness.json").read_text(encoding="utf-8")
)
TORCHWOOD = VECTORS["mldsa44_log_checkpoint"]
BODY = "example.org/log\n5\n" + base64.b64encode(bytes(range(32))).decode() + "\n"
SIGNER = MLDSA44CosignatureSigner("witness.example/pq", bytes(range(32)))


def test_the_installed_cryptography_has_ml_dsa_44() -> None:
    # scripts/install puts a cryptography with ML-DSA-44 in the venv: these tests must run, never skip.
    assert mldsa44_available()


def test_torchwood_signature_verifies() -> None:
    """A checkpoint signed by filippo.io/torchwood (via filippo.io/mldsa) with timestamp 0."""
    verifier = MLDSA44CosignatureVerifier.from_key(TORCHWOOD["vkey"])
    assert verifier.to_key() == TORCHWOOD["vkey"]
    assert isinstance(verifier_from_key(TORCHWOOD["vkey"]), MLDSA44CosignatureVerifier)
    assert verifier.key_id == compute_key_id(verifier.name, 0x06, verifier.public_key)
    note = parse_note(TORCHWOOD["note"])
    root = hashlib.sha256(b"\x00" + TORCHWOOD["root_is_record_hash_of"].encode()).digest()
    assert note.text == Checkpoint("example.com/mldsa-log", 1, root).format()
    (sig,) = note.signatures
    assert verifier.verify_timestamp(note.text.encode(), sig.signature) == TORCHWOOD["timestamp"]
    opened = open_checkpoint(TORCHWOOD["note"], origin="example.com/mldsa-log", log_verifiers=[verifier])
    assert opened.ok
    # Our key derivation from the FIPS 204 seed gives torchwood's public key.
    ours = MLDSA44CosignatureSigner(verifier.name, bytes.fromhex(TORCHWOOD["seed"]))
    assert ours.verifier() == verifier
    # Another size, another root, a later time: none verifies.
    assert not verifier.verify(note.text.replace("\n1\n", "\n2\n").encode(), sig.signature)
    later = (1).to_bytes(8, "big") + sig.signature[8:]
    assert not verifier.verify(note.text.encode(), later)


def test_message_layout_from_the_spec() -> None:
    name, origin, root = "w.example/1", "example.com/log", bytes(range(32))
    expected = (
        b"subtree/v1\n\x00"
        + bytes([len(name)]) + name.encode()
        + struct.pack(">Q", 1679315147)
        + bytes([len(origin)]) + origin.encode()
        + struct.pack(">QQ", 0, 20852163)
        + root
    )  # fmt: skip
    assert subtree_message(name, 1679315147, origin, 0, 20852163, root) == expected
    with pytest.raises(ValueError):
        subtree_message(name, 5, origin, 8, 13, root)  # a subtree of start > 0 has no timestamp
    with pytest.raises(ValueError):
        subtree_message("x" * 256, 5, origin, 0, 13, root)
    with pytest.raises(ValueError):
        subtree_message(name, 5, origin, 14, 13, root)


def test_sign_verify_and_strings() -> None:
    note = sign_note(BODY, [SIGNER.at(1_700_000_000)])
    (sig,) = parse_note(note).signatures
    assert len(sig.signature) == SIGNATURE_SIZE
    verifier = SIGNER.verifier()
    assert open_note(note, [verifier]).ok
    assert verifier.timestamp(sig.signature) == 1_700_000_000
    assert MLDSA44CosignatureSigner.from_key(SIGNER.to_key()) == SIGNER
    assert parse_verifier_key(verifier.to_key()).sig_type == 0x06
    assert "seed" not in repr(SIGNER) and bytes(range(32)).hex() not in repr(SIGNER)
    # The message commits to the cosigner's name: the same key under another name does not verify.
    renamed = MLDSA44CosignatureVerifier("witness.example/other", verifier.public_key)
    assert not renamed.verify(BODY.encode(), sig.signature)
    # Extension lines are not signed by this type (the spec says so).
    assert verifier.verify((BODY + "ext\n").encode(), sig.signature)
    with pytest.raises(ValueError):
        MLDSA44CosignatureSigner.from_key(SIGNER.to_key().replace("witness.example/pq", "witness.example/pr"))
    with pytest.raises(ValueError):
        MLDSA44CosignatureVerifier("w", bytes(1311))
