"""The "nothing lost" checker can fail: a v2 log built here with merkle/ and a memory store, then
each kind of broken promise — a lost entry, an index given twice, an entry that is not its
receipt's commitment, a forked or forged checkpoint, a bad anchor record, a tampered tile, a
digest published in clear — must be reported."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest.reliability.checker import check
from loadtest.reliability.workload import Acked
from merkle import AnchorTarget, AnchorVerdict, Status, leaf_hash, make_entry, parse_digest, root
from merkle.anchors.local import make_block
from merkle.anchors.rfc3161 import load_certificates
from merkle.bundles import BundleBuilder
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from merkle.proofs import inclusion_proof
from merkle.tiles import TileBuilder, inclusion_proof_from_tiles
from services.anchor.chains import Target
from services.anchor.chains.rfc3161 import TsaClient
from services.published import layout
from storage.memory import MemoryStore
from tests.tsa import LocalTsa, make_pki

ORIGIN = "checker.notar.test/log"
SIZE = 600
SUBJECT = "acme"


class Log:
    """A published log of SIZE entries, its keys, and the receipts its clients were given; under
    ``prefix`` in the store, as shard i's log is under `log/<i>/`."""

    def __init__(self, origin: str = ORIGIN, prefix: str = "log/") -> None:
        self.origin, self.prefix = origin, prefix
        self.signer = Signer.generate(origin)
        self.clock = CosignatureSigner.generate(origin + "/clock")
        self.keys = [self.signer.verifier().to_key(), self.clock.verifier().to_key()]
        self.digests = [f"sha256:{os.urandom(32).hex()}" for _ in range(SIZE)]
        self.salts = [os.urandom(16) for _ in range(SIZE)]
        self.entries = [
            make_entry(parse_digest(d), s, SUBJECT) for d, s in zip(self.digests, self.salts, strict=True)
        ]
        self.leaves = [leaf_hash(e) for e in self.entries]
        self.tiles: dict[str, bytes] = {}
        for t in [*TileBuilder().append(self.leaves), *BundleBuilder().append(self.entries)]:
            self.tiles[prefix + t.id.path] = t.data
        self.note = self.sign(SIZE, root(self.leaves))
        self.acked = [self.receipt(i) for i in range(SIZE)]

    def sign(self, size: int, root_hash: bytes) -> str:
        cp = Checkpoint(self.origin, size, root_hash)
        return sign_checkpoint(cp, self.signer, self.clock, 1_800_000_000)

    def receipt(self, i: int) -> Acked:
        fetch = {k.removeprefix(self.prefix): v for k, v in self.tiles.items()}
        proof = inclusion_proof_from_tiles(i, SIZE, lambda t: fetch[t.path])
        return Acked(
            self.digests[i],
            self.salts[i].hex(),
            SUBJECT,
            self.entries[i].hex(),
            i,
            SIZE,
            tuple(h.hex() for h in proof),
            self.note,
            self.origin,
        )

    async def store(self, store: MemoryStore | None = None) -> MemoryStore:
        """A memory store holding the published log (``store`` when given)."""
        store = store or MemoryStore()
        for key, data in self.tiles.items():
            await store.put(key, data)
        await store.put(self.prefix + "checkpoint", self.note.encode())
        return store

    async def check(self, store: MemoryStore | None = None, **kw: Any) -> Any:
        kw.setdefault("acked", self.acked)
        kw.setdefault("checkpoints", [self.note, self.sign(300, root(self.leaves[:300]))])
        return await check(store or await self.store(), origin=ORIGIN, keys=self.keys, **kw)


@pytest.fixture(scope="module")
def log() -> Log:
    return Log()


async def test_an_honest_log_passes(log: Log) -> None:
    v = await log.check()
    assert v.ok, v.summary()
    assert (v.final_size, v.acknowledged) == (SIZE, SIZE)


