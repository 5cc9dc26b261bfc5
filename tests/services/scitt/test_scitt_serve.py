"""SCITT on a real `notar serve` (SPEC §12): issuers registered with `notar tenant issuer`, signed
statements built by third-party COSE code (pycose), POST /entries, GET /entries/{id}, the key set,
receipts checked by scitt-cose and pycose, and every bad input answered by a 400 concise problem."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest
from cryptography.hazmat.primitives import serialization

from merkle.note import Signer
from tests.services.scitt.serving import CONCISE, ISS, NOTAR, Served, get, notar, post, serve
from tests.services.scitt.thirdparty import (
    IssuerKey,
    check_receipt,
    cose_key_thumbprint,
    entry_of,
    statement,
    statement_by_cwt,
)
from tests.serving import free_port, wait_ready


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("scitt"), SCITT_MAX_KB="2")


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server whose batches take longer than POST /entries waits: registrations answer 303.
    One worker: the poll rate limit is each process's own (per worker, as per ingest pod)."""
    yield from serve(
        tmp_path_factory.mktemp("slow"), BATCH_MS="1500", BATCH_MIN_MS="1500", SCITT_WAIT_MS="50", WORKERS="1"
    )


async def log_key(s: Served) -> dict[int, Any]:
    r = await get(s, "/.well-known/scitt-keys")
    assert r.status == 200 and r.content_type == "application/cbor"
    (key,) = cbor2.loads(await r.read())
    return dict(key)


def problem(body: bytes) -> tuple[str, str]:
    value = cbor2.loads(body)
    return value[-1], value[-2]


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA"])
async def test_a_statement_is_registered_and_its_receipt_checks_out_with_third_party_code(
    served: Served, alg: str
) -> None:
    signed = statement(served.keys[alg], b'{"sbom": "' + alg.encode() + b'"}')
    r = await post(served, signed)
    assert r.status == 201, await r.read()
    assert r.content_type == "application/cose"
    receipt = await r.read()
    entry = entry_of(signed)
    assert r.headers["Location"] == f"/entries/{entry[1:].hex()}"
    protected = check_receipt(receipt, signed, await log_key(served))
    assert protected[15][1] == "scitt.notar.test/log" and protected[395] == 1 and protected[1] == -8
    assert isinstance(protected[15][6], int) and abs(protected[15][6] - time.time()) < 300  # iat
    again = await get(served, r.headers["Location"])
    assert again.status == 200 and await again.read() == receipt
    # The same statement again, even with something in its unprotected header: the first receipt.
    resent = cbor2.loads(signed)
    resent.value[1] = {"note": "sent again"}
    r2 = await post(served, cbor2.dumps(resent))
    assert r2.status == 201 and await r2.read() == receipt


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA"])
async def test_a_statement_signed_by_cwt_is_registered(served: Served, alg: str) -> None:
    signed = statement_by_cwt(served.keys[alg], b'{"by": "cwt"}', iss=ISS, sub="pkg:npm/example@2")
    r = await post(served, signed)
    assert r.status == 201, await r.read()
    assert r.headers["Location"] == f"/entries/{entry_of(signed)[1:].hex()}"
    check_receipt(await r.read(), signed, await log_key(served))
    # the receipt does not hold for another statement
    other = statement_by_cwt(served.keys[alg], b'{"by": "cwt", "n": 2}', iss=ISS, sub="pkg:npm/example@2")
    with pytest.raises(AssertionError):
        check_receipt(await r.read(), other, await log_key(served))


async def test_the_key_set_lists_the_log_key_under_its_rfc9679_thumbprint(served: Served) -> None:
    key = await log_key(served)
    assert key[1] == 1 and key[-1] == 6 and len(key[-2]) == 32  # OKP, Ed25519
    assert key[2] == cose_key_thumbprint(key)
    kid = base64.urlsafe_b64encode(key[2]).rstrip(b"=").decode()
    one = await get(served, f"/.well-known/scitt-keys/{kid}")
    assert one.status == 200 and dict(cbor2.loads(await one.read())) == key
    for missing in ("A" * 43, "nothing-like-a-kid"):
        r = await get(served, f"/.well-known/scitt-keys/{missing}")
        assert r.status == 404 and r.content_type == CONCISE
        assert problem(await r.read())[0] == "No such key"


async def test_a_hash_envelope_is_registered(served: Served) -> None:
    digest = hashlib.sha256(b"the artifact").digest()
    header = {3: None, 258: -16, 259: "application/spdx+json", 260: "https://example.org/sbom.json"}
    signed = statement(served.keys["ES256"], digest, protected=header)
    r = await post(served, signed)
    assert r.status == 201, await r.read()
    check_receipt(await r.read(), signed, await log_key(served))


