"""The web verifier and `notar verify` give the same checks with the same statuses on every receipt
of the corpus (valid, tampered, malformed, v1, aggregated, with unknown anchor kinds; built with
merkle/ and issued by a live `notar serve`) that the `web_run` fixture in conftest.py ran through
Chromium, each with its TSA CA (the one the server publishes, or one pasted into the page)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.services.verify.agreement import Verdict, cli_verdict, disagreement
from tests.services.verify.conftest import WebRun
from tests.services.verify.live import NOTAR


def page_verdicts(web_run: WebRun) -> dict[str, Verdict]:
    assert web_run.results.exists(), "the driver wrote no verdicts: see test_web_verifier_in_chromium"
    page: dict[str, Verdict] = json.loads(web_run.results.read_text())
    return page


def test_the_page_and_notar_verify_agree_on_every_receipt(web_run: WebRun) -> None:
    corpus, page = web_run.corpus, page_verdicts(web_run)
    cli = {}
    for i in corpus.items:
        document = Path(i["document"]) if i["document"] else None
        cli[i["id"]] = cli_verdict(Path(i["receipt"]), document, corpus.keys[i["keys"]], Path(i["tsa_ca"]))
    differ = {k: why for k in cli if (why := disagreement(page[k], cli[k])) is not None}
    assert not differ, "the page and notar verify disagree:\n" + "\n".join(
        f"{k}: {w}" for k, w in differ.items()
    )
    valid = {k for k, v in cli.items() if v["valid"]}
    assert valid == corpus.expected_valid, valid ^ corpus.expected_valid
    assert len(corpus.items) >= 180 and len(valid) >= 40, (len(corpus.items), len(valid))
    live = [k for k in cli if k.startswith("live-")]
    stamped = {"live-valid-anchored-local-and-rfc3161", "live-rfc3161-flipped", "live-rfc3161-untrusted-tsa"}
    assert len(live) >= 14 and {"live-v1", "live-salt-flipped", *stamped} <= set(live)
    tsa = {k: [s for n, s in v["checks"] if "(rfc3161)" in n] for k, v in page.items() if "rfc3161-" in k[:8]}
    assert len(tsa) >= 35 and {s for v in tsa.values() for s in v} == {"ok", "failed"}, tsa


def test_the_installed_notar_agrees_with_the_page(web_run: WebRun) -> None:
    """The installed `notar` executable, on a few of them (each start costs seconds)."""
    corpus, page = web_run.corpus, page_verdicts(web_run)
    for name in ("valid-without-document", "changed-document", "wrong-keys", "live-v1"):
        item = next(i for i in corpus.items if i["id"] == name)
        args = [NOTAR, "verify", item["receipt"], *([item["document"]] if item["document"] else []), "--json"]
        args += [a for k in corpus.keys[item["keys"]] for a in ("--key", k)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if done.returncode == 2:  # malformed: one line, no verdict
            assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
            assert page[name]["checks"] == [["format", "failed"]], name
            continue
        doc = json.loads(done.stdout)
        assert [[c["name"], c["status"]] for c in doc["checks"]] == page[name]["checks"], name
        assert done.returncode == (0 if doc["valid"] else 1)