async def test_an_acknowledged_entry_missing_from_the_final_log_is_lost(log: Log) -> None:
    # The service acknowledged entry 7 from a tree it later lost: the final log holds another.
    forked_entries = list(log.entries)
    other = f"sha256:{os.urandom(32).hex()}"
    forked_entries[7] = make_entry(parse_digest(other), b"\x01" * 16, SUBJECT)
    leaves = [leaf_hash(e) for e in forked_entries]
    note = log.sign(SIZE, root(leaves))
    proof = tuple(h.hex() for h in inclusion_proof(7, SIZE, leaves))
    acked = Acked(other, "01" * 16, SUBJECT, forked_entries[7].hex(), 7, SIZE, proof, note)
    v = await log.check(acked=[*log.acked[:7], acked, *log.acked[8:]], checkpoints=[note])
    assert not v.ok
    assert len(v.lost) == 1 and other in v.lost[0]
    assert v.inconsistent_checkpoints, "the checkpoint it was acknowledged under is a fork"
    assert not v.duplicate_indices


async def test_one_index_given_to_two_entries_is_reported(log: Log) -> None:
    twin = replace(log.acked[3], digest=f"sha256:{os.urandom(32).hex()}")
    v = await log.check(acked=[*log.acked, twin])
    assert v.duplicate_indices == [3]


async def test_a_receipt_whose_proof_does_not_verify_is_reported(log: Log) -> None:
    bad = replace(log.acked[9], inclusion=log.acked[10].inclusion)
    v = await log.check(acked=[bad])
    assert len(v.bad_receipts) >= 1 and not v.lost


@pytest.mark.parametrize("member", ["salt", "subject", "digest"])
async def test_a_receipt_whose_entry_is_not_its_commitment_is_reported(log: Log, member: str) -> None:
    # The entry is the log's (index 11), but the receipt names another salt, subject or digest:
    # the notarization it claims is not the one the log holds.
    changed = {
        "salt": replace(log.acked[11], salt="00" * 16),
        "subject": replace(log.acked[11], subject="globex"),
        "digest": replace(log.acked[11], digest=f"sha256:{os.urandom(32).hex()}"),
    }
    v = await log.check(acked=[changed[member]])
    assert v.bad_receipts and "not the commitment to its digest, salt and subject" in v.bad_receipts[0]
    assert not v.lost and not v.ok


async def test_a_forked_or_forged_checkpoint_seen_by_a_client_is_reported(log: Log) -> None:
    fork = log.sign(300, os.urandom(32))
    forged = sign_checkpoint(
        Checkpoint(ORIGIN, 300, root(log.leaves[:300])),
        Signer.generate(ORIGIN),
        log.clock,
        1_800_000_000,
    )
    bigger = log.sign(SIZE + 1, os.urandom(32))  # a size the final log never reached: rewound
    v = await log.check(checkpoints=[log.note, fork, forged, bigger])
    assert len(v.inconsistent_checkpoints) == 3, v.inconsistent_checkpoints


async def test_bad_anchor_records_are_reported(log: Log) -> None:
    store = await log.store()
    cp = Checkpoint(ORIGIN, SIZE, root(log.leaves))
    good = make_block(previous=None, time=1_800_000_000, checkpoint=cp, signer=log.signer)
    await store.put(layout.local_block_key(0), orjson.dumps(good))
    await store.put(layout.anchor_checkpoint_key(SIZE), log.note.encode())
    await store.put(layout.anchor_record_key(SIZE, "local"), orjson.dumps({"type": "local", **good}))
    assert (await log.check(store)).ok

    evm_record = {"type": "evm", "tx_hash": "0x" + "ab" * 32, "block_number": 5, "tree_size": SIZE}
    await store.put(layout.anchor_record_key(SIZE, "evm"), orjson.dumps(evm_record))
    unchecked = await log.check(store)
    assert unchecked.bad_anchors, "an evm record nobody can check is not passed"

    async def not_on_chain(record: Any, target: AnchorTarget) -> AnchorVerdict:
        return AnchorVerdict(Status.FAILED, "no such transaction")

    async def on_chain(record: Any, target: AnchorTarget) -> AnchorVerdict:
        held = record["tx_hash"] == evm_record["tx_hash"] and target.size == SIZE
        return AnchorVerdict(Status.OK if held else Status.FAILED, "checked")

    assert (await log.check(store, evm=on_chain)).anchors_checked == {"local": 1, "evm": 1}
    missing = await log.check(store, evm=not_on_chain)
    assert any("no such transaction" in b for b in missing.bad_anchors)

    forged = make_block(previous=good, time=1_800_000_001, checkpoint=cp, signer=Signer.generate(ORIGIN))
    await store.put(layout.local_block_key(1), orjson.dumps(forged))
    assert any("local chain" in b for b in (await log.check(store, evm=on_chain)).bad_anchors)


