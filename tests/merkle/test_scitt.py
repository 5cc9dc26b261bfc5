"""merkle.scitt: signed statements (built by pycose, a third-party COSE library) parsed strictly,
one entry per statement whatever its unprotected header or outer encoding, issuer signatures."""

from __future__ import annotations

import contextlib
import hashlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from merkle.scitt import (
    BAD_SIGNATURE,
    MALFORMED,
    REJECTED,
    StatementError,
    key_id,
    load_issuer_key,
    parse_statement,
    verify_signature,
)
from tests.services.scitt.thirdparty import IssuerKey, entry_of, statement


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA"])
def test_a_statement_parses_and_its_signature_verifies(alg: str) -> None:
    key = IssuerKey.generate(alg)
    signed = statement(key, b'{"a": 1}', iss="iss.example", sub="thing")
    s = parse_statement(signed)
    assert (s.issuer, s.subject, s.kid, s.payload) == ("iss.example", "thing", key.kid, b'{"a": 1}')
    assert s.entry == entry_of(signed)  # cbor2's encoding of the same envelope
    issuer_key = load_issuer_key(key.pem)
    assert key_id(issuer_key) == key.kid
    verify_signature(s, issuer_key)
    other = load_issuer_key(IssuerKey.generate(alg).pem)
    with pytest.raises(StatementError) as refused:
        verify_signature(s, other)
    assert refused.value.title == BAD_SIGNATURE


def test_one_statement_has_one_entry() -> None:
    signed = statement(IssuerKey.generate("ES256"), b"payload")
    protected, _, payload, signature = cbor2.loads(signed).value
    with_receipts = cbor2.dumps(cbor2.CBORTag(18, [protected, {394: [b"r"]}, payload, signature]))
    # the payload's length in a 2-byte head (0x59) where one byte (0x47) would do: same statement
    long_head = signed.replace(b"\x47payload", b"\x59\x00\x07payload")
    assert long_head != signed
    assert {parse_statement(d).entry for d in (signed, with_receipts, long_head)} == {entry_of(signed)}
    resigned = statement(IssuerKey.generate("ES256"), b"payload")
    assert parse_statement(resigned).entry != entry_of(signed)


def test_the_protected_header_is_kept_byte_for_byte() -> None:
    key = IssuerKey.generate("EdDSA")
    signed = statement(key, b"x")
    protected, unprotected, payload, signature = cbor2.loads(signed).value
    # the same map with its keys in another order: another protected header, another signature
    reordered = cbor2.dumps(dict(reversed(list(cbor2.loads(protected).items()))))
    assert reordered != protected
    other = cbor2.dumps(cbor2.CBORTag(18, [reordered, unprotected, payload, signature]))
    assert parse_statement(other).entry != parse_statement(signed).entry
    with pytest.raises(StatementError):
        verify_signature(parse_statement(other), load_issuer_key(key.pem))


@pytest.mark.parametrize(
    ("protected", "title"),
    [
        ({3: None, 258: -16}, MALFORMED),  # a hash envelope's payload is the hash's size
        ({258: -16}, REJECTED),  # and it has no content type (3)
        ({3: None, 258: -999}, REJECTED),
        ({2: [-70000], -70000: 1}, REJECTED),  # critical, and notar does not process it
        ({2: [3]}, ""),  # critical, and notar does: fine
        ({2: []}, MALFORMED),
        ({2: [99]}, MALFORMED),  # crit names a header that is not there
        ({4: "text kid"}, MALFORMED),
        ({34: [-16]}, MALFORMED),
        ({34: [-1, b"x"]}, REJECTED),
        ({33: "not a certificate"}, MALFORMED),
    ],
)
def test_headers_refused(protected: dict[int, object], title: str) -> None:
    signed = statement(IssuerKey.generate("ES256"), b"not 32 bytes")
    header, unprotected, payload, signature = cbor2.loads(signed).value
    changed = {k: v for k, v in {**cbor2.loads(header), **protected}.items() if v is not None}
    patched = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(changed), unprotected, payload, signature]))
    if not title:
        parse_statement(patched)
        return
    with pytest.raises(StatementError) as refused:
        parse_statement(patched)
    assert refused.value.title == title


def test_a_sha256_hash_envelope_parses() -> None:
    digest = hashlib.sha256(b"artifact").digest()
    signed = statement(IssuerKey.generate("ES256"), digest, protected={3: None, 258: -16, 259: "text/plain"})
    assert parse_statement(signed).payload == digest


@given(st.binary(max_size=300))
def test_the_parser_only_raises_statement_errors(data: bytes) -> None:
    with contextlib.suppress(StatementError):
        parse_statement(b"\xd2" + data)


@pytest.mark.parametrize(
    "header",
    [{1: [-7]}, {1: {-7: 1}}, {2: [[4]]}, {2: [{1: 2}]}],
    ids=["alg an array", "alg a map", "crit lists an array", "crit lists a map"],
)
def test_a_header_value_that_cannot_be_a_label_is_refused_not_raised(header: dict[object, object]) -> None:
    # Found by the statement fuzz target (loadtest/fuzz_targets.py): `alg not in ALGORITHMS` and
    # `label in protected` raised TypeError (unhashable) for an array or a map, a 500 on POST /entries.
    key = IssuerKey.generate("ES256")
    protected, _, payload, signature = cbor2.loads(statement(key, b"{}")).value
    edited = cbor2.dumps({**cbor2.loads(protected), **header})
    with pytest.raises(StatementError):
        parse_statement(cbor2.dumps(cbor2.CBORTag(18, [edited, {}, payload, signature])))
