"""Aggregated anchoring end to end (SPEC §4, §10; issue 17 item 4): `notar serve` runs shard 0 with
ANCHORS=local,evm,rfc3161 against a real anvil and a real openssl TSA, shards 1 and 2 sequence in the
same store; shard 0's committer anchors one aggregate of the three checkpoints — one local block, one
EVM transaction, one RFC 3161 token — and every shard's receipt carries it with its own path. Each
receipt verifies through POST /v1/verify (local and RFC 3161 checked, EVM not checked offline) and
`notar verify --online` (all three checked, EVM on anvil); a path altered in one record fails
that record's check alone."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import blake3
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from eth_account import Account

from merkle import Receipt
from services.anchor.app import ensure_keys
from services.anchor.committer import COMMITTER
from services.cli import main
from services.cli.serve import build_app
from services.common.resources import STORE, TENANTS
from services.published import layout
from services.published.history import read_history
from services.published.shards import claim, shard_prefix
from services.published.trust import keys_document
from tests.anvil import KEY0, Anvil
from tests.services.anchor.chains.conftest import anchoring_config
from tests.services.anchor.shard_logs import BASE, ShardLog, start_shards, stop_shards
from tests.tsa import LocalTsa, Pki

KINDS = ("local", "evm", "rfc3161")


def document(tmp: Path, shard: int) -> tuple[Path, str]:
    path = tmp / f"deed-{shard}.txt"
    path.write_bytes(f"a deed notarized in shard {shard}".encode())
    return path, "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


async def cli_verify(receipt: Receipt, doc: Path, keys: list[str], *extra: str) -> tuple[int, dict[str, Any]]:
    """`notar verify RECEIPT DOC --key … --json …` in a thread (it runs its own event loop)."""
    path = doc.with_suffix(f".{receipt.index}.receipt.json")
    path.write_bytes(receipt.to_json())
    out = doc.with_suffix(".verdict.json")
    args = ["verify", str(path), str(doc), *(a for k in keys for a in ("--key", k)), "--json", *extra]

    def run() -> int:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(args)
        out.write_text(buffer.getvalue())
        return code

    code = await asyncio.to_thread(run)
    return code, json.loads(out.read_text())


async def test_one_anchor_of_each_kind_for_every_shard(
    anvil: Anvil, miner: None, contract: str, tsa: LocalTsa, pki: Pki, tmp_path: Path
) -> None:
    config = anchoring_config(tmp_path, BASE, anvil, contract, tsa, pki, 3600)  # rounds run by the test
    ensure_keys(config.keys)
    app = build_app("all", config, {})
    client = TestClient(TestServer(app))
    await client.start_server()
    store = app[STORE]
    others: list[ShardLog] = []
    try:
        assert (await claim(store, BASE, 0)).prefix == layout.LOG_PREFIX  # shard 0 is the served log
        others = await start_shards(store, 2, first=1)
        acme = {"Authorization": f"Bearer {await app[TENANTS].add('acme')}"}
        docs = [document(tmp_path, i) for i in range(3)]
        r = await client.post("/v1/digests", json={"digests": [docs[0][1]]}, headers=acme)
        assert r.status == 200
        sequenced = {log.shard.id: (await log.notarize([docs[log.shard.id][1]]))[0] for log in others}
        for log in others:
            await log.published()
        committer = app[COMMITTER]
        await asyncio.wait_for(_published(client, 1), 10)
        for kind in KINDS:
            assert await committer.run_once(kind), kind

        # every shard's receipt: shard 0's from the API, the others' as verify pods upgrade them
        got = await client.get(f"/v1/receipts/{docs[0][1]}", headers=acme)
        assert got.status == 200
        receipts = {0: Receipt.from_json(await got.read())}
        for log in others:
            upgraded = await log.receipt(store, sequenced[log.shard.id])
            assert upgraded is not None
            receipts[log.shard.id] = upgraded
        records = {i: [a.fields() for a in r.anchors] for i, r in receipts.items()}
        for i, recs in records.items():
            assert [a["type"] for a in recs] == list(KINDS), i
            assert [(a["aggregate"]["size"], a["aggregate"]["index"]) for a in recs] == [(3, i)] * 3
        for kind, field in (("local", "height"), ("evm", "tx_hash"), ("rfc3161", "token")):
            shared = {r[KINDS.index(kind)][field] for r in records.values()}
            assert len(shared) == 1, f"one {kind} anchor for all shards: {shared}"

        # /v1/keys lists every shard (lane shards-core writes it so; written here as it will be)
        histories = [await read_history(store, shard_prefix(i)) for i in range(3)]
        assert all(h is not None for h in histories)
        published = keys_document([h for h in histories if h])
        await store.put(layout.keys_key(), orjson.dumps(published))
        keys = [k[role] for k in published["logs"] for role in ("log", "clock")]
        for i, receipt in receipts.items():
            body = {"receipt": orjson.loads(receipt.to_json()), "digest": docs[i][1]}
            v = await client.post("/v1/verify", json=body)
            answer = await v.json()
            assert answer["valid"] is True, (i, answer)
            assert answer["unchecked"] == ["anchor 2 (evm)"], (i, answer["unchecked"])
            details = {c["name"]: c["detail"] for c in answer["checks"]}
            assert "for an aggregate of 3 checkpoints" in details["anchor 1 (local)"]
            assert "for an aggregate of 3 checkpoints" in details["anchor 3 (rfc3161)"]

            code, verdict = await cli_verify(receipt, docs[i][0], keys, "--tsa-ca", str(pki.ca_cert),
                                             "--online", "--evm-rpc", anvil.url)
            assert code == 0 and verdict["valid"] and verdict["unchecked"] == [], (i, verdict)
            evm = next(c for c in verdict["checks"] if c["name"] == "anchor 2 (evm)")
            assert evm["status"] == "ok" and evm["detail"].startswith("anchored on chain 31337"), evm

        # one record's path altered: that record's check fails, and only it
        altered = orjson.loads(receipts[2].to_json())
        path = altered["anchors"][1]["aggregate"]["path"]
        path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]
        code, verdict = await cli_verify(Receipt.from_obj(altered), docs[2][0], keys, "--tsa-ca",
                                         str(pki.ca_cert), "--online", "--evm-rpc", anvil.url)
        assert code == 1 and [c["name"] for c in verdict["checks"] if c["status"] == "failed"] == [
            "anchor 2 (evm)"
        ]
        # without shard 0's key, shard 2's local block (signed by shard 0) is not trusted
        own = [k for k in keys if k.startswith(BASE + "/2")]
        code, verdict = await cli_verify(receipts[2], docs[2][0], own, "--tsa-ca", str(pki.ca_cert))
        assert code == 1 and [c["name"] for c in verdict["checks"] if c["status"] == "failed"] == [
            "anchor 1 (local)"
        ]

        # the next aggregate, after only shard 2 grew: one more transaction, not one per shard
        sender = committer_address(KEY0)
        before = int(await anvil.rpc("eth_getTransactionCount", sender, "latest"), 16)
        await others[1].notarize([docs[2][1]])
        await others[1].published()
        assert await committer.run_once("evm")
        assert int(await anvil.rpc("eth_getTransactionCount", sender, "latest"), 16) == before + 1
    finally:
        await stop_shards(others)
        await client.close()


async def _published(client: TestClient, size: int) -> None:  # type: ignore[type-arg]
    """Until shard 0's published checkpoint holds `size` entries."""
    while True:
        r = await client.get("/log/checkpoint")
        if r.status == 200 and int((await r.text()).split("\n")[1]) >= size:
            return
        await asyncio.sleep(0.02)


def committer_address(key: str) -> str:
    return str(Account.from_key(bytes.fromhex(key)).address)


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI's settings are the test's alone (no notar.toml or NOTAR_* of the machine)."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("NOTAR_")]:
        monkeypatch.delenv(name)