async def test_an_x5chain_issuer_is_checked_against_its_trust_anchor(served: Served) -> None:
    x5t = [-16, hashlib.sha256(served.x5_leaf_der).digest()]
    ok = statement(
        served.x5,
        b"{}",
        iss="https://x5.example",
        kid=False,
        protected={34: x5t},
        unprotected={33: served.x5_leaf_der},
    )
    r = await post(served, ok)
    assert r.status == 201, await r.read()
    check_receipt(await r.read(), ok, await log_key(served))
    no_x5t = statement(
        served.x5, b"{1}", iss="https://x5.example", kid=False, unprotected={33: served.x5_leaf_der}
    )
    r = await post(served, no_x5t)
    assert r.status == 400 and problem(await r.read())[0] == "Rejected"
    stranger = IssuerKey.generate("ES256")
    wrong_x5t = statement(
        stranger,
        b"{}",
        iss="https://x5.example",
        kid=False,
        protected={34: x5t},
        unprotected={33: served.x5_leaf_der},
    )
    r = await post(served, wrong_x5t)
    assert r.status == 400 and problem(await r.read())[0] == "Bad Signature"


def _bad_inputs(s: Served) -> dict[str, tuple[bytes, str]]:
    es256 = s.keys["ES256"]
    good = statement(es256, b"{}")
    protected, unprotected, payload, signature = cbor2.loads(good).value
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    es512 = cbor2.dumps({**cbor2.loads(protected), 1: -36})
    return {
        "malformed CBOR": (b"\xd2\x84\x58", "Malformed request"),
        "not CBOR at all": (b"<xml/>", "Not a COSE_Sign1"),
        "wrong tag": (
            cbor2.dumps(cbor2.CBORTag(17, [protected, {}, payload, signature])),
            "Not a COSE_Sign1",
        ),
        "untagged": (cbor2.dumps([protected, {}, payload, signature]), "Not a COSE_Sign1"),
        "three elements": (cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload])), "Malformed request"),
        "unsupported alg": (
            cbor2.dumps(cbor2.CBORTag(18, [es512, {}, payload, signature])),
            "Bad Signature Algorithm",
        ),
        "missing claims": (statement(es256, b"{}", protected={15: {1: ISS}}), "Missing Claims"),
        "no claims": (statement(es256, b"{}", protected={15: None}), "Missing Claims"),
        "unregistered kid": (statement(IssuerKey.generate("ES256"), b"{}"), "Unknown Issuer Key"),
        "kid of another iss": (statement(es256, b"{}", iss="https://other.example"), "Unknown Issuer Key"),
        "bad signature": (
            cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, flipped])),
            "Bad Signature",
        ),
        "detached payload": (statement(es256, None), "Payload Missing"),
        "no key named": (statement(es256, b"{}", kid=False), "Rejected"),
        "unknown critical header": (statement(es256, b"{}", protected={2: [-70000], -70000: 1}), "Rejected"),
        "hash envelope of the wrong size": (
            statement(es256, b"short", protected={3: None, 258: -16}),
            "Malformed request",
        ),
        "oversized": (statement(es256, b"x" * 3000), "Statement Too Large"),
    }


async def test_bad_statements_are_refused_with_a_concise_problem_naming_the_reason(served: Served) -> None:
    for what, (body, title) in _bad_inputs(served).items():
        r = await post(served, body)
        assert r.status == 400, (what, r.status, await r.read())
        assert r.content_type == CONCISE, what
        got, detail = problem(await r.read())
        assert got == title, (what, got, detail)
        assert detail, what


TITLES = {
    "Malformed request",
    "Not a COSE_Sign1",
    "Bad Signature Algorithm",
    "Payload Missing",
    "Missing Claims",
    "Rejected",
    "Unknown Issuer Key",
    "Bad Signature",
    "Statement Too Large",
}


async def test_mutated_statements_get_201_or_a_concise_400_never_a_500(served: Served) -> None:
    """300 statements edited inside their CBOR and byte by byte (the fuzz target's mutations,
    loadtest/fuzz_mutations.py), posted to the real server: each is registered or refused with a
    400 concise problem of a known title."""
    from hypothesis import strategies as st

    from loadtest.fuzz_mutations import mutated_bytes, mutated_statements
    from tests.fuzz.conftest import sample

    x5t = [-16, hashlib.sha256(served.x5_leaf_der).digest()]
    good = [statement(served.keys[alg], b'{"fuzz": "' + alg.encode() + b'"}') for alg in served.keys]
    good.append(
        statement(
            served.x5,
            b"{}",
            iss="https://x5.example",
            kid=False,
            protected={34: x5t},
            unprotected={33: served.x5_leaf_der},
        )
    )
    seen: dict[int, int] = {}
    for body in sample(st.one_of(mutated_statements(good), mutated_bytes(good)), 300):
        r = await post(served, body)
        seen[r.status] = seen.get(r.status, 0) + 1
        assert r.status in (201, 400), (r.status, await r.read(), body)
        if r.status == 400:
            assert r.content_type == CONCISE
            title, detail = problem(await r.read())
            assert title in TITLES and detail, (title, detail)
    assert seen.get(400, 0) > 100, seen


