"""SPEC §10 and §12 through `notar serve --shards 2`: a SCITT statement registered in shard 0 (the
one SCITT registrations go to) keeps its first receipt once `notar shard freeze 0` moved shard 0's
registrations to the object store and deleted its RocksDB: `GET /entries/{id}` serves it; after a
restart, when ordinal 0 runs a new shard, too, and the same statement registered again gets it
(it is not logged again)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from tests.services.scitt.thirdparty import IssuerKey, entry_of, statement
from tests.services.test_frozen_lookups import freeze_and_wait, states
from tests.serving import NotarProcess, notar_cli, notar_serve

ORIGIN = "frozen-scitt.test/log"
WAIT_MS = "30000"  # POST /entries answers 201 with the receipt, not 303, on a loaded machine too


def http(notar: NotarProcess, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/cose", "Authorization": "Bearer " + notar.env["NOTAR_API_KEY"]}
    req = urllib.request.Request(notar.url + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_frozen_shards_scitt_statements_keep_their_receipts(tmp_path: Path) -> None:
    key = IssuerKey.generate("ES256")
    (tmp_path / "issuer.pem").write_bytes(key.pem)
    signed = statement(key, b'{"sbom": "frozen"}')
    location = f"/entries/{entry_of(signed)[1:].hex()}"
    index_dir = tmp_path / "index"
    with notar_serve(tmp_path, ORIGIN, SHARDS="2", SCITT_WAIT_MS=WAIT_MS) as notar:
        added = notar_cli(
            "tenant", "issuer", "add", "acme", "--iss", "https://issuer.example",
            "--key", str(tmp_path / "issuer.pem"), env=notar.env,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        status, receipt = http(notar, "/entries", signed)
        assert status == 201, receipt
        assert index_dir.is_dir()
        freeze_and_wait(notar, 0, index_dir)
        assert states(tmp_path) == [(0, "frozen"), (1, "active")]
        assert (tmp_path / "store" / "private/log/frozen/scitt/manifest.json").exists()
        assert http(notar, location) == (200, receipt)
        assert http(notar, "/entries/" + "ab" * 32)[0] == 404
        assert http(notar, "/entries", signed)[0] == 503  # its SCITT shard is frozen: until a restart
        api_key = notar.env["NOTAR_API_KEY"]

    with notar_serve(tmp_path, ORIGIN, SHARDS="2", SCITT_WAIT_MS=WAIT_MS, tenant=None) as notar:
        # ordinal 0 runs a new shard, 2
        notar.env["NOTAR_API_KEY"] = api_key
        assert states(tmp_path) == [(0, "frozen"), (1, "active"), (2, "active")]
        assert http(notar, location) == (200, receipt)
        assert http(notar, "/entries", signed) == (201, receipt)
        fresh = statement(key, b'{"sbom": "after"}')
        status, made = http(notar, "/entries", fresh)
        assert status == 201 and made != receipt
