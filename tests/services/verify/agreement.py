"""What `notar verify` says of a corpus receipt, and whether the web page says the same.

The page reports every check that `notar verify` reports, by the same name and with the same
status, for the same receipt, document, keys and TSA CA (RFC 3161 tokens are checked in full in the
page too, with WebCrypto); without a TSA CA, both call an RFC 3161 anchor "not checked"."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from services.cli import main as notar_main

Verdict = dict[str, Any]  # {"valid": bool, "checks": [[name, status], ...]}


def cli_verdict(receipt: Path, document: Path | None, keys: list[str], ca: Path | None) -> Verdict:
    """What `notar verify --json [--tsa-ca CA]` says, run in this process through the entry point;
    a receipt it refuses as malformed (exit 2, one line) is a failed `format` check."""
    args = ["verify", str(receipt), *([str(document)] if document else []), "--json"]
    args += ["--tsa-ca", str(ca)] if ca is not None else []
    args += [a for k in keys for a in ("--key", k)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = notar_main(args)
    if rc == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"notar: {receipt} is not "), err.getvalue()
        return {"valid": False, "checks": [["format", "failed"]]}
    doc = json.loads(out.getvalue())
    assert rc == (0 if doc["valid"] else 1) and doc["checks"][0] == {
        "name": "format", "status": "ok", "ok": True, "detail": "notar.receipt.v2"
    }  # fmt: skip
    assert doc["unchecked"] == [c["name"] for c in doc["checks"] if c["status"] == "not checked"]
    return {"valid": doc["valid"], "checks": [[c["name"], c["status"]] for c in doc["checks"]]}


def disagreement(page: Verdict, cli: Verdict) -> str | None:
    """Why the page's verdict is not the CLI's, or None."""
    page_checks, cli_checks = [tuple(c) for c in page["checks"]], [tuple(c) for c in cli["checks"]]
    if page_checks != cli_checks:
        return f"other checks: page {page_checks}, cli {cli_checks}"
    valid = not any(s == "failed" for _, s in page_checks) and page_checks[0] == ("format", "ok")
    if page["valid"] != valid:
        return f"the page says valid={page['valid']} with checks {page_checks}"
    if page["valid"] != cli["valid"]:
        return f"valid: page {page['valid']}, cli {cli['valid']}"
    return None
