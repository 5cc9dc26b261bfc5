"""`notar verify` of SCITT transparent statements (SPEC §12), offline: a statement carrying its
receipts (`notar verify TS.cose --key VKEY`), or a COSE receipt and its statement given apart
(`notar verify RECEIPT.cose STATEMENT.cose --key VKEY`). `--issuer-key PEM` checks the issuer's
signature too. Same verdict, marks and exit status as for receipts (services.cli.verify)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson

from merkle.cose import HDR_VDS, decode_sign1
from merkle.note import Verifier
from merkle.scitt import load_issuer_key
from merkle.transparent import TransparentResult, verify_transparent
from merkle.verdict import split_keys
from services.cli.commands import config_from
from services.cli.verify import MARKS, trusted_keys
from storage.errors import ConfigError

MEANING = {
    "format": "the file is a SCITT signed statement",
    "issuer signature": "the issuer you trust signed this statement",
}


def is_cose(path: Path) -> bool:
    """Whether `path` starts like a tagged COSE_Sign1 (CBOR tag 18), not like a JSON receipt."""
    try:
        with path.open("rb") as f:
            return f.read(1) == b"\xd2"
    except OSError:
        return False


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}", setting="RECEIPT") from e


def _is_receipt(data: bytes) -> bool:
    try:
        _, protected, _, _, _ = decode_sign1(data, "the file")
    except ValueError:
        return False
    return HDR_VDS in protected


def check(ns: argparse.Namespace) -> TransparentResult:
    config = config_from(ns, dict(os.environ))
    files = [ns.receipt, *([ns.file] if ns.file is not None else [])]
    blobs = [_read(p, "file") for p in files]
    statements = [b for b in blobs if not _is_receipt(b)]
    if len(statements) != 1:
        raise ConfigError(
            "give one signed statement (with its receipts in it, or a COSE receipt beside it)",
            setting="RECEIPT",
        )
    notes: list[str] = []
    keys = trusted_keys(ns, config.client.url, notes)
    log_keys = [k for k in split_keys(keys)[0] if isinstance(k, Verifier)]
    issuer_key = None
    if ns.issuer_key is not None:
        try:
            issuer_key = load_issuer_key(_read(ns.issuer_key, "issuer key"))
        except ValueError as e:
            raise ConfigError(f"--issuer-key {ns.issuer_key}: {e}", setting="KEY") from e
    for note in notes:
        print(f"  note: {note}", file=sys.stderr)
    receipts = [b for b in blobs if _is_receipt(b)]
    return verify_transparent(statements[0], log_keys=log_keys, receipts=receipts, issuer_key=issuer_key)


def render(result: TransparentResult) -> str:
    lines = []
    if result.failed:
        failed = result.failed[0]
        lines.append(f"✗ NOT VALID — check '{failed.name}' failed: {failed.detail}")
    else:
        unchecked = ", ".join(c.name for c in result.unchecked)
        lines.append(
            f"✓ VALID as far as checked — not checked: {unchecked}."
            if unchecked
            else "✓ VALID — every check holds."
        )
        s, r = result.statement, result.receipts[0]
        assert s is not None
        lines.append(
            f"  The statement of {s.issuer!r} about {s.subject!r} was entry {r.index} of the log "
            f"{r.issuer}, in a tree of {r.tree_size} entries signed by a log key you trust."
        )
    lines.append("")
    width = max(len(c.name) for c in result.checks)
    for c in result.checks:
        lines.append(f"  {MARKS[c.status]} {c.name:<{width}}  {c.detail}")
        meaning = MEANING.get(c.name, "the statement is in a tree the log signed (RFC 9942 receipt)")
        if c.checked:
            lines.append(f"    {'':<{width}}  ({meaning})")
    return "\n".join(lines)


def verify_statement(ns: argparse.Namespace) -> int:
    result = check(ns)
    if ns.json:
        print(orjson.dumps(result.to_obj(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(result))
    return 0 if result.valid else 1
