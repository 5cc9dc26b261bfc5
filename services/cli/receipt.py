"""`notar receipt upgrade RECEIPT` and `notar receipt export --format tlog-proof|cose RECEIPT`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from merkle.export import to_cose, to_tlog_proof
from merkle.receipt import verify_receipt
from services.anchor.app import keys_from
from services.cli.commands import settings_from
from services.cli.notarize import write_receipt
from services.cli.verify import load_receipt
from services.sdk import NotarClient
from storage.errors import ConfigError, VerificationError


async def _upgrade(ns: argparse.Namespace, receipt: Any) -> dict[str, Any]:
    settings = settings_from(ns, dict(os.environ))
    api_key = settings.require("API_KEY", "to fetch receipts (the tenant's key)")
    async with NotarClient(settings.get("URL"), api_key) as client:
        keys_doc = await client.keys()
        candidates = await client.receipts(receipt["digest"])
    keys = list(ns.key) or [keys_doc["log"], keys_doc["clock"]]
    for new in candidates:
        if new.get("entry") == receipt.get("entry"):
            result = verify_receipt(new, keys=keys, digest=receipt["digest"])
            if not result.valid:
                raise VerificationError(
                    f"the server's upgraded receipt does not verify: {result.failed[0].detail}"
                )
            return new
    raise VerificationError("the server has no notarization with this receipt's entry for this tenant")


def upgrade(ns: argparse.Namespace) -> int:
    receipt = load_receipt(ns.receipt)
    if not isinstance(receipt, dict) or "digest" not in receipt or "entry" not in receipt:
        raise ConfigError(f"{ns.receipt} is not a notar receipt", setting="RECEIPT")
    new = asyncio.run(_upgrade(ns, receipt))
    old_size, new_size = receipt.get("log", {}).get("tree_size"), new["log"]["tree_size"]
    kinds = ", ".join(a.get("type", "?") for a in new["anchors"]) or "none yet"
    write_receipt(ns.out or ns.receipt, new)
    print(f"upgraded {ns.receipt}: tree size {old_size} -> {new_size}, anchors: {kinds}")
    return 0


def export(ns: argparse.Namespace) -> int:
    receipt = load_receipt(ns.receipt)
    try:
        if ns.format == "tlog-proof":
            data = to_tlog_proof(receipt).encode()
        else:
            settings = settings_from(ns, dict(os.environ))
            try:
                signer = keys_from(settings).log
            except ConfigError as e:
                raise ConfigError(
                    f"a COSE receipt is signed by the log key, so export it where the log's keys are "
                    f"(DATA_DIR or LOG_KEY_FILE): {e}",
                    setting="LOG_KEY_FILE",
                ) from e
            data = to_cose(receipt, signer)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{ns.receipt} is not a valid notar receipt: {e}", setting="RECEIPT") from e
    if ns.out:
        ns.out.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
