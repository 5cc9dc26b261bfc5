"""`notar verify RECEIPT [FILE]`: check a receipt offline, trusting only the keys given.

Prints a verdict a judge can read, then every check with ✓/✗ and what it means; `--json` for
machines. Exit status 0 only when every check holds, 1 when one fails, 2 when the input is
unusable. No network unless `--online` (EVM anchors checked against EVM_RPC; keys fetched from
URL when none is given — that trusts the server, and says so)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import orjson

from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.rfc3161 import load_certificates
from merkle.checkpoint import Checkpoint, parse_checkpoint
from merkle.cosignature import verifier_from_key
from merkle.note import parse_note
from merkle.receipt import ReceiptResult, verify_receipt
from services.cli.commands import settings_from
from services.common.config import Settings
from services.common.unique_names import check_unique_names
from storage.errors import ConfigError

MEANING = {
    "format": "the file is a notar receipt",
    "document": "the document is the one that was notarized",
    "entry": "the log entry is this document's digest (and a random salt)",
    "checkpoint": "the signed tree head is of this log and of the receipt's size",
    "log signature": "the tree head is signed by a log key you trust",
    "inclusion": "the entry is in that signed tree (RFC 9162 inclusion proof)",
    "signed time": "the service's clock vouched for the tree at that time",
}


def _meaning(name: str) -> str:
    if name.startswith("anchor"):
        return "independent evidence that the tree existed then"
    return MEANING.get(name, "")


def load_receipt(path: Path) -> Any:
    """The receipt's JSON; ConfigError (exit 2) when it is unreadable, not JSON, or names a member
    twice in one object (refused as POST /v1/verify and the web verifier refuse it: which of the
    two a tool reads is up to its parser)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read receipt {path}: {e.strerror}", setting="RECEIPT") from e
    try:
        receipt = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"{path} is not JSON: {e}", setting="RECEIPT") from e
    try:
        check_unique_names(data)
    except ValueError as e:
        raise ConfigError(f"{path} is not a usable receipt: {e}", setting="RECEIPT") from e
    return receipt


def _checkpoint_of(receipt: Any) -> Checkpoint | None:
    try:
        return parse_checkpoint(parse_note(receipt["checkpoint"]).text)
    except (KeyError, TypeError, ValueError):
        return None


async def _online_evm(receipt: Any, settings: Settings) -> dict[int, tuple[bool, str]]:
    """Check each evm anchor against the chain; results by the record's id()."""
    from services.anchor.chains.evm import verify_online
    from services.anchor.chains.evm_rpc import JsonRpc

    cp = _checkpoint_of(receipt)
    anchors = receipt.get("anchors", []) if isinstance(receipt, dict) else []
    evm = [(i, a) for i, a in enumerate(anchors) if isinstance(a, dict) and a.get("type") == "evm"]
    if cp is None or not evm:
        return {}
    rpc = JsonRpc(settings.require("EVM_RPC", "to check EVM anchors with --online"))
    try:
        return {
            id(a): await verify_online(
                a,
                cp,
                rpc=rpc,
                confirmations=settings.get("EVM_CONFIRMATIONS"),
                contract=settings.get("EVM_CONTRACT"),
            )
            for _, a in evm
        }
    finally:
        await rpc.close()


async def _server_keys(settings: Settings) -> list[str]:
    from services.sdk import NotarClient

    async with NotarClient(settings.get("URL")) as client:
        doc = await client.keys()
    return [doc["log"], doc["clock"], *doc.get("witnesses", [])]


UNCHECKED = "NOT checked against its source, so it is no evidence here: rfc3161 needs --tsa-ca, evm --online"


