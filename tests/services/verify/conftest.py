"""The web verifier (GET /verify) in Debian's Chromium, against a running `notar serve`: one run
shared by tests/services/verify/test_web_verifier*.py.

The `web_run` fixture starts two `notar serve` (our log and another one), notarizes files with the
`notar` command, builds anchored receipts (the server's local blocks, an RFC 3161 token from a real
openssl TSA, an EVM record) and a corpus of valid and tampered receipts, then runs the Node driver
`web_verifier.mjs` (playwright-core, the npm package the issue names) once. The driver asserts the
browser cases and saves a screenshot of each verdict under build/verify-page/;
test_web_verifier_corpus.py checks that the page and `notar verify` give the same checks with the
same outcomes on every receipt of the corpus.

Why a Node driver: playwright-core from npm is pinned in package-lock.json and needs no browser
download (it drives /usr/bin/chromium); the Python `playwright` wheel would bring a second copy of
Playwright with its own Node runtime.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.verify.page import build_page
from tests.services.verify.live import (
    DRIVER,
    REPO,
    SCREENSHOTS,
    Receipt,
    anchored,
    body_of,
    browser_tools,
    notar,
    notarize_digest,
    serve,
    timestamp_token,
)
from tests.services.verify.tampering import clock_tampered, tampered
from tests.tsa import make_pki

EXPLORER = "https://explorer.example/chain"


@dataclass
class WebRun:
    """What the one browser run left: the corpus, the keys, the driver's outcome."""

    items: list[dict[str, Any]]  # the corpus: id, receipt path, document path or None, key set
    keys: dict[str, list[str]]
    files: list[Path]  # the notarized documents, each with a valid receipt in the corpus
    tsa_ca: Path
    driver: subprocess.CompletedProcess[str]
    server_exit: int | None  # None when the driver failed before stopping the server
    results: Path  # the page's verdict on every corpus receipt, written by the driver


