"""The web verifier (GET /verify) in Debian's Chromium, against a running `notar serve`: one run
shared by tests/services/verify/test_web_verifier*.py.

The `web_run` fixture builds the corpus of tests/services/verify/corpus.py (receipts made with
merkle/ and test keys: every shape of a valid receipt, aggregates, unknown anchor kinds, a v1
receipt, every member tampered), starts `notar serve`, notarizes files with the `notar` command
(the receipts the browser cases check against the server's own keys, a 40 MB one for the progress
bar) and adds those receipts, anchored and tampered, to the corpus; then it runs the Node driver
`web_verifier.mjs` (playwright-core, the npm package the issue names) once. The server publishes the
corpus's TSA CA (TSA_CA_FILE, GET /v1/tsa-ca); receipts checked against another CA get it pasted.
The driver asserts the browser cases, saves a screenshot of each verdict under build/verify-page/
and the print view as a PDF; test_web_verifier_corpus.py checks that the page and `notar verify`
give the same checks with the same statuses on every receipt of the corpus, test_web_verifier.py
that the print view is the evidence report.

Why a Node driver: playwright-core from npm is pinned in package-lock.json and needs no browser
download (it drives /usr/bin/chromium); the Python `playwright` wheel would bring a second copy of
Playwright with its own Node runtime.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from merkle.cosignature import CosignatureSigner
from merkle.note import add_signatures
from services.verify.page import build_page
from tests.services.verify.corpus import Corpus, build
from tests.services.verify.live import (
    DRIVER,
    REPO,
    SCREENSHOTS,
    Receipt,
    anchored,
    body_of,
    browser_tools,
    notar,
    running_tsa,
    serve,
    token_from,
)
from tests.services.verify.sharded import sharded_receipts
from tests.services.verify.tampering import flip_last_byte
from tests.tsa import make_pki

EXPLORER = "https://explorer.example/chain"
LIVE_ORIGIN = "web.notar.test/live"


@dataclass
class WebRun:
    """What the one browser run left: the corpus, the keys, the driver's outcome."""

    corpus: Corpus  # every receipt: id, receipt path, document path or None, key set's name
    tsa_ca: Path
    driver: subprocess.CompletedProcess[str]
    server_exit: int | None  # None when the driver failed before stopping the server
    results: Path  # the page's verdict on every corpus receipt, written by the driver
    printed: Path  # the print view of an anchored receipt, as the browser prints it to PDF
    printed_many: Path  # the print view of a receipt with sixteen anchors


def _flip(h: str) -> str:
    return ("0" if h[0] != "0" else "1") + h[1:]


