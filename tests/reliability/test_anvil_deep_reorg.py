"""A reorg deeper than EVM_CONFIRMATIONS. No finality rule survives one, so it is the expected
behaviour of such a chain, not a notar bug: an EVM record that was final when written then names a
transaction that is no longer on the chain. What is asked is that it be detectable: the checker
reports the record, and `notar verify --online` fails the receipt's anchor check.

notar does not heal it today: the committer never looks at a record again once written, so the
record stays and receipts upgraded to its checkpoint keep carrying it (this test pins that down,
so that a change of behaviour is noticed). Later checkpoints get fresh EVM anchors as usual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from loadtest.reliability.chains import anchor_kinds, evm_chain, until
from loadtest.reliability.checker import check
from loadtest.reliability.cluster import Cluster, make_cluster, running
from loadtest.reliability.driver import published_keys
from merkle import AnchorTarget, Status
from merkle.checkpoint import parse_checkpoint
from merkle.note import parse_note
from services.published import layout

CONFIRMATIONS = 2


async def _served_with_evm(cluster: Cluster, digest: str) -> bool:
    return "evm" in await anchor_kinds(cluster.verify_urls[0], cluster.api_keys["acme"], digest)


async def _notarize(s: aiohttp.ClientSession, cluster: Cluster, digest: str) -> None:
    auth = {"Authorization": f"Bearer {cluster.api_keys['acme']}"}
    async with s.post(f"{cluster.ingest_urls[0]}/v1/digests", json={"digests": [digest]}, headers=auth) as r:
        assert r.status == 200


async def _receipt(s: aiohttp.ClientSession, cluster: Cluster, digest: str) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {cluster.api_keys['acme']}"}
    async with s.get(f"{cluster.verify_urls[0]}/v1/receipts/{digest}", headers=auth) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


def _verify_online(
    receipt: Path, keys: list[str], rpc: str, contract: str
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "services.cli", "verify", str(receipt), "--online",
            "--key", keys[0], "--key", keys[1], "--evm-rpc", rpc, "--evm-contract", contract,
            "--evm-confirmations", str(CONFIRMATIONS)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, check=False)


async def test_a_record_reorged_out_deeper_than_the_confirmations_is_detected(tmp_path: Path) -> None:
    with evm_chain(tmp_path, confirmations=CONFIRMATIONS) as chain:
        env = {"NOTAR_ANCHORS": "local,evm", "NOTAR_ANCHOR_INTERVAL_S": "1", **chain.env()}
        cluster = make_cluster(tmp_path, env=env)
        with running(cluster):
            keys = published_keys(cluster.verify_urls[0])
            digest = f"sha256:{os.urandom(32).hex()}"
            async with aiohttp.ClientSession() as s:
                await _notarize(s, cluster, digest)
                assert await until(partial(_served_with_evm, cluster, digest), 60)
                receipt = await _receipt(s, cluster, digest)
                (record,) = [a for a in receipt["anchors"] if a["type"] == "evm"]
                body = parse_note(receipt["checkpoint"]).text
                cp = parse_checkpoint(body)
                target = AnchorTarget.of(cp, body)
                verdict = await chain.check(record, target)
                assert verdict.status is Status.OK, "final and on chain before the reorg"
                saved = tmp_path / "receipt.json"
                saved.write_text(json.dumps(receipt))
                assert _verify_online(saved, keys, chain.anvil.url, chain.contract).returncode == 0

                depth = await chain.head() - int(record["block_number"]) + 2
                assert depth > CONFIRMATIONS
                await chain.anvil.rpc("anvil_reorg", depth, [])

                verdict = await chain.check(record, target)
                assert verdict.status is Status.FAILED and "not on chain" in verdict.detail, verdict
                done = _verify_online(saved, keys, chain.anvil.url, chain.contract)
                assert done.returncode != 0, done.stdout
                assert "anchor 2 (evm)" in done.stdout and "not on chain" in done.stdout, done.stdout

                size = cp.size
                await _notarize(s, cluster, f"sha256:{os.urandom(32).hex()}")
                later = await until(partial(_evm_anchored_beyond, cluster, size), 60)
                assert later, "later checkpoints are anchored as usual"
                again = await _receipt(s, cluster, digest)
                assert record in again["anchors"], "not healed: the receipt still carries the dead record"

        store = await cluster.open_store()
        try:
            checked = await check(store, origin=cluster.origin, keys=keys, acked=[], checkpoints=[],
                                  evm=chain.check)  # fmt: skip
        finally:
            await store.close()
        key = layout.anchor_record_key(size, "evm")
        assert [b for b in checked.bad_anchors if b.startswith(key)], checked.summary()
        assert all("/evm.json" in b for b in checked.bad_anchors), "only EVM records are hit"


async def _evm_anchored_beyond(cluster: Cluster, size: int) -> bool:
    store = await cluster.open_store()
    try:
        keys = [k async for k in store.list(layout.anchor_records())]
    finally:
        await store.close()
    return any(k.endswith("/evm.json") and int(k.split("/")[-2]) > size for k in keys)
