"""`notar receipt upgrade RECEIPT` and `notar receipt export --format tlog-proof|cose RECEIPT`.

An upgrade needs no API key (SPEC §5, §6): the public `GET /v1/anchors` gives the anchored
checkpoint that covers the receipt's, and the client proves the rest itself — an inclusion proof of
its entry in that checkpoint, and a consistency proof from the receipt's checkpoint to it. It is
accepted only when the new receipt is the same notarization (digest, salt, subject, entry, origin
and index unchanged), of a tree no smaller, verifies under the trusted keys (DATA_DIR's trust file
or --key / --policy, reconciled with the server's: services/cli/trust.py), and its checkpoint is
consistent with the old one, each checkpoint opened under the keys valid at its size. It is
written beside the receipt as NAME.receipt.<tree size>.json; the receipt given is never replaced
(services/cli/receipt_files.py). A COSE export is signed by the log key only over a root that the
receipt's checkpoint, opened under that very key, states: never over a root computed from a
receipt nobody verified.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

from merkle.checkpoint import Checkpoint, open_checkpoint
from merkle.export import to_cose, to_tlog_proof
from merkle.proofs import verify_consistency
from merkle.receipt import Receipt
from merkle.verdict import split_keys, verify_receipt
from services.anchor.app import keys_from
from services.cli.commands import config_from
from services.cli.receipt_files import beside, replace_if_held, write_new
from services.cli.trust import ClientTrust
from services.cli.verify import load_receipt
from services.sdk import NotarClient
from storage.errors import ConfigError, VerificationError

KEPT = ("digest", "salt", "subject", "entry", "origin", "index")
Trusted = Callable[[int], list[str]]
"""The verifier keys trusted for a checkpoint of the receipt's log of a given tree size."""


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
            f"{what}'s checkpoint is not signed by a log key named {receipt.origin!r} that is trusted "
            f"for a tree of {receipt.tree_size}"
        )
    return opened.checkpoint


def accept_upgrade(old: Receipt, new: Receipt, trusted: Trusted, consistency: list[bytes]) -> None:
    """VerificationError unless `new` may follow `old` (module doc); `consistency` proves the old
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
    result = verify_receipt(new, keys=trusted(new.tree_size), digest=str(old.digest), origin=old.origin)
    if not result.valid:
        failed = result.failed[0]
        raise VerificationError(f"the server's upgraded receipt fails check '{failed.name}': {failed.detail}")
    before = signed_checkpoint(old, trusted(old.tree_size), "the receipt you have")
    after = signed_checkpoint(new, trusted(new.tree_size), "the server's receipt")
    try:
        holds = verify_consistency(before.size, after.size, consistency, before.root, after.root)
    except ValueError:
        holds = False
    if not holds:
        raise VerificationError(
            f"the server's checkpoint of size {after.size} is not consistent with the one of size "
            f"{before.size} in the receipt you have: the log forked, or the server is not that log"
        )


def _hashes(hexes: list[str], what: str) -> list[bytes]:
    try:
        return [bytes.fromhex(h) for h in hexes]
    except (TypeError, ValueError) as e:
        raise VerificationError(f"the server answered a malformed {what}: {e}") from e


async def _upgrade(ns: argparse.Namespace, old: Receipt) -> tuple[Receipt | None, ClientTrust]:
    """The anchored upgrade of `old`, accepted (None while no anchored checkpoint covers it)."""
    config = config_from(ns, dict(os.environ))
    trust = ClientTrust.of(ns, config.store.data_dir)
    url = config.client.url
    async with NotarClient(url) as client:  # public routes only: no API key
        trust.reconcile(await client.keys(), url)
        anchored = await client.anchors(old.origin, old.tree_size)
        if anchored is None:
            return None, trust
        size = anchored.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < old.tree_size:
            raise VerificationError(f"the server answered a malformed anchored checkpoint size: {size!r}")
        # the proofs of the receipt's own log: with shards, its shard's (SPEC §10)
        inclusion = _hashes(await client.inclusion_proof(old.index, size, old.origin), "inclusion proof")
        consistency: list[bytes] = []
        if size > old.tree_size:
            proof = await client.consistency_proof(old.tree_size, size, old.origin)
            consistency = _hashes(proof, "consistency proof")
        try:
            new = old.upgraded(
                checkpoint=anchored.get("checkpoint"),  # type: ignore[arg-type]  # checked by the receipt
                tree_size=size,
                inclusion=inclusion,
                anchors=anchored.get("anchors"),  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as e:
            raise VerificationError(f"the server answered a malformed anchored checkpoint: {e}") from e
        accept_upgrade(old, new, lambda n: trust.keys_at(old.origin, n), consistency)
    return new, trust


def upgrade(ns: argparse.Namespace) -> int:
    old = load_receipt(ns.receipt)
    new, trust = asyncio.run(_upgrade(ns, old))
    if new is None:
        print(f"{ns.receipt}: no anchored checkpoint covers its tree of {old.tree_size} yet; try again later")
    elif new == old:
        print(f"{ns.receipt} is up to date: tree size {new.tree_size}, anchors: {_kinds(new)}")
    else:
        out = ns.out or beside(ns.receipt, new.tree_size)
        if write_new(out, new):
            print(
                f"upgraded {ns.receipt} -> {out}: tree size {old.tree_size} -> {new.tree_size}, "
                f"anchors: {_kinds(new)}"
            )
            print(f"  note: {ns.receipt} is kept as it is (the earliest evidence)", file=sys.stderr)
        else:
            there = load_receipt(out)
            if there == new:
                print(f"{out} is up to date: tree size {new.tree_size}, anchors: {_kinds(new)}")
            elif replace_if_held(out, new, there):
                print(f"upgraded {out}: anchors {_kinds(there)} -> {_kinds(new)}")
            else:
                raise VerificationError(
                    f"{out} holds another receipt of this notarization that the upgrade does not hold "
                    "whole; it is left as it is: move it away to write the upgrade there"
                )
    trust.save()
    for note in trust.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0


def _kinds(receipt: Receipt) -> str:
    return ", ".join(a.type for a in receipt.anchors) or "none yet"


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