async def test_rfc3161_records_are_checked_over_the_checkpoint_body(log: Log, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tsa = LocalTsa(pki)
    await tsa.start()
    client = TsaClient(url=tsa.url, trusted_cas=load_certificates(pki.ca_cert.read_bytes()))
    try:
        done = await client.anchor(Target.from_note(log.note))
    finally:
        await client.close()
        await tsa.stop()
    store = await log.store()
    await store.put(layout.anchor_checkpoint_key(SIZE), log.note.encode())
    await store.put(layout.anchor_record_key(SIZE, "rfc3161"), orjson.dumps(done.record))
    sound = await log.check(store, tsa_cas=load_certificates(pki.ca_cert.read_bytes()))
    assert sound.ok and sound.anchors_checked == {"rfc3161": 1}, sound.summary()
    other_ca = await log.check(store, tsa_cas=load_certificates((pki.dir / "rogue-ca.crt").read_bytes()))
    assert len(other_ca.bad_anchors) == 1 and "rfc3161" in other_ca.bad_anchors[0]


async def test_a_tampered_tile_fails_the_audit(log: Log) -> None:
    store = MemoryStore()
    for key, data in log.tiles.items():
        if "/entries/" in key:
            data = data[:-1] + bytes([data[-1] ^ 1])
        await store.put(key, data)
    await store.put("log/checkpoint", log.note.encode())
    with pytest.raises(AssertionError):
        await log.check(store)


async def test_an_anchor_record_without_its_checkpoint_note_is_checked_against_the_final_log(
    log: Log,
) -> None:
    # An anchor killed between writing a record and its checkpoint note leaves the record alone.
    store = await log.store()
    cp = Checkpoint(ORIGIN, 300, root(log.leaves[:300]))
    block = make_block(previous=None, time=1_800_000_000, checkpoint=cp, signer=log.signer)
    await store.put(layout.local_block_key(0), orjson.dumps(block))
    await store.put(layout.anchor_record_key(300, "local"), orjson.dumps({"type": "local", **block}))
    v = await log.check(store)
    assert v.ok and v.orphan_records == 1 and v.anchors_checked == {"local": 1}

    wrong = Checkpoint(ORIGIN, 200, os.urandom(32))  # signed, but not the log's tree of size 200
    block = make_block(previous=block, time=1_800_000_001, checkpoint=wrong, signer=log.signer)
    await store.put(layout.local_block_key(1), orjson.dumps(block))
    await store.put(layout.anchor_record_key(200, "local"), orjson.dumps({"type": "local", **block}))
    await store.put(layout.anchor_checkpoint_key(200), log.sign(200, wrong.root).encode())
    v = await log.check(store)
    assert any("not the final log's" in b for b in v.bad_anchors), v.bad_anchors


async def test_a_digest_published_in_clear_is_reported(log: Log) -> None:
    """SPEC §1: an entry hides its digest. A v1 entry (multihash || salt) published it in clear; so
    would a bundle holding a notarized digest's bytes anywhere, even in an entry of type 0x02."""
    honest = await log.check()
    assert honest.ok and honest.in_clear == []
    v1 = parse_digest(log.digests[5]).multihash + log.salts[5]
    typed = b"\x02" + parse_digest(log.digests[9]).value
    for i, entry in ((5, v1), (9, typed)):
        entries = list(log.entries)
        entries[i] = entry
        leaves = [leaf_hash(e) for e in entries]
        store = MemoryStore()
        for t in [*TileBuilder().append(leaves), *BundleBuilder().append(entries)]:
            await store.put("log/" + t.id.path, t.data)
        note = log.sign(SIZE, root(leaves))
        await store.put("log/checkpoint", note.encode())
        v = await log.check(store, checkpoints=[note])
        assert not v.ok and any(
            f.startswith(f"{log.digests[i]}: in clear in entry bundle") for f in v.in_clear
        )
        not_v2 = [f for f in v.in_clear if f.startswith(f"entry {i} is not a v2 commitment")]
        assert len(not_v2) == (1 if i == 5 else 0), v.in_clear
