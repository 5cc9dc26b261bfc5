"""notar serve --shards 3 (lane shards-core) with aggregated anchoring: every shard's receipt is
upgraded with one local block for the three, verifies under /v1/keys, and through POST /v1/verify."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from merkle import verify_receipt
from services.published.trust import document_trust
from tests.services.test_shards_serve import call, digest, notarize, ok
from tests.serving import notar_serve

ORIGIN = "agg.shards.test/log"


def test_every_shard_is_anchored_in_one_aggregate(tmp_path: Path) -> None:
    with notar_serve(tmp_path, ORIGIN, SHARDS="3") as notar:

        def on_every_shard(round_: str) -> list[dict[str, Any]]:
            """Receipts, one per shard: the spread sends by spare capacity, so until every shard has some."""
            receipts: list[dict[str, Any]] = []
            for batch in range(40):
                receipts += notarize(notar, [digest(n, f"agg{round_}{batch}-") for n in range(2000)])
                origins = {r["log"]["origin"] for r in receipts}
                if len(origins) == 3:
                    break
            assert len(origins) == 3, origins
            return [next(r for r in receipts if r["log"]["origin"] == o) for o in sorted(origins)]

        # An anchoring while the first round runs may cover only the shards that had entries by
        # then (an aggregate of 2). The second round's entries are sequenced once all three shards
        # have signed checkpoints, so the anchoring that covers them aggregates all three.
        on_every_shard("a")
        receipts = on_every_shard("b")
        origins = {r["log"]["origin"] for r in receipts}
        trust = document_trust(ok(notar, "/v1/keys", auth=False))
        seen: dict[str, set[tuple[int, int]]] = {}
        deadline = time.monotonic() + 30
        for r in receipts:
            while True:
                got = ok(notar, f"/v1/receipts/{r['digest']}")
                if got["anchors"] or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            (record,) = got["anchors"]
            assert record["aggregate"]["size"] == 3, record
            seen.setdefault(got["log"]["origin"], set()).add((record["height"], record["aggregate"]["index"]))
            result = verify_receipt(got, keys=trust, digest=r["digest"])
            assert result.valid, result.failed
            status, body = call(notar, "/v1/verify", body={"receipt": got, "digest": r["digest"]}, auth=False)
            assert status == 200 and json.loads(body)["valid"], body
        assert set(seen) == origins
