"""The bucket layout: deployments and mirrors read these exact keys (C2SP tlog-tiles under `log/`,
nothing else there); the log's private state, its anchors included, under `private/log/`."""

from __future__ import annotations

from merkle.tiles import TileId
from services.published import layout


def test_log_keys() -> None:
    assert layout.checkpoint_key() == "log/checkpoint"
    assert layout.keys_key() == "private/log/keys.json"
    assert layout.lease_key() == "private/log/lease"
    assert layout.format_key() == "private/log/format"
    assert layout.lease_key("run-1/log/") == "private/run-1/log/lease"
    assert layout.tile_key(TileId(0, 1234, 7)) == "log/tile/0/x001/234.p/7"
    assert layout.tile_key(TileId("entries", 5)) == "log/tile/entries/005"
    assert layout.checkpoint_key("run-1/log/") == "run-1/log/checkpoint"


def test_anchor_keys() -> None:
    assert layout.anchor_checkpoints() == "private/log/anchors/checkpoint/"
    assert layout.anchor_checkpoint_key(42) == "private/log/anchors/checkpoint/00000000000000000042"
    assert layout.anchor_records() == "private/log/anchors/record/"
    assert layout.anchor_records_of(42) == "private/log/anchors/record/00000000000000000042/"
    assert layout.anchor_record_key(42, "evm") == "private/log/anchors/record/00000000000000000042/evm.json"
    assert layout.local_chain() == "private/log/anchors/local/"
    assert layout.local_block_key(3) == "private/log/anchors/local/00000000000000000003"


def test_document_and_tenant_keys() -> None:
    assert layout.document_manifest_key("ab" * 16) == "documents/manifests/" + "ab" * 16
    assert layout.document_chunks("cd" * 16) == "documents/chunks/" + "cd" * 16 + "/"
    assert layout.document_chunk_key("cd" * 16, 7) == "documents/chunks/" + "cd" * 16 + "/0000000007"
    assert layout.tenant_name_key("acme") == "tenants/names/acme"
    assert layout.api_keys() == "tenants/keys/"
    assert layout.api_key_key("00ff") == "tenants/keys/00ff"


def test_key_history_and_witnessed_keys() -> None:
    assert layout.history() == "private/log/history/"
    assert layout.first_keys_key() == "private/log/history/first"
    assert layout.rotation_key(1) == "private/log/history/rotation-000001"
    assert layout.rotation_key(12, "log/3/") == "private/log/3/history/rotation-000012"
    assert layout.witnessed() == "private/log/witnessed/"
    wid = layout.witness_id("w.example/w1+01020304+AAAA")
    assert len(wid) == 32 and int(wid, 16) >= 0 and wid != layout.witness_id("w.example/w1+01020305+AAAA")
    assert layout.witnessed_key(42, wid) == f"private/log/witnessed/00000000000000000042/{wid}"
