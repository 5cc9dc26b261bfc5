"""The web verifier's browser cases in Chromium (tests/services/verify/web_verifier.mjs, run once
by the `web_run` fixture in conftest.py): valid, changed file, tampered proof and index, wrong key,
other log, drop, progress, keyboard only, phone, from disk, anchors (RFC 3161 tokens the server got
from the test TSA: sound, with a flipped signature, from an untrusted TSA; with and without the
CA), the print view, server gone, and no request carrying the file's bytes.

The print view is read back as a reader would read the paper: Chromium printed it to PDF, and
Debian's poppler-utils (pdfinfo, pdftotext) — not our code — say what is on it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.poppler import GREEN, count, heading_band, near, pages, picture, poppler, run, text_of
from tests.services.verify.conftest import WebRun

CHECKS = ("format", "document", "entry", "checkpoint", "log signature", "inclusion", "signed time")
ANCHORS = (
    "Local chain block (kept by the service itself; it is not independent)",
    "RFC 3161 time-stamp",
    "Blockchain transaction (EVM)",
)


def test_web_verifier_in_chromium(web_run: WebRun) -> None:
    run = web_run.driver
    print(run.stdout, run.stderr, sep="\n")
    assert run.returncode == 0, f"the browser cases failed:\n{run.stdout}\n{run.stderr}"
    assert web_run.server_exit == 0, "the driver stopped the server with SIGTERM"


def test_the_print_view_is_one_page_with_the_evidence(web_run: WebRun, tmp_path: Path) -> None:
    """The anchored receipt (local block, RFC 3161 token checked with the server's CA, EVM record
    not asked) with its document, printed by Chromium to A4."""
    poppler()
    assert web_run.driver.returncode == 0, "the driver failed: see test_web_verifier_in_chromium"
    pdf, receipt = web_run.printed, web_run.corpus.anchored
    assert pages(pdf) == 1, "one page a court can file"
    layout = text_of(pdf)  # as laid out: the checks and anchors stand in two columns
    words = re.sub(r"\s+", " ", run("pdftotext", str(pdf), "-"))  # in reading order
    flat = re.sub(r"\s+", "", words)
    assert "evidence report of a notarized document" in words
    assert "✓ Valid as far as checked" in words and "Not valid" not in words, "the verdict"
    assert "anchor 3 (evm): its chain is not asked in a browser" in words, "what was not checked"
    assert re.search(r"Fingerprint blake3:[0-9a-f]{64}\b", words)
    assert receipt["digest"] in words, "the document's fingerprint, whole"
    assert f"the document “{web_run.corpus.base_document.name}”" in words, "the document's name"
    log = receipt["log"]
    assert f"Log {log['origin']} " in words, "the log"
    assert f"Entry number {log['index']} " in words, "the entry"
    assert f"Tree size {log['tree_size']} entries" in words
    marks = dict(
        (name, mark)
        for mark, name in re.findall(rf"([✓✗–])[ \t]+({'|'.join(CHECKS)}|anchor \d+ \([a-z0-9-]+\))", layout)
    )
    want = {c: "✓" for c in CHECKS} | {
        "anchor 1 (local)": "✓",
        "anchor 2 (rfc3161)": "✓",
        "anchor 3 (evm)": "–",
    }
    assert marks == want, layout
    for title in ANCHORS:
        assert title in words, f"the anchor {title!r}"
    assert re.search(r"time-stamped at \S+ by CN=notar test TSA \(serial \d+\)", words), "the token, checked"
    assert "Claims, not checked" not in words, "a token checked against the CA is no claim"
    assert receipt["anchors"][2]["tx_hash"] in flat, "the EVM transaction"
    assert "What was trusted" in words
    assert "time-stamp authority's CA (published by this server): CN=notar test CA" in words
    for key in web_run.corpus.keys["main"]:
        assert key in flat, f"the key {key}"
    for form in ("Print / save as PDF", "Choose the receipt", "What this page checks"):
        assert form not in words, f"the form is not printed: {form!r}"
    img = picture(pdf, tmp_path)
    width, height = img.size
    top, bottom = heading_band(pdf, "Timeline", "Each")
    band = (0, int(top * height), width, int(bottom * height))
    assert count(img, band, lambda p: near(p, GREEN)) > 40, "the timeline's markers are drawn, in green"


def test_the_print_view_of_sixteen_anchors_is_zoomed_down_to_one_page(web_run: WebRun) -> None:
    """Twenty-three checks and sixteen anchors: the page measures itself and zooms down to one sheet."""
    poppler()
    assert web_run.driver.returncode == 0, "the driver failed: see test_web_verifier_in_chromium"
    pdf = web_run.printed_many
    assert pages(pdf) == 1, "one page a court can file, even then"
    found = re.findall(r"([✓✗–])[ \t]+(anchor \d+ \([a-z0-9-]+\))", text_of(pdf))
    kinds = [("✓", "local")] * 8 + [("–", f"x-{j}") for j in range(8)]  # the corpus's valid-sixteen-anchors
    want = [(mark, f"anchor {i + 1} ({kind})") for i, (mark, kind) in enumerate(kinds)]
    assert sorted(found, key=lambda f: int(f[1].split()[1])) == want, "every anchor, with its mark"
