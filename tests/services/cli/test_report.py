"""`notar verify … --report FILE.pdf`: one page a court can file, rendered with Debian's poppler-utils
(pdfinfo, pdftotext, pdftoppm) and checked as a reader would: one page; its text says the verdict,
what was not checked, the document's name and fingerprint, the log and the entry, and each check
with its status; the picture is not blank and its timeline is drawn (the markers' colours are in
the band between the "Timeline" and "Each check" headings)."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3

from merkle import Receipt
from merkle.anchors.local import make_block
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import make_entry, parse_digest
from merkle.hashing import leaf_hash
from merkle.note import Signer
from merkle.proofs import Tree
from services.cli import main
from services.cli.report import printable
from tests.poppler import GREEN, count, heading_band, near, pages, picture, poppler, text_of
from tests.services.verify import tokens
from tests.services.verify.live import NOTAR

ORIGIN = "court.notar.test/log"
LOG = Signer.generate(ORIGIN)
CLOCK = CosignatureSigner.generate(ORIGIN + "/clock")
KEYS = [LOG.verifier().to_key(), CLOCK.verifier().to_key()]
SIGNED_AT = 1_700_000_000
SUBJECT = "Étude Müller & Associés ✓"
RED = (164, 14, 38)  # the report's and the page's red (#a40e26)


@dataclass
class Case:
    receipt: Path
    document: Path
    digest: str
    ca: Path
    index: int


def make_case(tmp: Path, anchors: str = "all", *, document_name: str = "contrat signé.pdf") -> Case:
    """A receipt for a document (entry 5 of 9) with its anchors: "all" (local, RFC 3161, EVM),
    "bad-token" (the RFC 3161 token's signature broken) or "sixteen"."""
    document = tmp / document_name
    document.write_bytes(b"%PDF-1.7 the signed contract " * 50)
    digest = parse_digest("blake3:" + blake3.blake3(document.read_bytes()).hexdigest())
    salt = bytes(range(16))
    entries = [make_entry(parse_digest("blake3:" + (bytes([i]) * 32).hex()), salt, "other") for i in range(9)]
    entries[5] = make_entry(digest, salt, SUBJECT)
    tree = Tree([leaf_hash(e) for e in entries])
    cp = Checkpoint(ORIGIN, len(entries), tree.root())
    note = sign_checkpoint(cp, LOG, CLOCK, SIGNED_AT)
    body = note[: note.index("\n\n") + 1]
    ca = tokens.ca("Court test TSA root", "p256:report-ca")
    tsa = tokens.tsa("Court test TSA", ca, key="p256:report-tsa")
    stamp = tokens.Stamp(gen_time=datetime.fromtimestamp(SIGNED_AT + 60, UTC), tamper=anchors == "bad-token")
    token = base64.b64encode(tokens.token(body, tsa, stamp)).decode()
    local = {"type": "local", **make_block(previous=None, time=SIGNED_AT + 4, checkpoint=cp, signer=LOG)}
    records: list[dict[str, Any]] = [
        local,
        {"type": "rfc3161", "tsa": "http://tsa.test/", "token": token},
        {"type": "evm", "chain_id": 1, "contract": "0x" + "11" * 20, "tx_hash": "0x" + "ab" * 32,
         "block_number": 7, "block_hash": "0x" + "22" * 32, "tree_size": cp.size,
         "root": "0x" + cp.root.hex()},
    ]  # fmt: skip
    if anchors == "sixteen":
        records = [local] * 8 + [{"type": f"x-{i}"} for i in range(8)]
    receipt = Receipt.build(
        digest=digest, salt=salt, subject=SUBJECT, origin=ORIGIN, index=5, tree_size=cp.size,
        inclusion=tree.inclusion_proof(5), checkpoint=note, anchors=records,
    )  # fmt: skip
    path = tmp / (document.name + ".receipt.json")
    path.write_bytes(receipt.to_json())
    return Case(path, document, str(digest), tokens.write_pem(tmp / "tsa-ca.pem", ca), 5)


def verify(case: Case, pdf: Path, *extra: str, document: bool = True) -> int:
    args = ["verify", str(case.receipt), *([str(case.document)] if document else []), "--report", str(pdf)]
    return main([*args, *extra, *(a for k in KEYS for a in ("--key", k))])


def statuses(text: str) -> dict[str, str]:
    """Each check's status as the report's table prints it ("ok", "FAILED", "not checked")."""
    found = {}
    for m in re.finditer(r"^\s*(ok|FAILED|not checked)\s{2,}(format|document|entry|checkpoint|log signature|"
                         r"inclusion|signed time|anchor \d+ \([^)]*\)?)", text, re.M):  # fmt: skip
        found[m.group(2)] = m.group(1)
    return found


def test_the_report_of_a_valid_receipt_is_one_readable_page(tmp_path: Path) -> None:
    poppler()
    case = make_case(tmp_path)
    pdf = tmp_path / "report.pdf"
    assert verify(case, pdf, "--tsa-ca", str(case.ca)) == 0
    assert pages(pdf) == 1
    text = text_of(pdf)
    flat, words = re.sub(r"\s+", "", text), re.sub(r"\s+", " ", text)
    assert "VALID AS FAR AS CHECKED" in text
    assert "anchor 3 (evm): its chain was not asked" in words
    assert case.digest in flat, "the fingerprint, whole"
    assert "contrat signé.pdf" in text and ORIGIN in text
    assert re.search(r"Entry number\s+5\b", text) and re.search(r"Tree size\s+9 entries", text)
    assert "Müller" in text and ("✓" in text or "<U+2713>" in text), "the subject, never another name"
    assert "14 November 2023, 22:13:20 UTC" in words, "the signed time"
    want = {
        "format": "ok", "document": "ok", "entry": "ok", "checkpoint": "ok", "log signature": "ok",
        "inclusion": "ok", "signed time": "ok", "anchor 1 (local)": "ok", "anchor 2 (rfc3161)": "ok",
        "anchor 3 (evm)": "not checked",
    }  # fmt: skip
    assert statuses(text) == want, text
    assert "not independent evidence" in words, "the local chain is called what it is"
    local, stamped = (datetime.fromtimestamp(SIGNED_AT + s, UTC) for s in (4, 60))  # make_case's anchors
    assert f"block 0 of the local chain, signed by {ORIGIN} at {local:%Y-%m-%dT%H:%M:%SZ}" in words
    assert f"time-stamped at {stamped:%Y-%m-%dT%H:%M:%SZ} by CN=Court test TSA (serial" in words
    assert "no chain was asked" in words, "the EVM anchor, with why it was not checked"
    for t in (local, stamped):
        assert f"{t:%H:%M:%S} UTC" in text, f"the timeline shows the anchor at {t}"
    assert hashlib.sha256(case.receipt.read_bytes()).hexdigest() in flat, "the receipt file's SHA-256"
    for key in KEYS:
        assert key.split("+")[0] in text
    assert "CN=Court test TSA root" in text
    img = picture(pdf, tmp_path)
    width, height = img.size
    dark = count(img, (0, 0, width, height), lambda p: sum(p) < 300)
    assert dark > width * height // 100, "the page has text on it"
    top, bottom = heading_band(pdf, "Timeline", "Each")
    band = (0, int(top * height), width, int(bottom * height))
    assert count(img, band, lambda p: near(p, GREEN)) > 40, "the timeline's markers are drawn, in green"
    assert count(img, band, lambda p: sum(p) < 450) > 200, "and its axis, labels and times"


def test_the_report_of_a_failed_check_says_not_valid_in_red(tmp_path: Path) -> None:
    poppler()
    case = make_case(tmp_path, "bad-token")
    pdf = tmp_path / "report.pdf"
    assert verify(case, pdf, "--tsa-ca", str(case.ca)) == 1
    assert pages(pdf) == 1
    text = text_of(pdf)
    assert "NOT VALID" in text and "VALID AS FAR" not in text
    failed = "The check “anchor 2 (rfc3161)” failed: the token's signature does not verify"
    assert failed in re.sub(r"\s+", " ", text)
    assert statuses(text)["anchor 2 (rfc3161)"] == "FAILED"
    img = picture(pdf, tmp_path)
    top = (0, 0, img.size[0], img.size[1] // 4)
    assert count(img, top, lambda p: near(p, RED)) > 100, "the verdict in red"


def test_without_a_document_or_a_tsa_ca_the_report_lists_what_was_not_checked(tmp_path: Path) -> None:
    poppler()
    case = make_case(tmp_path)
    pdf = tmp_path / "report.pdf"
    assert verify(case, pdf, document=False) == 0
    text = re.sub(r"\s+", " ", text_of(pdf))
    assert "VALID AS FAR AS CHECKED" in text and "Notarized fingerprint" in text
    assert "the document (none was given)" in text
    assert "anchor 2 (rfc3161): no time-stamp authority's certificate was given" in text
    assert "no time-stamp authority's CA" in text
    assert "(claimed)" in text, "the token's time is on the timeline as a claim"


def test_sixteen_anchors_still_fit_one_page(tmp_path: Path) -> None:
    poppler()
    case = make_case(tmp_path, "sixteen")
    pdf = tmp_path / "report.pdf"
    assert verify(case, pdf) == 0
    assert pages(pdf) == 1
    found = statuses(text_of(pdf))
    assert len(found) == 7 + 16 and found["anchor 16 (x-7)"] == "not checked", found


def test_the_installed_notar_writes_the_report_and_an_unwritable_path_is_one_line(tmp_path: Path) -> None:
    poppler()
    case = make_case(tmp_path, document_name="contract.pdf")
    pdf = tmp_path / "court" / "report.pdf"
    keys = [a for k in KEYS for a in ("--key", k)]
    args = [NOTAR, "verify", str(case.receipt), str(case.document), "--report", str(pdf), *keys]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot write the report" in done.stderr and not pdf.exists()
    pdf.parent.mkdir()
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert pages(pdf) == 1 and "report written to" in done.stderr


def test_characters_the_font_lacks_are_written_as_code_points() -> None:
    assert printable("Müller ✓", "Courier") == "Müller <U+2713>"
    assert printable("契約", "Courier") == "<U+5951><U+7D04>"