@pytest.fixture(scope="session")
def web_run(tmp_path_factory: pytest.TempPathFactory) -> WebRun:
    tmp_path = tmp_path_factory.mktemp("web-verifier")
    node = browser_tools()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    rng = random.Random(8)
    docs, corpus_dir = tmp_path / "docs", tmp_path / "corpus"
    docs.mkdir()
    corpus_dir.mkdir()
    markers = []

    def document(path: Path, size: int) -> Path:
        marker = f"notar-web-verifier-marker-{uuid.uuid4().hex}"
        markers.append(marker)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = marker.encode()
        path.write_bytes(head + rng.randbytes(max(size - len(head), 0)))
        return path

    with (
        serve(tmp_path / "main", "web.notar.test/log") as main,
        serve(tmp_path / "other", "other.notar.test/log") as other,
    ):
        sizes = [0, 1, 100, 4096, 65_537, 1_000_000, 4_194_305, 33]
        files = [
            document(docs / f"doc{i}.bin", s) if s else docs / f"doc{i}.bin" for i, s in enumerate(sizes)
        ]
        files[0].write_bytes(b"")
        notar("notarize", str(docs), "--quiet", env=main.env)
        receipts = {f: json.loads(f.with_name(f.name + ".receipt.json").read_text()) for f in files}
        base_file = max(files, key=lambda f: (len(receipts[f]["log"]["inclusion"]), f.stat().st_size > 0))
        base = receipts[base_file]
        assert len(base["log"]["inclusion"]) >= 3 and base["log"]["index"] > 0

        large = document(tmp_path / "large" / "evidence.bin", 40 << 20)
        notar("notarize", str(large), "--quiet", env=main.env)

        sha_doc = document(tmp_path / "sha" / "scan.pdf", 70_000)
        sha_receipt = notarize_digest(
            main, "sha256:" + hashlib.sha256(sha_doc.read_bytes()).hexdigest(), salt=False
        )

        foreign_doc = document(tmp_path / "foreign" / "elsewhere.txt", 500)
        notar("notarize", str(foreign_doc), "--quiet", env=other.env)
        foreign = json.loads(foreign_doc.with_name("elsewhere.txt.receipt.json").read_text())

        pki = make_pki(tmp_path / "pki")
        with_local = anchored(main, base)
        cp_text = body_of(with_local["checkpoint"]).split("\n")
        root_hex = base64.b64decode(cp_text[2]).hex()
        tx_hash = "0x" + "ab" * 32
        full = copy.deepcopy(with_local)
        full["anchors"] = [
            *with_local["anchors"],
            {
                "type": "rfc3161",
                "tsa": "http://tsa.test/",
                "token": timestamp_token(pki, body_of(full["checkpoint"]), tmp_path / "ts1"),
            },
            {
                "type": "evm",
                "chain_id": 31337,
                "contract": "0x" + "12" * 20,
                "tx_hash": tx_hash,
                "block_number": 7,
                "block_hash": "0x" + "cd" * 32,
                "tree_size": full["log"]["tree_size"],
                "root": "0x" + root_hex,
            },
        ]
        foreign_token = timestamp_token(pki, body_of(foreign["checkpoint"]), tmp_path / "ts2")

        flipped = tmp_path / "changed" / base_file.name
        flipped.parent.mkdir()
        data = bytearray(base_file.read_bytes())
        data[len(data) // 2] ^= 0x01
        flipped.write_bytes(bytes(data))

        keys = {
            "main": [main.log_key, main.clock_key],
            "main_log_only": [main.log_key],
            "main_clock_only": [main.clock_key],
            "other": [other.log_key, other.clock_key],
        }
        items: list[dict[str, Any]] = []

        def add(name: str, receipt: Receipt | str, doc: Path | None, key_set: str = "main") -> str:
            path = corpus_dir / f"{name}.json"
            path.write_text(
                receipt if isinstance(receipt, str) else json.dumps(receipt, indent=1), encoding="utf-8"
            )
            items.append(
                {"id": name, "receipt": str(path), "document": str(doc) if doc else None, "keys": key_set}
            )
            return str(path)

        for f in files:
            add(f"valid-{f.stem}", receipts[f], f)
        add("valid-without-document", base, None)
        add("valid-sha256-unsalted", sha_receipt, sha_doc)
        add("valid-anchored-local", with_local, base_file)
        full_path = add("valid-anchored-all-kinds", full, base_file)
        add("valid-log-key-only", base, base_file, "main_log_only")
        add("changed-document", base, flipped)
        add("sha256-changed-document", sha_receipt, flipped)
        add("wrong-keys", base, base_file, "other")
        add("clock-key-only", base, base_file, "main_clock_only")
        add("other-log-receipt", foreign, foreign_doc)
        for name, r in tampered(base, full, foreign_token).items():
            add(name, r, None if name.startswith("entry") or name.startswith("digest") else base_file)
        add("digest-hex-with-document", tampered(base, full, foreign_token)["digest-hex"], base_file)
        clock_bad = clock_tampered(base)
        add("clock-tampered-log-key-only", clock_bad, base_file, "main_log_only")

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

        by_id = {i["id"]: i["receipt"] for i in items}
        plan = {
            "url": main.url,
            "server_pid": main.proc.pid,
            "page_file": str(page_file),
            "explorer_page_file": str(explorer_page),
            "explorer": EXPLORER,
            "screenshots": str(SCREENSHOTS),
            "results": str(tmp_path / "results.json"),
            "markers": markers,
            "keys": keys,
            "corpus": items,
            "cases": {
                "valid": case(by_id[f"valid-{base_file.stem}"], base_file),
                "changed": case(by_id["changed-document"], flipped),
                "tampered_proof": case(by_id["proof-first-flipped"], base_file),
                "tampered_index": case(by_id["index-plus-one"], base_file),
                "wrong_key": case(by_id["wrong-keys"], base_file, keys["other"]),
                "other_log": case(by_id["other-log-receipt"], foreign_doc),
                "large": case(str(large.with_name("evidence.bin.receipt.json")), large),
                "anchored": {**case(full_path, base_file), "tx_hash": tx_hash},
            },
        }
        (tmp_path / "plan.json").write_text(json.dumps(plan, indent=1))
        run = subprocess.run(
            [node, str(DRIVER), str(tmp_path / "plan.json")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        # The driver stops the server with SIGTERM as one of its cases; it has if all passed.
        server_exit = main.proc.wait(timeout=60) if run.returncode == 0 else None

    return WebRun(items, keys, files, pki.ca_cert, run, server_exit, tmp_path / "results.json")
