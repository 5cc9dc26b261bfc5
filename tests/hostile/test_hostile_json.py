"""Hostile JSON at POST /v1/digests and POST /v1/verify: 100,000 levels of nesting, 100,000-key
objects, duplicate names, NaN and Infinity, numbers where strings go, wrong top-level types,
trailing bytes. Each is a 400 problem+json (or, for a well-formed receipt of the wrong shape,
a verification that fails) — never a 500, never anything sequenced."""

from __future__ import annotations

import json
import os

import pytest

from tests.hostile.conftest import Served
from tests.hostile.rawhttp import Answer, exchange, request

DIGEST = "sha256:" + "ab" * 32


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


BAD_DIGESTS: dict[str, bytes] = {
    "100,000 levels of arrays": deep(100_000),
    "100,000 levels under digests": b'{"digests": ' + deep(100_000) + b"}",
    "50,000 levels of objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "a 100,000-key object": b"{" + b",".join(b'"k%d":0' % i for i in range(100_000)) + b"}",
    "NaN": b'{"digests": [NaN]}',
    "Infinity": b'{"digests": [Infinity]}',
    "-Infinity": b'{"digests": ["' + DIGEST.encode() + b'"], "salt": -Infinity}',
    "a 5,000-digit number": b'{"digests": [' + b"9" * 5000 + b"]}",
    "1e400": b'{"digests": [1e400]}',
    "numbers for digests": b'{"digests": [1, 2, 3]}',
    "a number for the list": b'{"digests": 12}',
    "a string for salt": b'{"digests": ["' + DIGEST.encode() + b'"], "salt": "yes"}',
    "null for salt": b'{"digests": ["' + DIGEST.encode() + b'"], "salt": null}',
    "an object for a digest": b'{"digests": [{"digest": "' + DIGEST.encode() + b'"}]}',
    "nested lists of digests": b'{"digests": [["' + DIGEST.encode() + b'"]]}',
    "a top-level list": b'["' + DIGEST.encode() + b'"]',
    "a top-level string": b'"' + DIGEST.encode() + b'"',
    "a top-level number": b"42",
    "top-level null": b"null",
    "top-level true": b"true",
    "an empty body": b"",
    "trailing bytes": b'{"digests": ["' + DIGEST.encode() + b'"]} x',
    "two documents": b'{"digests": []}{"digests": []}',
    "a byte-order mark": "\ufeff".encode() + b'{"digests": ["' + DIGEST.encode() + b'"]}',
    "an unterminated string": b'{"digests": ["sha256:',
    "a lone surrogate escape": b'{"digests": ["\\ud800"]}',
    "a NUL escape in a digest": b'{"digests": ["sha256:' + b"0" * 63 + b'\\u0000"]}',
    "a digest of 100 KB": b'{"digests": ["' + b"a" * 100_000 + b'"]}',
    "an empty list": b'{"digests": []}',
}

BAD_VERIFY: dict[str, bytes] = {
    "100,000 levels under receipt": b'{"receipt": ' + deep(100_000) + b"}",
    "NaN for a receipt": b'{"receipt": NaN}',
    "a number for the digest": b'{"receipt": {}, "digest": 5}',
    "a list for the digest": b'{"receipt": {}, "digest": ["' + DIGEST.encode() + b'"]}',
    "no receipt": b'{"digest": "' + DIGEST.encode() + b'"}',
    "a top-level list": b"[{}]",
    "duplicate receipts": b'{"receipt": {"format": "a"}, "receipt": {"format": "b"}}',
    "a duplicate name deep inside": b'{"receipt": {"log": {"index": 1, "index": 2}}}',
    "duplicate digests": b'{"receipt": {}, "digest": "' + DIGEST.encode() + b'", "digest": "x"}',
}

# Within orjson's 1,024 levels, beyond what Python 3.11's recursive parser (the check for
# duplicate names) can go: a 500 once (RecursionError).
DEEP_VERIFY: dict[str, bytes] = {
    "1,000 levels under receipt": b'{"receipt": ' + deep(1_000) + b"}",
    "1,020 levels of objects in receipt": b'{"receipt": ' + b'{"a":' * 1_020 + b"1" + b"}" * 1_021,
}

