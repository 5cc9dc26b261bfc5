"""The web verifier and `notar verify` give the same checks with the same outcomes on every
receipt of the corpus (valid and tampered ones) that the `web_run` fixture in conftest.py ran
through Chromium."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

from services.cli import main as notar_main
from tests.services.verify.conftest import WebRun
from tests.services.verify.live import NOTAR

# Where the page knowingly checks less than `notar verify`: it does not verify an RFC 3161 token's
# CMS signature and certificate chain (it reads the TSA's name and time and matches the message
# imprint to the tree head); `notar verify --tsa-ca` does.
KNOWN_DIFFERENCES = {"anchored-rfc3161-bad-signature": "anchor 2 (rfc3161)"}


def cli_verdict(receipt: Path, document: Path | None, keys: list[str], ca: Path) -> dict[str, Any]:
    """What `notar verify --json` says, run in this process through the `notar` entry point."""
    args = ["verify", str(receipt), *([str(document)] if document else []), "--json", "--tsa-ca", str(ca)]
    args += [a for k in keys for a in ("--key", k)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = notar_main(args)
    if rc == 2:  # unusable input: the command names it and gives no checks
        assert "is not JSON" in err.getvalue() or "appears twice" in err.getvalue(), err.getvalue()
        return {"valid": False, "checks": [["format", False]]}
    doc = json.loads(out.getvalue())
    assert rc == (0 if doc["valid"] else 1)
    return {"valid": doc["valid"], "checks": [[c["name"], c["ok"]] for c in doc["checks"]]}


def page_verdicts(web_run: WebRun) -> dict[str, Any]:
    assert web_run.results.exists(), "the driver wrote no verdicts: see test_web_verifier_in_chromium"
    page: dict[str, Any] = json.loads(web_run.results.read_text())
    return page


def test_the_page_and_notar_verify_agree_on_every_receipt(web_run: WebRun) -> None:
    items, keys, files, tsa_ca = web_run.items, web_run.keys, web_run.files, web_run.tsa_ca
    page = page_verdicts(web_run)
    cli = {
        i["id"]: cli_verdict(
            Path(i["receipt"]), Path(i["document"]) if i["document"] else None, keys[i["keys"]], tsa_ca
        )
        for i in items
    }
    for name, check in KNOWN_DIFFERENCES.items():
        assert page[name]["valid"] and not cli[name]["valid"], (page[name], cli[name])
        assert [c for c in cli[name]["checks"] if not c[1]] == [[check, False]]
        assert [[n, True] if n == check else [n, ok] for n, ok in cli[name]["checks"]] == page[name]["checks"]
    differ = {k: (page[k], cli[k]) for k in cli if page[k] != cli[k] and k not in KNOWN_DIFFERENCES}
    assert not differ, "the page and notar verify disagree:\n" + "\n".join(
        f"{k}: page {p} / cli {c}" for k, (p, c) in differ.items()
    )
    valid = [k for k, v in cli.items() if v["valid"]]
    assert len(items) >= 50 and len(valid) >= 12 and len(items) - len(valid) >= 50, (len(items), valid)
    expected_valid = {f"valid-{f.stem}" for f in files} | {
        "valid-without-document",
        "valid-sha256-unsalted",
        "valid-anchored-local",
        "valid-anchored-all-kinds",
        "valid-log-key-only",
        "unknown-witness-signature",
        "anchor-unknown-kind",
        "extra-top-level-field",
        "clock-tampered-log-key-only",
    }
    assert set(valid) == expected_valid, set(valid) ^ expected_valid


def test_the_installed_notar_agrees_with_the_page(web_run: WebRun) -> None:
    """The installed `notar` executable, on a few of them (each start costs seconds)."""
    items, keys, page = web_run.items, web_run.keys, page_verdicts(web_run)
    for name in ("valid-without-document", "changed-document", "wrong-keys"):
        item = next(i for i in items if i["id"] == name)
        args = [NOTAR, "verify", item["receipt"], *([item["document"]] if item["document"] else []), "--json"]
        args += [a for k in keys[item["keys"]] for a in ("--key", k)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        doc = json.loads(done.stdout)
        assert [[c["name"], c["ok"]] for c in doc["checks"]] == page[name]["checks"], name

