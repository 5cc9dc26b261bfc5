"""What `notar verify` says of a corpus receipt, and where the web page may say less.

The page reports every check that `notar verify --tsa-ca CA` reports, by the same name and with the
same status, with one exception it states itself: it does not check an RFC 3161 token's signature
and certificate chain (it reads the token and matches its imprint to the tree head), so such an
anchor is "not checked" on the page where the CLI says "ok", or "failed" for a reason only the
signature shows (the receipts named in KNOWN_SIGNATURE_FAILURES)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

from services.cli import main as notar_main

KNOWN_SIGNATURE_FAILURES = {"anchored-rfc3161-bad-signature"}
_RFC3161 = re.compile(r"anchor \d+ \(rfc3161\)")
Verdict = dict[str, Any]  # {"valid": bool, "checks": [[name, status], ...]}


def cli_verdict(receipt: Path, document: Path | None, keys: list[str], ca: Path) -> Verdict:
    """What `notar verify --json --tsa-ca CA` says, run in this process through the entry point;
    a receipt it refuses as malformed (exit 2, one line) is a failed `format` check."""
    args = ["verify", str(receipt), *([str(document)] if document else []), "--json", "--tsa-ca", str(ca)]
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


def disagreement(name: str, page: Verdict, cli: Verdict) -> str | None:
    """Why the page's verdict on receipt `name` is not the CLI's (module doc), or None."""
    page_checks, cli_checks = [tuple(c) for c in page["checks"]], [tuple(c) for c in cli["checks"]]
    if [n for n, _ in page_checks] != [n for n, _ in cli_checks]:
        return f"other checks: page {page_checks}, cli {cli_checks}"
    weaker = False
    for (check, mine), (_, theirs) in zip(page_checks, cli_checks, strict=True):
        if mine == theirs:
            continue
        if _RFC3161.fullmatch(check) and mine == "not checked" and theirs == "ok":
            continue
        if _RFC3161.fullmatch(check) and mine == "not checked" and name in KNOWN_SIGNATURE_FAILURES:
            weaker = True
            continue
        return f"{check}: page {mine}, cli {theirs}"
    valid = not any(s == "failed" for _, s in page_checks) and page_checks[0] == ("format", "ok")
    if page["valid"] != valid:
        return f"the page says valid={page['valid']} with checks {page_checks}"
    if page["valid"] != cli["valid"] and not weaker:
        return f"valid: page {page['valid']}, cli {cli['valid']}"
    return None
