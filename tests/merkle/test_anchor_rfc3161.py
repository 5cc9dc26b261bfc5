"""rfc3161 records in receipts, with real tokens (`openssl ts -reply` under a test CA): over the
checkpoint body, over an aggregate (notar's choice: SHA-256 of `aggregate_body(K, root)`), and the
token's genTime held to the clock's signed time."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from merkle import Status, make_aggregate, verify_receipt
from merkle.aggregate import aggregate_body
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.rfc3161 import build_request, load_certificates, token_from_response
from tests.merkle.logs import ORIGIN, Log, make_log
from tests.tsa import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def stamp(pki: Pki, text: str, tmp: Path) -> str:
    """A base64 token over SHA-256 of `text`, from openssl's TSA."""
    nonce = 0x5EED
    (tmp / "q.tsq").write_bytes(build_request(text, nonce))
    subprocess.run(
        [
            "openssl",
            "ts",
            "-reply",
            "-config",
            str(pki.config),
            "-queryfile",
            str(tmp / "q.tsq"),
            "-signer",
            str(pki.tsa_cert),
            "-inkey",
            str(pki.tsa_key),
            "-out",
            str(tmp / "r.tsr"),
        ],
        check=True,
        capture_output=True,
    )
    token = token_from_response((tmp / "r.tsr").read_bytes(), nonce=nonce, body=text)
    return base64.b64encode(token).decode()


def body(log: Log) -> str:
    return log.note.split("\n\n")[0] + "\n"


def verify(log: Log, record: dict[str, Any], pki: Pki | None) -> Any:
    cas = load_certificates(pki.ca_cert.read_bytes()) if pki else []
    verifiers = offline_anchor_verifiers(keys=log.keys, tsa_cas=cas)
    return verify_receipt(log.receipt(index=1, anchors=[record]), keys=log.keys, anchor_verifiers=verifiers)


def test_a_token_over_the_checkpoint_body(pki: Pki, tmp_path: Path) -> None:
    log = make_log(n=4, signed_at=int(time.time()) - 60)
    record = {"type": "rfc3161", "tsa": "http://tsa.test/", "token": stamp(pki, body(log), tmp_path)}
    result = verify(log, record, pki)
    assert result.valid and result.checks[-1].status is Status.OK
    assert "by CN=notar test TSA" in result.checks[-1].detail
    unchecked = verify(log, record, None).checks[-1]
    assert unchecked.status is Status.NOT_CHECKED and "--tsa-ca" in unchecked.detail


def test_a_token_over_an_aggregate(pki: Pki, tmp_path: Path) -> None:
    now = int(time.time()) - 60
    logs = [make_log(ORIGIN, n=4, signed_at=now), make_log(ORIGIN + "/1", n=6, signed_at=now)]
    root, aggregates = make_aggregate([log.checkpoint for log in logs])
    token = stamp(pki, aggregate_body(2, root), tmp_path)
    for log, agg in zip(logs, aggregates, strict=True):
        record = {"type": "rfc3161", "tsa": "http://tsa.test/", "token": token, "aggregate": agg.to_obj()}
        check = verify(log, record, pki).checks[-1]
        assert check.status is Status.OK and "for an aggregate of 2 checkpoints" in check.detail
    # the aggregate's token does not stand for a checkpoint alone, nor a checkpoint's for an aggregate
    alone = verify(logs[0], {"type": "rfc3161", "tsa": "t", "token": token}, pki).checks[-1]
    assert alone.status is Status.FAILED and "message imprint" in alone.detail
    own = stamp(pki, body(logs[0]), tmp_path)
    record = {"type": "rfc3161", "tsa": "t", "token": own, "aggregate": aggregates[0].to_obj()}
    assert verify(logs[0], record, pki).checks[-1].status is Status.FAILED


def test_a_token_stamped_long_before_the_signed_time_fails(pki: Pki, tmp_path: Path) -> None:
    log = make_log(n=4, signed_at=int(time.time()) + 3600)  # the clock says: signed an hour from now
    record = {"type": "rfc3161", "tsa": "t", "token": stamp(pki, body(log), tmp_path)}
    check = verify(log, record, pki).checks[-1]
    assert check.status is Status.FAILED and "before the signed time" in check.detail


def test_a_record_without_a_token_fails(pki: Pki) -> None:
    log = make_log(n=4)
    check = verify(log, {"type": "rfc3161", "tsa": "t"}, pki).checks[-1]
    assert check.status is Status.FAILED and check.detail.startswith("malformed anchor record")
