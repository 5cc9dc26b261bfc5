"""The RFC 3161 TSA under the anchor failing in every way it can, one way at a time, under load:
down (connection refused), slower than the client's timeout, answering random bytes, junk, a sound
token for another nonce or another imprint, a refusal, HTTP 500, a token signed by a TSA that
TSA_CA_FILE does not certify.

The embedded `notar serve` (ANCHORS=local,rfc3161) runs it, for the reasons given in anvil.py: the
TSA is called by the committer alone, in the anchor process of either shape.

For each fault: it must show as a failure in /metrics and in /readyz, the log must keep
acknowledging entries, and once the TSA is sound again a new rfc3161 record must be stored and
the failures reset. Afterwards no stored record may hold a token the TSA signed in a faulty mode,
and the checker verifies every rfc3161 record under the CA.
"""

from __future__ import annotations

import base64
import random
from functools import partial
from pathlib import Path

import orjson

from merkle.anchors.rfc3161 import load_certificates
from services.anchor.chains.rfc3161 import Rfc3161Config

from ..chains import (
    CONSECUTIVE,
    FAILURES,
    RECORDS,
    RECORDS_TOTAL,
    Findings,
    TsaThread,
    kind_metric,
    metrics,
    readyz,
    server_errors,
    tsa_server,
    until,
)
from ..cluster import Cluster, make_cluster, running
from ..driver import Context, Fault, Outcome, drive
from ..workload import Record
from . import Scenario

MODES = (
    "down",
    "slow",
    "random",
    "garbage",
    "wrong-nonce",
    "wrong-imprint",
    "refuse",
    "error",
    "untrusted",
)
CLIENT_TIMEOUT_S = Rfc3161Config(url="", ca_file=Path()).timeout_s


async def _count(url: str, name: str) -> float:
    return kind_metric(await metrics(url), name, "rfc3161")


async def _above(url: str, name: str, than: float) -> bool:
    return await _count(url, name) > than


async def _healthy_after(url: str, records: float) -> bool:
    m = await metrics(url)
    return kind_metric(m, RECORDS_TOTAL, "rfc3161") > records and kind_metric(m, CONSECUTIVE, "rfc3161") == 0


def _faults(server: TsaThread, rng: random.Random, rounds: int, f: Findings) -> Fault:
    async def fault(cluster: Cluster, record: Record) -> int:
        url = cluster.anchor.url
        done = 0
        if not await until(partial(_above, url, RECORDS_TOTAL, 0), 30):
            f.problems.append("no rfc3161 record was stored before the faults")
            return done
        for _ in range(rounds):
            for mode in rng.sample(MODES, len(MODES)):
                failures, acked = await _count(url, FAILURES), len(record.acked)
                if mode == "down":
                    server.stop()
                else:
                    server.tsa.slow_s = CLIENT_TIMEOUT_S + 1
                    server.tsa.mode = mode
                done += 1
                wait_s = CLIENT_TIMEOUT_S + 10 if mode == "slow" else 10
                if not await until(partial(_above, url, FAILURES, failures), wait_s):
                    f.problems.append(f"{mode}: no rfc3161 failure was counted in {wait_s:g} s")
                elif not ("anchor rfc3161: failing" in await readyz(url) and await _count(url, CONSECUTIVE)):
                    f.problems.append(f"{mode}: /readyz or /metrics did not show rfc3161 failing")
                else:
                    f.add("failing_shown")
                f.add(f"acknowledged_during_{mode}", len(record.acked) - acked)
                if len(record.acked) == acked:
                    f.problems.append(f"{mode}: nothing was acknowledged while the TSA failed")
                healed_at = await _count(url, RECORDS_TOTAL)
                if mode == "down":
                    server.start()
                server.tsa.mode = "ok"
                if await until(partial(_healthy_after, url, healed_at), 30):
                    f.add("resumed")
                else:
                    f.problems.append(f"{mode}: rfc3161 anchoring did not resume once the TSA was sound")
        return done

    return fault


async def _bad_tokens_kept(cluster: Cluster, bad: set[bytes]) -> tuple[int, int]:
    """(rfc3161 records in the store, of which hold a token the TSA signed in a faulty mode)."""
    store = await cluster.open_store()
    try:
        kept = [
            base64.b64decode(orjson.loads(await store.get(k))["token"])
            async for k in store.list(RECORDS)
            if k.endswith("/rfc3161.json")
        ]
    finally:
        await store.close()
    return len(kept), sum(t in bad for t in kept)


async def run(ctx: Context) -> Outcome:
    rng = random.Random(ctx.seed)
    f = Findings()
    with tsa_server(ctx.workdir) as server:
        env = {
            "NOTAR_ANCHORS": "local,rfc3161",
            "NOTAR_ANCHOR_INTERVAL_S": "1",
            "NOTAR_TSA_URL": server.tsa.url,
            "NOTAR_TSA_CA_FILE": str(server.pki.ca_cert),
        }
        cluster = make_cluster(ctx.workdir, env=env)
        cas = load_certificates(server.pki.ca_cert.read_bytes())
        with running(cluster):
            fault = _faults(server, rng, 4 if ctx.long else 1, f)
            outcome = await drive("tsa-faults", cluster, fault, settle_s=3.0, rate=50, tsa_cas=cas)
        records, bad = await _bad_tokens_kept(cluster, server.tsa.bad_tokens)
    f.counts |= {
        "tsa_answers": dict(server.tsa.answers),
        "rfc3161_records": records,
        "bad_tokens_signed": len(server.tsa.bad_tokens),
        "bad_tokens_kept": bad,
    }
    if bad:
        f.problems.append(f"{bad} rfc3161 records hold a token the TSA signed in a faulty mode")
    outcome.extra.update(f.counts)
    outcome.problems += f.problems + server_errors(outcome.load)
    return outcome


SCENARIOS = [
    Scenario(
        "tsa-faults",
        "the TSA down, slow, answering garbage, wrong tokens, refusals (ANCHORS=local,rfc3161)",
        False,
        run,
    )
]
