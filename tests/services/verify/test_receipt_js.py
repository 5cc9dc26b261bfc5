"""The page's checks (receipt.js) under Node, without a browser, against `notar verify` on the
corpus of tests/services/verify/corpus.py: the same checks, each with the same status (but for what
the page says it does not check: agreement.py). Fast, so it runs on every receipt of the corpus;
test_web_verifier_corpus.py runs the same corpus through the page in Chromium."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services.verify.agreement import KNOWN_SIGNATURE_FAILURES, Verdict, cli_verdict, disagreement
from tests.services.verify.corpus import Corpus, build
from tests.services.verify.live import REPO, _in_ci
from tests.tsa import make_pki

NODE_RUNNER = Path(__file__).with_name("receipt_node.mjs")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Path]:
    work = tmp_path_factory.mktemp("receipt-js")
    pki = make_pki(work / "pki")
    return build(work / "corpus", pki, random.Random(14)), pki.ca_cert


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if _in_ci():
            pytest.fail("node is needed (apt-get install nodejs): in CI this test must run")
        pytest.skip("node is needed (apt-get install nodejs)")
    return found


def page_verdicts(corpus: Corpus, work: Path) -> dict[str, Verdict]:
    items = [{**i, "keys": corpus.keys[i["keys"]]} for i in corpus.items]
    (work / "items.json").write_text(json.dumps(items))
    done = subprocess.run(
        [node(), str(NODE_RUNNER), str(work / "items.json"), str(work / "verdicts.json")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts: dict[str, Verdict] = json.loads((work / "verdicts.json").read_text())
    return verdicts


def test_the_page_and_notar_verify_agree_on_the_corpus(corpus: tuple[Corpus, Path], tmp_path: Path) -> None:
    built, ca = corpus
    page = page_verdicts(built, tmp_path)
    cli = {}
    for i in built.items:
        document = Path(i["document"]) if i["document"] else None
        cli[i["id"]] = cli_verdict(Path(i["receipt"]), document, built.keys[i["keys"]], ca)
    differ = {k: why for k in cli if (why := disagreement(k, page[k], cli[k])) is not None}
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
        "duplicate-name-in-anchor",
    } <= malformed
    unchecked = {k for k, v in page.items() if any(s == "not checked" for _, s in v["checks"])}
    assert {"valid-without-document", "valid-anchored-all-kinds", "anchor-unknown-kind"} <= unchecked
    assert len(built.items) >= 120 and len(valid) >= 20, (len(built.items), len(valid))
    for name in KNOWN_SIGNATURE_FAILURES:
        assert not cli[name]["valid"] and page[name]["valid"], (page[name], cli[name])