# Well-formed JSON whose receipt has the wrong shape: verification runs and fails, no error.
WRONG_RECEIPTS: dict[str, object] = {
    "a string": "receipt",
    "a list": [1, 2, {}],
    "numbers everywhere": {
        "format": 1,
        "digest": 2,
        "entry": 3,
        "log": 4,
        "checkpoint": 5,
        "anchors": 6,
    },
    "wrong types inside log": {
        "format": "notar.receipt.v1",
        "digest": DIGEST,
        "entry": "00",
        "log": {"origin": [], "index": "0", "tree_size": -1, "inclusion": "ab"},
        "checkpoint": {"note": 1},
        "anchors": [None, 7, "x", {"type": ["evm"]}],
    },
    "a huge index": {
        "format": "notar.receipt.v1",
        "digest": DIGEST,
        "entry": "1220" + "ab" * 32,
        "log": {"origin": "o", "index": 2**63, "tree_size": 2**64 - 1, "inclusion": ["00" * 32] * 64},
        "checkpoint": "o\n18446744073709551615\n" + "A" * 44 + "\n\n— x y\n",
        "anchors": [],
    },
}


async def post(served: Served, route: str, body: bytes) -> Answer:
    headers = {"Authorization": f"Bearer {served.acme}", "Content-Type": "application/json"}
    return await exchange(served.port, request("POST", route, headers=headers, body=body), within=30)


@pytest.mark.parametrize("name", list(BAD_DIGESTS))
async def test_bad_json_for_digests_is_a_400_and_sequences_nothing(served: Served, name: str) -> None:
    index = await served.marker()
    answer = await post(served, "/v1/digests", BAD_DIGESTS[name])
    assert answer.status == 400 and answer.is_problem(400), answer
    assert len(answer.body) < 2000, "the answer echoes the request"
    assert await served.marker() == index + 1, "something was sequenced"


@pytest.mark.parametrize("name", list(BAD_VERIFY))
async def test_bad_json_for_verify_is_a_400(served: Served, name: str) -> None:
    answer = await post(served, "/v1/verify", BAD_VERIFY[name])
    assert answer.status == 400 and answer.is_problem(400), answer


@pytest.mark.parametrize("name", list(DEEP_VERIFY))
async def test_deep_json_for_verify_is_refused_or_fails_never_a_500(served: Served, name: str) -> None:
    answer = await post(served, "/v1/verify", DEEP_VERIFY[name])
    if answer.status == 400:
        assert answer.is_problem(400) and "nested too deep" in answer.json()["detail"], answer
    else:  # a parser that does not recurse on the stack would read it: a receipt of the wrong shape
        assert answer.status == 200 and answer.json()["valid"] is False, answer


@pytest.mark.parametrize("name", list(WRONG_RECEIPTS))
async def test_a_receipt_of_the_wrong_shape_fails_verification(served: Served, name: str) -> None:
    body = json.dumps({"receipt": WRONG_RECEIPTS[name], "digest": DIGEST}).encode()
    answer = await post(served, "/v1/verify", body)
    assert answer.status == 200, answer
    result = answer.json()
    assert result["valid"] is False and any(not c["ok"] for c in result["checks"]), result


async def test_a_name_given_twice_in_a_digests_request_is_read_once(served: Served) -> None:
    """Duplicate names at POST /v1/digests are not refused (checking costs the hot path a second
    parse) but have one meaning: the last, as every mainstream JSON parser reads them — the
    receipts name exactly those digests and only they are sequenced."""
    first = ["sha256:" + os.urandom(32).hex() for _ in range(3)]
    last = ["sha256:" + os.urandom(32).hex() for _ in range(2)]
    index = await served.marker()
    body = b'{"digests": ' + json.dumps(first).encode() + b', "digests": ' + json.dumps(last).encode() + b"}"
    answer = await post(served, "/v1/digests", body)
    assert answer.status == 200, answer
    assert [r["digest"] for r in answer.json()["receipts"]] == last
    assert await served.marker() == index + len(last) + 1
