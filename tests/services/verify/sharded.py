"""Receipts of three shards anchored by shard 0's committer (one aggregate: a local block and a token
of the test TSA), for the web verifier's corpus: made by the services themselves (real sequencers in
one store, the real committer and TSA client), not by hand, so that the page and `notar verify` are
checked on what a sharded deployment hands out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import orjson
from cryptography import x509

from merkle.anchors.rfc3161 import load_certificates
from services.anchor.chains.local import LocalChain
from services.anchor.chains.rfc3161 import TsaClient
from services.anchor.committer import Committer
from services.common.components import CommitterConfig
from storage.memory import MemoryStore
from tests.services.anchor.shard_logs import start_shards, stop_shards

SHARDS = 3


@dataclass
class Sharded:
    keys: list[str]  # every shard's log and clock keys
    receipts: list[tuple[dict[str, Any], Path]]  # one per shard, by shard id, with its document


def _digest(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


async def _make(
    docs: Sequence[Path], digests: Sequence[str], tsa_url: str, cas: list[x509.Certificate]
) -> Sharded:
    store = MemoryStore()
    logs = await start_shards(store, SHARDS)
    try:
        notarized = []
        for log, digest in zip(logs, digests, strict=True):
            i = log.shard.id
            await log.notarize([_digest(bytes([i, n])) for n in range(3 + i)])  # a proof of several hashes
            notarized.append((await log.notarize([digest]))[0])
            await log.published()
        tsa = TsaClient(url=tsa_url, trusted_cas=cas)
        committer = Committer(
            store=store,
            backends=[LocalChain(store=store, signer=logs[0].keys.log), tsa],
            config=CommitterConfig(interval_s=3600),
            log_key=logs[0].keys.log.verifier(),
        )
        assert await committer.run_once("local") and await committer.run_once("rfc3161")
        await tsa.close()
        out = []
        for log, sequenced, doc in zip(logs, notarized, docs, strict=True):
            receipt = await log.receipt(store, sequenced)
            assert receipt is not None and len(receipt.anchors) == 2
            out.append((orjson.loads(receipt.to_json()), doc))
        return Sharded([k for log in logs for k in log.verifier_keys], out)
    finally:
        await stop_shards(logs)


def sharded_receipts(work: Path, tsa_url: str, ca: Path) -> Sharded:
    """Three shards' receipts under one aggregate, their documents written under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(SHARDS):
        doc = work / f"shard-{i}.txt"
        doc.write_text(f"notarized in shard {i} of a sharded deployment\n", encoding="utf-8")
        docs.append(doc)
    digests = [_digest(d.read_bytes()) for d in docs]
    return asyncio.run(_make(docs, digests, tsa_url, load_certificates(ca.read_bytes())))
