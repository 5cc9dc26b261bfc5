"""`notar receipt upgrade RECEIPT` and `notar receipt export --format tlog-proof|cose RECEIPT`.

An upgrade (SPEC §5) is accepted only when the server's receipt is the same notarization (digest,
salt, subject, entry, origin and index unchanged), is of a tree no smaller, verifies under the
trusted keys, and its checkpoint is consistent with the old one (RFC 9162 consistency proof). A
COSE export is signed by the log key only over a root that the receipt's checkpoint, opened under
that very key, states: never over a root computed from a receipt nobody verified.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from merkle.checkpoint import Checkpoint, open_checkpoint
from merkle.export import to_cose, to_tlog_proof
from merkle.proofs import verify_consistency
from merkle.receipt import Receipt
from merkle.verdict import split_keys, verify_receipt
from services.anchor.app import keys_from
from services.cli.commands import config_from
from services.cli.notarize import write_receipt
from services.cli.verify import load_receipt
from services.sdk import NotarClient, trusted_keys
from storage.errors import ConfigError, VerificationError

KEPT = ("digest", "salt", "subject", "entry", "origin", "index")


def signed_checkpoint(receipt: Receipt, keys: list[str], what: str) -> Checkpoint:
    """The receipt's checkpoint, when a trusted log key named after its origin signed it (and no
    trusted signature on it fails); VerificationError naming `what` otherwise."""
    logs, clocks = split_keys(keys)
    try:
        opened = open_checkpoint(
            receipt.checkpoint, origin=receipt.origin, log_verifiers=logs, clock_verifiers=clocks
        )
    except ValueError as e:
        raise VerificationError(
            f"{what}'s checkpoint is not a signed checkpoint of {receipt.origin}: {e}"
        ) from e
    if not opened.ok:
        raise VerificationError(
            f"{what}'s checkpoint is not signed by a trusted log key named {receipt.origin!r}"
        )
    return opened.checkpoint


def accept_upgrade(old: Receipt, new: Receipt, keys: list[str], consistency: list[bytes]) -> None:
    """VerificationError unless `new` may replace `old` (module doc); `consistency` proves the old
    checkpoint's tree a prefix of the new one's (empty when they are of the same size)."""
    changed = [name for name in KEPT if getattr(old, name) != getattr(new, name)]
    if changed:
        raise VerificationError(
            f"the server's receipt changes {', '.join(changed)}: it is not this notarization"
        )
    if new.tree_size < old.tree_size:
        raise VerificationError(
            f"the server's receipt is of a smaller tree ({new.tree_size} < {old.tree_size})"
        )
    result = verify_receipt(new, keys=keys, digest=str(old.digest), origin=old.origin)
    if not result.valid:
        failed = result.failed[0]
        raise VerificationError(f"the server's upgraded receipt fails check '{failed.name}': {failed.detail}")
    before = signed_checkpoint(old, keys, "the receipt you have")
    after = signed_checkpoint(new, keys, "the server's receipt")
    try:
        holds = verify_consistency(before.size, after.size, consistency, before.root, after.root)
    except ValueError:
        holds = False
    if not holds:
        raise VerificationError(
            f"the server's checkpoint of size {after.size} is not consistent with the one of size "
            f"{before.size} in the receipt you have: the log forked, or the server is not that log"
        )


async def _upgrade(ns: argparse.Namespace, old: Receipt) -> tuple[Receipt, list[str]]:
    """The server's upgraded receipt of `old`, accepted, and notes for the reader."""
    config = config_from(ns, dict(os.environ)).client
    api_key = config.api_key.need("to fetch receipts (the tenant's key)")
    notes = []
    async with NotarClient(config.url, api_key) as client:
        keys = list(ns.key)
        if not keys:
            try:
                keys = trusted_keys(await client.keys())
            except ValueError as e:
                raise ConfigError(f"the keys URL publishes are not usable: {e}", setting="URL") from e
            notes.append(f"checked under the keys {config.url} publishes: this trusts that server")
        try:
            candidates = await client.receipts(str(old.digest))  # read strictly by the SDK
        except ValueError as e:
            raise VerificationError(f"the server answered a malformed receipt: {e}") from e
        for new in candidates:
            if new.entry != old.entry:
                continue
            proof: list[str] = []
            if new.tree_size > old.tree_size:
                proof = await client.consistency_proof(old.tree_size, new.tree_size)
            try:
                consistency = [bytes.fromhex(h) for h in proof]
            except ValueError as e:
                raise VerificationError(f"the server answered a malformed consistency proof: {e}") from e
            accept_upgrade(old, new, keys, consistency)
            return new, notes
    raise VerificationError("the server has no notarization with this receipt's entry for this tenant")


def upgrade(ns: argparse.Namespace) -> int:
    old = load_receipt(ns.receipt)
    new, notes = asyncio.run(_upgrade(ns, old))
    kinds = ", ".join(a.type for a in new.anchors) or "none yet"
    out = ns.out or ns.receipt
    if new == old and out == ns.receipt:
        print(f"{ns.receipt} is up to date: tree size {new.tree_size}, anchors: {kinds}")
    else:
        if out == ns.receipt and new.tree_size != old.tree_size:
            kept = keep_previous(ns.receipt, old)
            notes.append(f"the previous receipt (the earliest evidence) is kept as {kept}")
        write_receipt(out, new)
        print(f"upgraded {ns.receipt}: tree size {old.tree_size} -> {new.tree_size}, anchors: {kinds}")
    for note in notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0


def keep_previous(path: Path, old: Receipt) -> Path:
    """Write `old` beside `path` as NAME.tree-<size>.receipt.json (SPEC §5: an upgrade keeps the old
    file); named so that `notar notarize` on the folder takes it for a receipt, not a document."""
    stem = path.name.removesuffix(".json").removesuffix(".receipt")
    kept = path.with_name(f"{stem}.tree-{old.tree_size}.receipt.json")
    write_receipt(kept, old)
    return kept


def export(ns: argparse.Namespace) -> int:
    receipt = load_receipt(ns.receipt)
    if ns.format == "tlog-proof":
        data = to_tlog_proof(receipt).encode()
    else:
        keys = config_from(ns, dict(os.environ)).keys
        try:
            signer = keys_from(keys).log
        except ConfigError as e:
            raise ConfigError(
                f"a COSE receipt is signed by the log key, so export it where the log's keys are "
                f"(DATA_DIR or LOG_KEY_FILE): {e}",
                setting="LOG_KEY_FILE",
            ) from e
        try:
            opened = open_checkpoint(
                receipt.checkpoint, origin=receipt.origin, log_verifiers=[signer.verifier()]
            )
            data = to_cose(receipt, opened, signer)
        except ValueError as e:
            raise ConfigError(
                f"will not sign a COSE receipt for {ns.receipt}: the log key {signer.name} signs only a "
                f"root that a checkpoint it signed states, and {e}",
                setting="RECEIPT",
            ) from e
    if ns.out:
        ns.out.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