async def test_requests_that_are_not_registrations_are_refused_in_cbor(served: Served) -> None:
    signed = statement(served.keys["ES256"], b"{}")
    r = await post(served, signed, ctype="application/json")
    assert r.status == 415 and r.content_type == CONCISE
    r = await post(served, signed, key="notar_" + "A" * 43)
    assert r.status == 401 and r.content_type == CONCISE and problem(await r.read())[0] == "Unauthorized"
    r = await get(served, "/entries/" + "ab" * 32)
    assert r.status == 404 and r.content_type == CONCISE and problem(await r.read())[0] == "Not found"
    r = await get(served, "/entries/not-an-id")
    assert r.status == 400 and problem(await r.read())[0] == "Invalid locator"
    r = await get(served, "/v1/receipts/blake3:00")  # the rest of the API keeps problem+json
    assert r.content_type == "application/problem+json"


async def test_a_revoked_issuer_key_is_refused(served: Served, tmp_path: Path) -> None:
    key = IssuerKey.generate("EdDSA")
    (tmp_path / "k.pem").write_bytes(key.pem)
    notar("tenant", "issuer", "add", "acme", "--iss", ISS, "--key", str(tmp_path / "k.pem"), env=served.env)
    assert key.kid.hex() in notar("tenant", "issuer", "list", "acme", env=served.env)
    r = await post(served, statement(key, b'{"before": 1}'))
    assert r.status == 201
    notar("tenant", "issuer", "revoke", "acme", key.kid.hex(), env=served.env)
    await asyncio.sleep(1.2)  # KEY_CACHE_S=1
    r = await post(served, statement(key, b'{"after": 1}'))
    assert r.status == 400 and problem(await r.read())[0] == "Unknown Issuer Key"


async def test_a_registration_not_sequenced_in_time_is_polled_to_its_receipt(slow: Served) -> None:
    signed = statement(slow.keys["EdDSA"], b'{"slow": true}')
    r = await post(slow, signed)
    assert r.status == 303, await r.read()
    location = r.headers["Location"]
    assert location == f"/entries/{entry_of(signed)[1:].hex()}" and int(r.headers["Retry-After"]) >= 1
    first = await get(slow, location)
    assert first.status == 302 and first.headers["Location"] == location and "Retry-After" in first.headers
    too_soon = await get(slow, location)
    assert too_soon.status == 429 and too_soon.content_type == CONCISE and "Retry-After" in too_soon.headers
    deadline = time.monotonic() + 20
    while True:
        await asyncio.sleep(float(first.headers["Retry-After"]))
        polled = await get(slow, location)
        if polled.status == 200:
            break
        assert polled.status == 302 and time.monotonic() < deadline
    check_receipt(await polled.read(), signed, await log_key(slow))


