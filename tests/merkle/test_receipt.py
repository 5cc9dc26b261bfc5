"""Receipts: build, verify offline with named checks, refuse every tampering; exports."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import blake3
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import Tree, leaf_hash, make_entry, parse_digest
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.export import parse_tlog_proof, to_cose, to_tlog_proof, verify_cose
from merkle.note import Signer
from merkle.receipt import build_receipt, hash_document, verify_receipt

ORIGIN = "notar.localhost/log"
SIGNED_AT = 1_790_000_000


@dataclass
class Log:
    signer: Signer
    clock: CosignatureSigner
    document: bytes
    receipt: dict[str, Any]

    @property
    def keys(self) -> list[str]:
        return [self.signer.verifier().to_key(), self.clock.verifier().to_key()]


def make_log(origin: str = ORIGIN, n: int = 37, index: int = 21, salt: bool = True) -> Log:
    signer = Signer.generate(origin)
    clock = CosignatureSigner.generate("clock.notar.localhost")
    docs = [f"document {i}".encode() for i in range(n)]
    digests = [parse_digest("blake3:" + blake3.blake3(d).hexdigest()) for d in docs]
    salts = [bytes([i]) * 16 if salt else b"" for i in range(n)]
    entries = [make_entry(d, s) for d, s in zip(digests, salts, strict=True)]
    tree = Tree([leaf_hash(e) for e in entries])
    cp = Checkpoint(origin, n, tree.root())
    note = sign_checkpoint(cp, signer, clock, SIGNED_AT)
    receipt = build_receipt(
        digest=digests[index],
        salt=salts[index],
        origin=origin,
        index=index,
        tree_size=n,
        inclusion=tree.inclusion_proof(index),
        checkpoint=note,
        anchors=[{"type": "local", "height": 3, "tree_size": n, "root": tree.root().hex()}],
    )
    return Log(signer, clock, docs[index], receipt)


LOG = make_log()


def test_valid_receipt_passes_every_check() -> None:
    result = verify_receipt(LOG.receipt, keys=LOG.keys, document=LOG.document)
    assert result.valid, result.failed
    assert [c.name for c in result.checks] == [
        "format",
        "document",
        "entry",
        "checkpoint",
        "log signature",
        "inclusion",
        "signed time",
        "anchor 1 (local)",
    ]
    assert result.signed_time == SIGNED_AT and result.index == 21 and result.tree_size == 37
    assert result.log_key == ORIGIN
    # survives a JSON round trip, as it is stored and sent
    assert verify_receipt(json.loads(json.dumps(LOG.receipt)), keys=LOG.keys).valid


def test_document_given_as_chunks_and_digest() -> None:
    chunks = [LOG.document[:3], LOG.document[3:]]
    assert verify_receipt(LOG.receipt, keys=LOG.keys, document=iter(chunks)).valid
    assert verify_receipt(LOG.receipt, keys=LOG.keys, digest=LOG.receipt["digest"]).valid


def test_sha256_receipts_hash_with_sha256() -> None:
    d = hash_document(b"abc", "sha256")
    assert str(d) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(r: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = r
        for p in parents:
            target = target[p]
        target[last] = value(target[last]) if callable(value) else value

    return apply


OTHER = make_log("other.example/log")
WITHOUT_SALT = make_log(salt=False)


def _flip_hex(h: str) -> str:
    return ("1" if h[0] != "1" else "2") + h[1:]


def _tamper_clock(r: dict[str, Any]) -> None:
    note: str = r["checkpoint"]
    head, last = note.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(last))
    raw[-1] ^= 1
    r["checkpoint"] = head + " " + base64.b64encode(bytes(raw)).decode() + "\n"


TAMPERINGS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("other digest", _set("digest", "blake3:" + "00" * 32), "document"),
    ("salt changed", _set("entry", lambda e: e[:-2] + ("00" if e[-2:] != "00" else "01")), "inclusion"),
    ("entry for another digest", _set("entry", lambda e: e[:4] + "00" * 32 + e[68:]), "entry"),
    ("index", _set("log.index", 20), "inclusion"),
    ("tree size", _set("log.tree_size", 36), "checkpoint"),
    ("inclusion hash", _set("log.inclusion", lambda p: [_flip_hex(p[0]), *p[1:]]), "inclusion"),
    ("proof dropped", _set("log.inclusion", lambda p: p[:-1]), "inclusion"),
    ("checkpoint of another log", _set("checkpoint", OTHER.receipt["checkpoint"]), "checkpoint"),
    (
        "root in checkpoint",
        _set("checkpoint", lambda n: n.replace(n.split("\n")[2], "A" * 43 + "=")),
        "log signature",
    ),
    ("clock signature", _tamper_clock, "signed time"),
    (
        "anchor on another root",
        _set("anchors", [{"type": "local", "tree_size": 37, "root": "00" * 32}]),
        "anchor 1 (local)",
    ),
    ("anchor on another size", _set("anchors", [{"type": "evm", "tree_size": 36}]), "anchor 1 (evm)"),
    ("format", _set("format", "notar.receipt.v2"), "format"),
]


@pytest.mark.parametrize(("what", "tamper", "check"), TAMPERINGS, ids=[t[0] for t in TAMPERINGS])
def test_tampered_receipt_fails_the_named_check(
    what: str, tamper: Callable[[dict[str, Any]], None], check: str
) -> None:
    r = copy.deepcopy(LOG.receipt)
    tamper(r)
    result = verify_receipt(r, keys=LOG.keys, document=LOG.document)
    assert not result.valid
    failed = result.check(check)
    assert failed is not None and not failed.ok, [(c.name, c.ok, c.detail) for c in result.checks]


def test_changed_document_fails_document_check() -> None:
    result = verify_receipt(LOG.receipt, keys=LOG.keys, document=LOG.document + b"!")
    assert not result.valid and [c.name for c in result.failed] == ["document"]


def test_wrong_key_fails_log_signature() -> None:
    result = verify_receipt(LOG.receipt, keys=[OTHER.signer.verifier().to_key()])
    assert [c.name for c in result.failed] == ["log signature"]


def test_receipt_from_another_log_is_refused_even_with_its_key() -> None:
    result = verify_receipt(OTHER.receipt, keys=OTHER.keys, origin=ORIGIN)
    assert [c.name for c in result.failed] == ["checkpoint"]


def test_unsalted_receipt() -> None:
    assert len(bytes.fromhex(WITHOUT_SALT.receipt["entry"])) == 34
    assert verify_receipt(WITHOUT_SALT.receipt, keys=WITHOUT_SALT.keys, document=WITHOUT_SALT.document).valid


def test_anchor_verifiers_are_called_with_the_checkpoint_body() -> None:
    seen: list[tuple[int, str]] = []

    def local(record: Any, cp: Checkpoint, body: str) -> tuple[bool, str]:
        seen.append((cp.size, body))
        return False, "block signature does not verify"

    result = verify_receipt(LOG.receipt, keys=LOG.keys, anchor_verifiers={"local": local})
    assert seen == [(37, LOG.receipt["checkpoint"].split("\n\n")[0] + "\n")]
    assert [c.name for c in result.failed] == ["anchor 1 (local)"]


def test_malformed_keys_raise_value_error() -> None:
    with pytest.raises(ValueError):
        verify_receipt(LOG.receipt, keys=["not a key"])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=80)
    | st.floats(allow_nan=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(
    st.sampled_from(
        [
            "format",
            "digest",
            "entry",
            "log",
            "log.origin",
            "log.index",
            "log.tree_size",
            "log.inclusion",
            "checkpoint",
            "anchors",
        ]
    ),
    json_values,
)
def test_any_field_replaced_by_any_json_never_raises_and_never_passes_unless_unchanged(
    path: str, value: Any
) -> None:
    r = copy.deepcopy(LOG.receipt)
    _set(path, value)(r)
    result = verify_receipt(r, keys=LOG.keys, document=LOG.document)
    if result.valid:
        assert r == LOG.receipt or path == "anchors"  # only anchors are optional evidence


@given(json_values)
def test_garbage_is_a_failed_format_check(value: Any) -> None:
    result = verify_receipt(value, keys=LOG.keys)
    assert not result.valid and result.checks[0].name == "format"


def test_tlog_proof_export_round_trip() -> None:
    text = to_tlog_proof(LOG.receipt)
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    p = parse_tlog_proof(text)
    assert p.index == 21 and p.extra.hex() == LOG.receipt["entry"]
    assert [h.hex() for h in p.proof] == LOG.receipt["log"]["inclusion"]
    assert p.checkpoint == LOG.receipt["checkpoint"]
    unsalted = to_tlog_proof(WITHOUT_SALT.receipt)
    assert parse_tlog_proof(unsalted).extra == bytes.fromhex(WITHOUT_SALT.receipt["entry"])


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "c2sp.org/tlog-proof@v2\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\nx\n",
        "c2sp.org/tlog-proof@v1\nindex 1\nnotbase64\n\nx\n",
        "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx\n",
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n",
    ],
)
def test_tlog_proof_parser_refuses_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_tlog_proof(bad)


def test_cose_receipt_is_rfc9942_shaped_and_verifies_independently() -> None:
    data = to_cose(LOG.receipt, LOG.signer)
    assert data[0] == 0xD2  # tag 18, COSE_Sign1
    protected_raw, unprotected, payload, signature = cbor2.loads(data[1:])
    protected = cbor2.loads(protected_raw)
    assert protected[1] == -8 and protected[395] == 1  # EdDSA, RFC9162_SHA256
    assert payload is None  # detached: the root
    size, index, path = cbor2.loads(unprotected[396][-1][0])
    assert (size, index) == (37, 21) and [p.hex() for p in path] == LOG.receipt["log"]["inclusion"]
    # Independent check with nothing but cbor2 and the Ed25519 public key (RFC 9052 Sig_structure).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    root = base64.b64decode(LOG.receipt["checkpoint"].split("\n")[2])
    Ed25519PublicKey.from_public_bytes(LOG.signer.verifier().public_key).verify(
        signature, cbor2.dumps(["Signature1", protected_raw, b"", root])
    )
    assert verify_cose(data, LOG.signer.verifier()).root == root


def test_cose_receipt_refuses_tampering() -> None:
    data = bytearray(to_cose(LOG.receipt, LOG.signer))
    with pytest.raises(ValueError):
        verify_cose(bytes(data), OTHER.signer.verifier())
    data[-1] ^= 1
    with pytest.raises(ValueError):
        verify_cose(bytes(data), LOG.signer.verifier())
    with pytest.raises(ValueError):
        verify_cose(to_cose(LOG.receipt, LOG.signer), LOG.signer.verifier(), entry=b"\x00" * 50)


@given(st.binary(max_size=400))
def test_cose_parser_only_raises_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        verify_cose(b"\xd2" + data, LOG.signer.verifier())
