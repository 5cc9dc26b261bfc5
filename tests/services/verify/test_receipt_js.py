"""The page's checks (receipt.js, its RFC 3161 checks with Node's WebCrypto) under Node, without a
browser, against `notar verify` on the corpus of tests/services/verify/corpus.py: the same checks,
each with the same status, with each receipt's TSA CA and without any (agreement.py). Fast, so it
runs on every receipt of the corpus; test_web_verifier_corpus.py runs the same corpus through the
page in Chromium."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from blake3 import blake3
from cryptography.hazmat.primitives.serialization import Encoding

from loadtest.fuzz_mutations import any_json_in_a_member, mutated_receipts
from loadtest.fuzz_seeds import build_seeds
from merkle import verify_receipt
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.rfc3161 import load_certificates
from merkle.strictjson import check_unique_names
from services.verify.pool import Trusted, verify_in_worker
from tests.fuzz.conftest import sample
from tests.needs import missing
from tests.services.verify.agreement import Verdict, cli_verdict, disagreement
from tests.services.verify.corpus import Corpus, build
from tests.services.verify.live import REPO
from tests.tsa import make_pki

NODE_RUNNER = Path(__file__).with_name("receipt_node.mjs")
CRAFTED = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Path]:
    work = tmp_path_factory.mktemp("receipt-js")
    pki = make_pki(work / "pki")
    return build(work / "corpus", pki, random.Random(14)), pki.ca_cert


def node() -> str:
    found = shutil.which("node")
    if found is None:
        missing("node is needed (apt-get install nodejs)")
    return found


def page_verdicts(items: list[dict[str, Any]], work: Path) -> dict[str, Verdict]:
    """The page's verdict on each item ({id, receipt, document, keys: [verifier key…]})."""
    (work / "items.json").write_text(json.dumps(items))
    done = subprocess.run(
        [node(), str(NODE_RUNNER), str(work / "items.json"), str(work / "verdicts.json")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts: dict[str, Verdict] = json.loads((work / "verdicts.json").read_text())
    return verdicts


def test_the_page_and_notar_verify_agree_on_the_corpus(corpus: tuple[Corpus, Path], tmp_path: Path) -> None:
    built, _ = corpus
    page = page_verdicts([{**i, "keys": built.keys[i["keys"]]} for i in built.items], tmp_path)
    cli = {}
    for i in built.items:
        document = Path(i["document"]) if i["document"] else None
        cli[i["id"]] = cli_verdict(Path(i["receipt"]), document, built.keys[i["keys"]], Path(i["tsa_ca"]))
    differ = {k: why for k in cli if (why := disagreement(page[k], cli[k])) is not None}
    assert not differ, "the page and notar verify disagree:\n" + "\n".join(
        f"{k}: {w}" for k, w in differ.items()
    )
    valid = {k for k, v in cli.items() if v["valid"]}
    assert valid == built.expected_valid, valid ^ built.expected_valid
    malformed = {k for k, v in cli.items() if v["checks"] == [["format", "failed"]]}
    assert {
        "v1-receipt",
        "anchors-17-local",
        "extra-top-level-field",
        "extra-signed-time",
        "duplicate-name-in-anchor",
    } <= malformed
    unchecked = {k for k, v in page.items() if any(s == "not checked" for _, s in v["checks"])}
    assert {
        "valid-without-document",
        "valid-anchored-all-kinds",
        "anchor-unknown-kind",
        "anchored-invented-kind",
        "anchored-evm-no-size",
    } <= unchecked
    garbage = dict(cli["anchored-rfc3161-garbage"]["checks"])
    assert garbage["anchor 2 (rfc3161)"] == "failed" and not cli["anchored-rfc3161-garbage"]["valid"]
    assert len(built.items) >= 160 and len(valid) >= 35, (len(built.items), len(valid))
    rfc3161 = {k: [s for n, s in v["checks"] if "(rfc3161)" in n] for k, v in page.items()}
    assert rfc3161["valid-anchored-all-kinds"] == ["ok"]
    assert rfc3161["anchored-rfc3161-bad-signature"] == ["failed"]
    tsa = {k: s for k, s in rfc3161.items() if k.startswith("rfc3161-")}
    assert len(tsa) >= 35 and all(len(s) == 1 for s in tsa.values()), tsa
    assert {k for k, s in tsa.items() if s == ["ok"]} == {k for k in tsa if k in built.expected_valid}
    assert sum(s == ["failed"] for s in tsa.values()) >= 20, tsa


def test_without_a_tsa_ca_both_leave_rfc3161_anchors_unchecked(
    corpus: tuple[Corpus, Path], tmp_path: Path
) -> None:
    """No CA given: the page, like `notar verify` without --tsa-ca, calls every RFC 3161 anchor "not
    checked" (a garbage token and one of another checkpoint too): a token no one trusts proves
    nothing, and it is not evidence of tampering either. What the token claims is in the detail."""
    built, _ = corpus
    anchored = [i for i in built.items if any(k in i["id"] for k in ("rfc3161", "anchored", "aggregated"))]
    page = page_verdicts([{**i, "keys": built.keys[i["keys"]], "tsa_ca": None} for i in anchored], tmp_path)
    differ = {}
    for i in anchored:
        document = Path(i["document"]) if i["document"] else None
        cli = cli_verdict(Path(i["receipt"]), document, built.keys[i["keys"]], None)
        if (why := disagreement(page[i["id"]], cli)) is not None:
            differ[i["id"]] = why
    assert not differ, "\n".join(f"{k}: {w}" for k, w in differ.items())
    statuses = {s for v in page.values() for n, s in v["checks"] if "(rfc3161)" in n}
    assert statuses == {"not checked"}, statuses
    assert len(anchored) >= 50, len(anchored)
    claims = _detail(page["valid-anchored-all-kinds"], "anchor 2 (rfc3161)")
    assert "it claims a time-stamp at" in claims and "CN=notar test TSA" in claims, claims
    other = _detail(page["anchored-rfc3161-other-checkpoint"], "anchor 2 (rfc3161)")
    assert other.endswith("but of another checkpoint"), other


def _detail(verdict: Verdict, check: str) -> str:
    names = [n for n, _ in verdict["checks"]]
    detail: str = verdict["details"][names.index(check)]
    return detail


def test_post_verify_and_notar_verify_agree_on_the_corpus(corpus: tuple[Corpus, Path]) -> None:
    """The third verifier: what POST /v1/verify answers for each receipt of the corpus, under the
    keys of its key set — the body parsed as the route parses it (a 400 counts as a failed format
    check) and the verdict worked out by the function its worker pool runs — is what `notar verify`
    says, check by check."""
    built, _ = corpus
    differ = {}
    for i in built.items:
        ca = Path(i["tsa_ca"])
        cas = tuple(c.public_bytes(Encoding.DER) for c in load_certificates(ca.read_bytes()))
        text = Path(i["receipt"]).read_bytes()
        document = Path(i["document"]) if i["document"] else None
        try:
            receipt = orjson.loads(text)
            check_unique_names(text)
        except ValueError:
            api: Verdict = {"valid": False, "checks": [["format", "failed"]]}
        else:
            digest = None
            if document is not None:
                sha = isinstance(receipt, dict) and str(receipt.get("digest", "")).startswith("sha256:")
                data = document.read_bytes()
                sha256, b3 = hashlib.sha256(data).hexdigest(), blake3(data).hexdigest()
                digest = f"sha256:{sha256}" if sha else f"blake3:{b3}"
            answer = verify_in_worker(receipt, Trusted(tuple(built.keys[i["keys"]])), digest, cas)
            api = {"valid": answer["valid"], "checks": [[c["name"], c["status"]] for c in answer["checks"]]}
            if answer["checks"][0]["status"] != "ok":
                api["checks"] = [["format", "failed"]]
        cli = cli_verdict(Path(i["receipt"]), document, built.keys[i["keys"]], ca)
        if api != cli:
            differ[i["id"]] = f"api {api}, cli {cli}"
    assert not differ, "POST /v1/verify and notar verify disagree:\n" + "\n".join(
        f"{k}: {w}" for k, w in differ.items()
    )


def test_the_page_and_merkle_agree_on_crafted_receipts(tmp_path: Path) -> None:
    """The fuzzers' mutants of their seed receipts (loadtest/fuzz_mutations.py: every member near
    its value, arbitrary JSON in any member, signed notes edited line by line...) through the
    page's checks and merkle's verify_receipt, both with the seeds' TSA CA: the same checks with
    the same statuses, RFC 3161 anchors included."""
    seeds = build_seeds()
    crafted = [json.dumps(r) for r in sample(mutated_receipts(seeds), CRAFTED)]
    crafted += [d.decode() for d in sample(any_json_in_a_member(seeds), CRAFTED // 2)]
    paths = []
    for i, text in enumerate([*(json.dumps(r) for r in seeds.receipts), *crafted]):
        paths.append(tmp_path / f"crafted-{i}.json")
        paths[-1].write_text(text, encoding="utf-8")
    ca = tmp_path / "tsa-ca.pem"
    ca.write_text(seeds.ca_pem)
    items = [{"id": p.stem, "receipt": str(p), "document": None, "keys": seeds.keys} for p in paths]
    items = [{**i, "tsa_ca": str(ca)} for i in items]
    page = page_verdicts(items, tmp_path)
    verifiers = offline_anchor_verifiers(keys=seeds.keys, tsa_cas=load_certificates(seeds.ca_pem.encode()))
    differ, statuses = {}, Counter[str]()
    for path in paths:
        result = verify_receipt(path.read_bytes(), keys=seeds.keys, anchor_verifiers=verifiers)
        merkle = [(c.name, c.status.value) for c in result.checks]
        mine = [(n, s) for n, s in page[path.stem]["checks"]]
        statuses["malformed" if not result.checks[0].ok else "valid" if result.valid else "failed"] += 1
        if mine != merkle:
            differ[path.stem] = (mine, merkle, path.read_text()[:400])
    assert not differ, "\n".join(
        f"{k}: page {p}\n  merkle {m}\n  {t}" for k, (p, m, t) in list(differ.items())[:5]
    )
    assert statuses["valid"] >= len(seeds.receipts) and statuses["failed"] >= CRAFTED // 4, statuses