def test_split_roles_register_through_the_anchors_internal_routes(tmp_path: Path) -> None:
    """An ingest pod serves the SCITT routes and reaches the anchor pod over its internal routes
    (services.internal.wire), as in Kubernetes; one store (a shared directory) between them."""
    anchor_port, ingest_port = free_port(), free_port()
    base = {
        **os.environ,
        "NOTAR_DATA_DIR": str(tmp_path / "data"),
        "NOTAR_ORIGIN": "split.notar.test/log",
        "NOTAR_BATCH_MS": "20",
        "NOTAR_ANCHOR_URL": f"http://127.0.0.1:{anchor_port}",
    }
    procs = []
    try:
        for role, port in (("anchor", anchor_port), ("ingest", ingest_port)):
            env = {**base, "NOTAR_LISTEN": f"127.0.0.1:{port}"}
            procs.append(
                subprocess.Popen(
                    [NOTAR, "serve", "--role", role],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
            wait_ready(f"http://127.0.0.1:{port}", procs[-1], timeout=60)
        api_key = notar("tenant", "add", "acme", env=base).strip().splitlines()[-1]
        key = IssuerKey.generate("ES256")
        (tmp_path / "k.pem").write_bytes(key.pem)
        notar("tenant", "issuer", "add", "acme", "--iss", ISS, "--key", str(tmp_path / "k.pem"), env=base)
        s = Served(f"http://127.0.0.1:{ingest_port}", base, api_key, {"ES256": key}, key, b"")
        signed = statement(key, b'{"split": true}')

        async def run() -> None:
            r = await post(s, signed)
            assert r.status == 201, await r.read()
            receipt = await r.read()
            check_receipt(receipt, signed, await log_key(s))
            again = await get(s, r.headers["Location"])
            assert again.status == 200 and await again.read() == receipt
            assert (await post(s, signed)).status == 201
            missing = await get(s, "/entries/" + "cd" * 32)
            assert missing.status == 404 and problem(await missing.read())[0] == "Not found"

        asyncio.run(run())
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
            assert b"Traceback" not in err, err.decode()[-2000:]


async def test_notar_verify_checks_transparent_statements_offline(served: Served, tmp_path: Path) -> None:
    key = served.keys["ES384"]
    signed = statement(key, b'{"verify": "offline"}')
    r = await post(served, signed)
    assert r.status == 201
    receipt = await r.read()
    async with aiohttp.ClientSession() as http, http.get(served.url + "/v1/keys") as k:
        vkey = (await k.json())["logs"][0]["log"]
    (tmp_path / "statement.cose").write_bytes(signed)
    (tmp_path / "receipt.cose").write_bytes(receipt)
    protected, _, payload, signature = cbor2.loads(signed).value
    transparent = cbor2.dumps(cbor2.CBORTag(18, [protected, {394: [receipt]}, payload, signature]))
    (tmp_path / "transparent.cose").write_bytes(transparent)
    (tmp_path / "issuer.pem").write_bytes(key.pem)
    (tmp_path / "other.pem").write_bytes(IssuerKey.generate("ES384").pem)

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")}
        return subprocess.run([NOTAR, "verify", *args], env=env, capture_output=True, text=True, timeout=60)

    apart = verify(str(tmp_path / "receipt.cose"), str(tmp_path / "statement.cose"), "--key", vkey)
    assert apart.returncode == 0, apart.stdout + apart.stderr
    assert "VALID as far as checked — not checked: issuer signature" in apart.stdout
    whole = verify(
        str(tmp_path / "transparent.cose"), "--key", vkey, "--issuer-key", str(tmp_path / "issuer.pem")
    )
    assert whole.returncode == 0 and "✓ VALID — every check holds." in whole.stdout, whole.stdout
    wrong = verify(
        str(tmp_path / "transparent.cose"), "--key", vkey, "--issuer-key", str(tmp_path / "other.pem")
    )
    assert wrong.returncode == 1 and "check 'issuer signature' failed" in wrong.stdout
    other_log = Signer.generate("scitt.notar.test/log").verifier().to_key()  # the log's name, not its key
    untrusted = verify(str(tmp_path / "transparent.cose"), "--key", other_log)
    assert untrusted.returncode == 1 and "which is not trusted" in untrusted.stdout
    bare = verify(str(tmp_path / "statement.cose"), "--key", vkey, "--json")
    assert bare.returncode == 1 and '"name": "receipt"' in bare.stdout


def test_issuer_commands_refuse_bad_input_in_one_line(served: Served, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pem = tmp_path / "rsa.pem"
    rsa_pem.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "junk.pem").write_text("not a key\n")
    good = tmp_path / "good.pem"
    good.write_bytes(IssuerKey.generate("EdDSA").pem)
    cases = {
        "an RSA key": ["add", "acme", "--iss", ISS, "--key", str(rsa_pem)],
        "not a PEM key": ["add", "acme", "--iss", ISS, "--key", str(tmp_path / "junk.pem")],
        "a missing file": ["add", "acme", "--iss", ISS, "--key", str(tmp_path / "none.pem")],
        "an unknown tenant": ["add", "nobody", "--iss", ISS, "--key", str(good)],
        "an empty iss": ["add", "acme", "--iss", "", "--key", str(good)],
        "a malformed kid": ["revoke", "acme", "not-a-kid"],
        "an unknown kid": ["revoke", "acme", "ab" * 32],  # not found: exit 1, as for any NotarError
    }
    for what, args in cases.items():
        r = subprocess.run(
            [NOTAR, "tenant", "issuer", *args], env=served.env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == (1 if what == "an unknown kid" else 2), (
            what,
            r.returncode,
            r.stdout,
            r.stderr,
        )
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("notar: ") and "Traceback" not in r.stderr, (
            what,
            r.stderr,
        )
    assert (
        "P-256"
        in subprocess.run(
            [NOTAR, "tenant", "issuer", *cases["an RSA key"]], env=served.env, capture_output=True, text=True
        ).stderr
    )