def check(ns: argparse.Namespace) -> tuple[ReceiptResult, list[str], frozenset[str]]:
    """The result, notes for the reader, and the anchor kinds that were checked against their
    source (the others only "commit to this checkpoint": anyone can write such a record)."""
    settings = settings_from(ns, dict(os.environ))
    receipt = load_receipt(ns.receipt)
    notes: list[str] = []
    keys = list(ns.key)
    if not keys:
        if not ns.online:
            raise ConfigError(
                "give the log's verifier key with --key (from the deployment's README or "
                "GET /v1/keys); add the clock key to check the signed time",
                setting="KEY",
            )
        keys = asyncio.run(_server_keys(settings))
        notes.append(f"keys were fetched from {settings.get('URL')}: this trusts that server")
    for key in keys:
        try:
            verifier_from_key(key)
        except ValueError as e:
            raise ConfigError(f"verifier key {key[:100]!r} is unusable: {e}", setting="KEY") from e
    cas = []
    ca_file = ns.tsa_ca or settings.get("TSA_CA_FILE")
    if ca_file:
        try:
            cas = load_certificates(Path(ca_file).read_bytes())
        except (OSError, ValueError) as e:
            raise ConfigError(f"TSA_CA_FILE {ca_file}: {e}", setting="TSA_CA_FILE") from e
    verifiers = offline_anchor_verifiers(keys=keys, tsa_cas=cas)
    if ns.online:
        online = asyncio.run(_online_evm(receipt, settings))

        def evm(record: Any, cp: Checkpoint, body: str) -> tuple[bool, str]:
            return online[id(record)]  # the same record objects: matched by identity, not order

        verifiers["evm"] = evm
    if ns.file is not None and not ns.file.is_file():
        raise ConfigError(f"{ns.file}: no such file", setting="FILE")
    document = _chunks(ns.file) if ns.file is not None else None
    result = verify_receipt(receipt, keys=keys, document=document, anchor_verifiers=verifiers)
    return result, notes, frozenset(verifiers)


def unchecked_anchors(result: ReceiptResult, checked: frozenset[str]) -> set[str]:
    """Names of the anchor checks that passed only because their kind could not be checked."""
    names = [f"anchor {i + 1} ({r.get('type')})" for i, r in enumerate(result.anchors)]
    kinds = [str(r.get("type")) for r in result.anchors]
    present = {c.name for c in result.checks}
    return {n for n, k in zip(names, kinds, strict=True) if k not in checked and n in present}


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while data := f.read(1 << 20):
            yield data


def render(result: ReceiptResult, file_given: bool, unchecked: Collection[str] = ()) -> str:
    """The verdict, then each check: ✓ holds, ✗ fails, ? an anchor that could not be checked."""
    lines = []
    if result.valid:
        lines.append("✓ VALID — every check holds.")
        what = "The document" if file_given else "The digest in this receipt"
        when = next((c.detail for c in result.checks if c.name == "signed time"), "")
        lines.append(
            f"  {what} was entry {result.index} of the log {result.origin}, in a tree of "
            f"{result.tree_size} entries signed by {result.log_key}."
        )
        if when:
            lines.append(f"  {when[0].upper()}{when[1:]}.")
        if unchecked:
            lines.append(
                f"  {len(unchecked)} anchor(s) marked ? were not checked against their source "
                "and prove nothing on their own."
            )
    else:
        failed = result.failed[0]
        lines.append(f"✗ NOT VALID — check '{failed.name}' failed: {failed.detail}")
    lines.append("")
    width = max(len(c.name) for c in result.checks)
    for c in result.checks:
        mark = "✗" if not c.ok else "?" if c.name in unchecked else "✓"
        lines.append(f"  {mark} {c.name:<{width}}  {c.detail}")
        meaning = UNCHECKED if c.ok and c.name in unchecked else _meaning(c.name)
        if meaning:
            lines.append(f"    {'':<{width}}  ({meaning})")
    return "\n".join(lines)


def verify(ns: argparse.Namespace) -> int:
    result, notes, checked = check(ns)
    unchecked = unchecked_anchors(result, checked)
    if ns.json:
        print(
            orjson.dumps(
                {
                    "valid": result.valid,
                    "notes": notes,
                    "checks": [
                        {"name": c.name, "ok": c.ok, "detail": c.detail, "checked": c.name not in unchecked}
                        for c in result.checks
                    ],
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        print(render(result, ns.file is not None, unchecked))
        for n in notes:
            print(f"  note: {n}", file=sys.stderr)
    return 0 if result.valid else 1