@pytest.fixture(scope="session")
def web_run(tmp_path_factory: pytest.TempPathFactory) -> WebRun:
    tmp_path = tmp_path_factory.mktemp("web-verifier")
    node = browser_tools()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    rng = random.Random(8)
    pki = make_pki(tmp_path / "pki")
    corpus = build(tmp_path / "corpus", pki, rng)
    docs = tmp_path / "docs"
    docs.mkdir()
    markers = []

    def document(path: Path, size: int) -> Path:
        marker = f"notar-web-verifier-marker-{uuid.uuid4().hex}"
        markers.append(marker)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = marker.encode()
        path.write_bytes(head + rng.randbytes(max(size - len(head), 0)))
        return path

    with (
        running_tsa(pki) as tsa,
        running_tsa(pki, "untrusted") as rogue_tsa,
        serve(
            tmp_path / "main",
            LIVE_ORIGIN,
            ANCHORS="local,rfc3161",
            TSA_URL=tsa.url,
            TSA_CA_FILE=str(pki.ca_cert),
        ) as main,
    ):
        sizes = [100, 4096, 65_537, 1_000_000, 33]
        files = [document(docs / f"doc{i}.bin", size) for i, size in enumerate(sizes)]
        notar("notarize", str(docs), "--quiet", env=main.env)
        receipts = {f: json.loads(f.with_name(f.name + ".receipt.json").read_text()) for f in files}
        base_file = max(files, key=lambda f: len(receipts[f]["log"]["inclusion"]))
        base = receipts[base_file]
        assert len(base["log"]["inclusion"]) >= 2, base["log"]
        large = document(tmp_path / "large" / "evidence.bin", 40 << 20)
        notar("notarize", str(large), "--quiet", env=main.env)
        flipped = tmp_path / "changed" / base_file.name
        flipped.parent.mkdir()
        data = bytearray(base_file.read_bytes())
        data[len(data) // 2] ^= 0x01
        flipped.write_bytes(bytes(data))

        corpus.keys["live"] = [main.log_key, main.clock_key]
        work = tmp_path / "live-receipts"
        work.mkdir()

        def add(name: str, receipt: Receipt, doc: Path | None, valid: bool, keys: str = "live") -> str:
            path = work / f"{name}.json"
            path.write_text(json.dumps(receipt, indent=1, ensure_ascii=False), encoding="utf-8")
            item = {"id": name, "receipt": str(path), "document": str(doc) if doc else None, "keys": keys}
            corpus.items.append({**item, "tsa_ca": str(pki.ca_cert)})
            if valid:
                corpus.expected_valid.add(name)
            return str(path)

        for f in files:
            add(f"live-valid-{f.stem}", receipts[f], f, True)
        # three shards' receipts anchored by shard 0's committer in one aggregate (SPEC §10)
        sharded = sharded_receipts(tmp_path / "sharded", tsa.url, pki.ca_cert)
        corpus.keys["sharded"] = sharded.keys
        aggregated_live = [
            add(f"live-valid-shard-{i}-aggregated", receipt, doc, True, "sharded")
            for i, (receipt, doc) in enumerate(sharded.receipts)
        ]
        (shard2, shard2_doc), stamp = sharded.receipts[2], sharded.receipts[2][0]["anchors"][1]
        moved = {**stamp, "aggregate": {**stamp["aggregate"], "index": 1}}  # another shard's leaf
        add("live-shard-2-aggregate-index-moved", {**shard2, "anchors": [shard2["anchors"][0], moved]},
            shard2_doc, False, "sharded")
        stamped = anchored(main, base, ("local", "rfc3161"))
        assert [a["type"] for a in stamped["anchors"]] == ["local", "rfc3161"], stamped["anchors"]
        assert tsa.answers["ok"] >= 1
        token = stamped["anchors"][1]["token"]
        rogue_token = token_from(rogue_tsa, body_of(stamped["checkpoint"]), tmp_path / "rogue-ts")

        def with_token(t: str) -> Receipt:
            return {**stamped, "anchors": [stamped["anchors"][0], {**stamped["anchors"][1], "token": t}]}

        stamped_cases = {
            "valid": add("live-valid-anchored-local-and-rfc3161", stamped, base_file, True),
            "tampered": add("live-rfc3161-flipped", with_token(flip_last_byte(token)), base_file, False),
            "untrusted": add("live-rfc3161-untrusted-tsa", with_token(rogue_token), base_file, False),
        }
        log = base["log"]
        proof = [_flip(log["inclusion"][0]), *log["inclusion"][1:]]
        live = {
            "changed": add("live-changed-document", base, flipped, False),
            "proof": add(
                "live-proof-flipped", {**base, "log": {**log, "inclusion": proof}}, base_file, False
            ),
            "index": add(
                "live-index-plus-one", {**base, "log": {**log, "index": log["index"] + 1}}, base_file, False
            ),
        }
        for name, edit in {
            "salt-flipped": {"salt": _flip(base["salt"])},
            "entry-flipped": {"entry": base["entry"][:2] + _flip(base["entry"][2:])},
            "subject-changed": {"subject": base["subject"] + "-x"},
            "extra-member": {"comment": "filed with the court"},
            "v1": {"format": "notar.receipt.v1"},
        }.items():
            add(f"live-{name}", {**base, **edit}, None, False)

        page_file = tmp_path / "page" / "verify.html"
        page_file.parent.mkdir()
        with urllib.request.urlopen(main.url + "/verify", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/html")
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            page_file.write_bytes(r.read())
        explorer_page = tmp_path / "page" / "verify-explorer.html"
        explorer_page.write_bytes(build_page(explorer=EXPLORER).html)

        def case(receipt: str, doc: Path | None, key_list: list[str] | None = None) -> dict[str, Any]:
            return {"receipt": receipt, "document": str(doc) if doc else None, "keys": key_list}

        # a witness policy: the server's own, and one witness more that the quorum needs
        with urllib.request.urlopen(main.url + "/v1/keys", timeout=10) as r:
            published = json.loads(r.read())["policy"]
        witness = CosignatureSigner.generate("witness.web.notar.test/w1")
        quorum = published.splitlines()[-1].split()[1]
        policy = "".join(line + "\n" for line in published.splitlines()[:-1])
        policy += f"witness w1 {witness.verifier().to_key()}\ngroup both all {quorum} w1\nquorum both\n"
        cosigned = {**base, "checkpoint": add_signatures(base["checkpoint"], [witness.at(int(time.time()))])}
        witnessed = add("live-witnessed", cosigned, base_file, True)

        by_id = {i["id"]: i["receipt"] for i in corpus.items}
        plan = {
            "url": main.url,
            "server_pid": main.proc.pid,
            "page_file": str(page_file),
            "explorer_page_file": str(explorer_page),
            "explorer": EXPLORER,
            "screenshots": str(SCREENSHOTS),
            "results": str(tmp_path / "results.json"),
            "server_tsa_ca": str(pki.ca_cert),
            "printed": str(SCREENSHOTS / "print-view.pdf"),
            "printed_many": str(SCREENSHOTS / "print-view-sixteen-anchors.pdf"),
            "markers": markers,
            "keys": corpus.keys,
            "corpus": corpus.items,
            "cases": {
                "valid": case(by_id[f"live-valid-{base_file.stem}"], base_file),
                "without_document": case(by_id[f"live-valid-{base_file.stem}"], None),
                "changed": case(live["changed"], flipped),
                "tampered_proof": case(live["proof"], base_file),
                "tampered_index": case(live["index"], base_file),
                "wrong_key": case(by_id[f"live-valid-{base_file.stem}"], base_file, corpus.keys["other"]),
                "other_log": case(by_id["other-log-receipt"], None),
                "v1": case(by_id["v1-receipt"], None),
                "large": case(str(large.with_name("evidence.bin.receipt.json")), large),
                **{f"stamped_{k}": case(v, base_file) for k, v in stamped_cases.items()},
                "wrong_ca": str(pki.dir / "rogue-ca.crt"),
                "anchored": {
                    **case(by_id["valid-anchored-all-kinds"], corpus.base_document, corpus.keys["main"]),
                    "tx_hash": corpus.anchored["anchors"][2]["tx_hash"],
                },
                "aggregated": case(by_id["valid-aggregated-all-kinds"], None, corpus.keys["main"]),
                "aggregated_live": case(aggregated_live[2], shard2_doc, sharded.keys),
                "witness_policy": {
                    "policy": policy,
                    "plain": by_id[f"live-valid-{base_file.stem}"],
                    "witnessed": witnessed,
                    "document": str(base_file),
                },
                "sixteen": case(by_id["valid-sixteen-anchors"], None, corpus.keys["main"]),
            },
        }
        (tmp_path / "plan.json").write_text(json.dumps(plan, indent=1, default=str))
        run = subprocess.run(
            [node, str(DRIVER), str(tmp_path / "plan.json")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        # The driver stops the server with SIGTERM as one of its cases; it has if all passed.
        server_exit = main.proc.wait(timeout=60) if run.returncode == 0 else None

    printed = (SCREENSHOTS / "print-view.pdf", SCREENSHOTS / "print-view-sixteen-anchors.pdf")
    return WebRun(corpus, pki.ca_cert, run, server_exit, tmp_path / "results.json", *printed)
