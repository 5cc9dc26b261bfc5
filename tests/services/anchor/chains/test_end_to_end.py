"""Issue 5's "done when": with ANCHORS=local,evm,rfc3161, one interval after an entry is sequenced
its receipt, upgraded to the anchored checkpoint, carries all three records; it verifies (TSA
and local offline, EVM online against the test's anvil) and fails once any one record is altered.
The anchor app runs as `notar serve --role anchor` would, with anvil and the TSA started here."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from merkle import Anchor, AnchorTarget, AnchorVerdict, AnchorVerifier, Receipt, ReceiptResult, verify_receipt
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.rfc3161 import load_certificates
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.anchor.app import create_app, ensure_keys, keys_from
from services.anchor.chains.evm import verify_online
from services.anchor.chains.evm_rpc import JsonRpc
from services.common.resources import STORE
from services.published.anchors import AnchorStore
from services.published.reader import LogReader
from tests.anvil import Anvil
from tests.services.anchor.chains.conftest import anchoring_config
from tests.tsa import LocalTsa, Pki

ORIGIN = "e2e.notar.test/log"
DIGEST = "blake3:" + "ab" * 32


async def online_verifiers(receipt: Receipt, rpc: JsonRpc) -> dict[str, AnchorVerifier]:
    """What `notar verify --online` does: check each evm record on chain first, then answer."""
    body = parse_note(receipt.checkpoint).text
    cp = parse_checkpoint(body)
    verdicts = {}
    for anchor in receipt.anchors:
        if anchor.type == "evm":
            target = AnchorTarget.for_record(anchor.fields(), cp, body)
            verdicts[anchor.raw] = await verify_online(anchor.fields(), target, rpc=rpc, confirmations=2)

    def evm(anchor: Anchor, _target: AnchorTarget) -> AnchorVerdict:
        return verdicts[anchor.raw]

    return {"evm": evm}


async def test_receipt_upgraded_with_all_three_anchors(
    anvil: Anvil, miner: None, contract: str, tsa: LocalTsa, pki: Pki, tmp_path: Path
) -> None:
    config = anchoring_config(tmp_path, ORIGIN, anvil, contract, tsa, pki, 1)
    ensure_keys(config.keys)
    keys = list(keys_from(config.keys).verifier_keys.values())
    client = TestClient(TestServer(create_app(config, env={})))
    await client.start_server()
    rpc = JsonRpc(anvil.url)
    try:
        resp = await client.post("/internal/v1/entries", json={"tenant": "acme", "digests": [DIGEST]})
        assert resp.status == 200
        sequenced = Receipt.from_obj((await resp.json())["receipts"][0])
        index = sequenced.index
        assert client.app is not None
        store = client.app[STORE]
        anchors = AnchorStore(store, refresh_s=0.1)

        async def complete() -> Any:
            while True:
                found = await anchors.first_anchored(index + 1)
                if found is not None and len(found.records) == 3:
                    return found
                await asyncio.sleep(0.2)

        found = await asyncio.wait_for(complete(), 30)
        assert [r["type"] for r in found.records] == ["local", "evm", "rfc3161"]
        assert await anchors.best_for(index) == (found.note, list(found.records))
        proof = await LogReader(store, origin=ORIGIN).inclusion_proof(index, found.size)
        receipt = sequenced.upgraded(checkpoint=found.note, tree_size=found.size, inclusion=proof,
                                     anchors=found.records)
        offline = offline_anchor_verifiers(keys=keys, tsa_cas=load_certificates(pki.ca_cert.read_bytes()))

        async def check(r: Receipt) -> ReceiptResult:
            return verify_receipt(r, keys=keys, digest=DIGEST,
                                  anchor_verifiers={**offline, **await online_verifiers(r, rpc)})

        result = await check(receipt)
        assert result.valid, result.failed
        details = [c.detail for c in result.checks if c.name.startswith("anchor")]
        assert details[0].startswith("block 0 of the local chain")
        assert details[1].startswith("anchored on chain 31337")
        assert details[2].startswith("time-stamped at") and "notar test TSA" in details[2]

        alterations: list[tuple[int, Callable[[dict[str, Any]], None]]] = [
            (0, lambda r: r.update(time=r["time"] + 1)),
            (0, lambda r: r.update(sig=base64.b64encode(bytes(64)).decode())),
            (1, lambda r: r.update(block_number=r["block_number"] - 1)),
            (1, lambda r: r.update(tx_hash="0x" + "00" * 32)),
            (1, lambda r: r.update(contract="0x" + "00" * 20)),
            (2, lambda r: r.update(token=_flip(r["token"]))),
            (2, lambda r: r.update(tsa="http://elsewhere/", token=_other_token(r["token"]))),
        ]
        for position, alter in alterations:
            records = [a.fields() for a in receipt.anchors]
            alter(records[position])
            bad = await check(dataclasses.replace(receipt, anchors=tuple(map(Anchor.from_obj, records))))
            assert not bad.valid
            kind = records[position]["type"]
            assert [c.name for c in bad.failed] == [f"anchor {position + 1} ({kind})"]

        metrics = await (await client.get("/metrics")).text()
        for kind in ("local", "evm", "rfc3161"):
            assert f'notar_anchor_records_total{{kind="{kind}"}}' in metrics
        assert 'notar_anchor_failures_total{kind="evm"} 0' in metrics
    finally:
        await rpc.close()
        await client.close()


def _flip(token: str) -> str:
    raw = bytearray(base64.b64decode(token))
    raw[-5] ^= 0x01  # inside the signature
    return base64.b64encode(bytes(raw)).decode()


def _other_token(token: str) -> str:
    raw = base64.b64decode(token)
    return base64.b64encode(raw[:-40] + bytes(40)).decode()
