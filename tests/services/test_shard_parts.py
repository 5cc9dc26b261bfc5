"""The parts of SPEC §10 that need no server: each shard's config, an anchor pod's ordinal and
URL, ingest's spreader fed the writable shards of the list, and the keys documents of several
shards merged into one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from merkle.cosignature import CosignatureSigner
from merkle.keyhistory import KeyHistory
from merkle.note import Signer
from merkle.policy import parse_policy
from services.anchor.shardset import advertised_url, ordinal_of, shard_config
from services.common.components import load
from services.common.config import Witness
from services.ingest.sharded import ShardedSubmitter
from services.internal.directory import FixedShards, ShardLink
from services.internal.wire import RECEIPTS_HEAD, RECEIPTS_TAIL
from services.model import Digests, Found
from services.published.shards import Shard
from services.published.trust import keys_document, merge_documents
from storage.errors import ConfigError, NotarError, PushbackError

ORIGIN = "parts.test/log"


def test_shard_zero_is_the_deployment_and_others_get_their_names(tmp_path: Path) -> None:
    c = load(flags={"DATA_DIR": str(tmp_path), "ORIGIN": ORIGIN, "SHARDS": "3"}, env={}, config_file=None)
    assert shard_config(c, 0, in_process=True) is c
    two = shard_config(c, 2, in_process=True)
    assert (two.sequencer.origin, two.sequencer.prefix, two.committer.prefix) == (
        f"{ORIGIN}/2",
        "log/2/",
        "log/2/",
    )
    assert two.keys.origin == f"{ORIGIN}/2" and two.keys.data_dir == tmp_path / "shards" / "2"
    assert two.keys.index_key_path == c.keys.index_key_path  # one index key for every shard
    assert two.store.index_path == tmp_path / "shards" / "2" / "index" != c.store.index_path
    assert two.store.data_dir == c.store.data_dir  # the same object store
    assert two.backups.scratch == tmp_path / "shards" / "2" / "backup"
    # an anchor pod: shard i > 0 in DATA_DIR/shards/<i>/ too, so that the next shard its ordinal
    # claims after a freeze starts in a fresh directory; its key files, when set, are its shard's
    files = load(
        flags={
            "DATA_DIR": str(tmp_path),
            "ORIGIN": ORIGIN,
            "LOG_KEY_FILE": "/k/log",
            "CLOCK_KEY_FILE": "/k/clock",
        },
        env={},
        config_file=None,
    )
    pod = shard_config(files, 2, in_process=False)
    assert (
        pod.keys.data_dir == tmp_path / "shards" / "2"
        and pod.store.index_path == tmp_path / "shards" / "2" / "index"
    )
    assert (pod.keys.log_key_file, pod.keys.clock_key_file) == (Path("/k/log"), Path("/k/clock"))
    assert pod.keys.index_key_path == files.keys.index_key_path
    assert pod.sequencer.origin == f"{ORIGIN}/2"
    assert shard_config(files, 2, in_process=True).keys.log_key_file is None  # never shard 0's file


def test_an_anchor_pods_ordinal_and_url(tmp_path: Path) -> None:
    c = load(flags={"DATA_DIR": str(tmp_path), "SHARDS": "2"}, env={}, config_file=None)
    assert ordinal_of(c, {"HOSTNAME": "notar-anchor-7"}) == 7
    with pytest.raises(ConfigError, match="SHARD_ORDINAL"):
        ordinal_of(c, {"HOSTNAME": "anchor"})
    set_ = load(flags={"DATA_DIR": str(tmp_path), "SHARD_ORDINAL": "3"}, env={}, config_file=None)
    assert ordinal_of(set_, {"HOSTNAME": "notar-anchor-7"}) == 3  # the setting wins
    assert advertised_url(c) == "http://127.0.0.1:8080"
    every = load(flags={"DATA_DIR": str(tmp_path), "LISTEN": "0.0.0.0:9000"}, env={}, config_file=None)
    with pytest.raises(ConfigError, match="SHARD_URL"):
        advertised_url(every)
    named = load(
        flags={"DATA_DIR": str(tmp_path), "LISTEN": "0.0.0.0:9000", "SHARD_URL": "http://a-1.a:9000/"},
        env={},
        config_file=None,
    )
    assert advertised_url(named) == "http://a-1.a:9000"


def digests(n: int) -> Digests:
    return Digests.parse(["sha256:" + f"{i:064x}" for i in range(n)])


def answer(texts: Sequence[str]) -> bytes:
    return RECEIPTS_HEAD + b",".join(orjson.dumps({"d": t}) for t in texts) + RECEIPTS_TAIL


class FakeShard:
    """A shard's anchor that answers one fake receipt per digest, or refuses."""

    def __init__(self) -> None:
        self.got = 0

    async def submit(self, tenant: str, digests: Digests, *, compact: bool = False) -> bytes:
        self.got += len(digests)
        return answer(digests.texts)

    def refusal(self, count: int = 1) -> NotarError | None:
        return None

    async def lookup(self, *_: object, **__: object) -> list[Found]:
        return []

    async def forget(self, *_: object) -> int:
        return 0


def test_ingest_spreads_over_the_writable_shards_the_list_names_now() -> None:
    shards = [FakeShard() for _ in range(3)]
    links = [ShardLink(Shard(i, f"{ORIGIN}/{i}"), s) for i, s in enumerate(shards)]
    links[2] = ShardLink(Shard(2, f"{ORIGIN}/2", "frozen"), shards[2])  # frozen: takes nothing
    listed = list(links)
    submitter = ShardedSubmitter(FixedShards(lambda: listed))

    async def run() -> None:
        sent = digests(2000)
        got = orjson.loads(await submitter.submit("acme", sent))["receipts"]
        assert [r["d"] for r in got] == list(sent.texts)
        assert shards[0].got and shards[1].got and not shards[2].got
        listed[:] = [links[0]]  # shard 1 left the list: it gets nothing more
        before = shards[1].got
        await submitter.submit("acme", digests(2000))
        assert shards[1].got == before
        listed[:] = [links[2]]  # none writable: 503
        with pytest.raises(PushbackError):
            await submitter.submit("acme", digests(1))

    asyncio.run(run())


def history(origin: str) -> KeyHistory:
    log, clock = Signer.generate(origin), CosignatureSigner.generate(origin + "/clock")
    return KeyHistory.start(log.verifier(), clock.verifier())


def test_keys_documents_of_shards_merge_into_one_policy() -> None:
    witness = CosignatureSigner.generate("witness.test/w").verifier().to_key()
    witnesses = [Witness(witness, "https://w.test")]
    shards = [history(ORIGIN), history(f"{ORIGIN}/1"), history(f"{ORIGIN}/2")]
    documents = [keys_document([h], witnesses, 1) for h in shards]
    assert merge_documents(documents[:1]) is documents[0]  # one shard: as its anchor wrote it
    merged = merge_documents(documents, [False, False, True])
    assert [log["origin"] for log in merged["logs"]] == [h.origin for h in shards]
    assert [log["state"] for log in merged["logs"]] == ["active", "active", "frozen"]
    assert merged["witnesses"] == [witness]
    policy = parse_policy(merged["policy"])
    assert {log.origin for log in policy.logs} == {h.origin for h in shards}
    # the same policy the anchor writes for several logs at once: every clock, the witness, quorum
    assert merged["policy"] == keys_document(shards, witnesses, 1)["policy"]
