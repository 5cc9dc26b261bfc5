"""The "nothing lost" checker: holds the final published log to every promise the clients got.

It trusts nothing the services say at check time. It rebuilds the log from the object store
(every tile and entry bundle, hashed again, the root compared with the signed checkpoint), then:

- every acknowledged receipt verifies (its entry is the v2 commitment to its digest, salt and
  subject; its checkpoint's signatures under the published keys; its inclusion proof) and its
  entry is the one at its index in the final log;
- no index was given to two acknowledged entries;
- no published entry bundle holds a notarized digest in clear (SPEC §1: entries hide them), and
  every entry is a v2 one;
- every checkpoint any client saw is consistent with the final one (the log never forked or
  rewound), and their clock cosignatures never go back in time as the tree grows;
- every anchor record in the store holds: local blocks form one signed chain, RFC 3161 tokens
  verify under the TSA's CA, and each EVM record names a transaction that is on the chain,
  final, and carries that checkpoint.

Only ``merkle`` (the verifier library a court uses) and a plain object store read are used.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from merkle import (
    ENTRY_NOTAR,
    AnchorTarget,
    Receipt,
    Status,
    decode_bundle,
    leaf_hash,
    make_entry,
    parse_digest,
    parse_entry,
    tiles_for_size,
    verify_inclusion,
    verify_receipt,
)
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.local import verify_chain
from merkle.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from merkle.checks import AnchorVerdict
from merkle.cosignature import CosignatureVerifier
from merkle.note import Verifier, parse_note
from merkle.proofs import subtree_hash, verify_consistency
from merkle.receipt import Anchor
from merkle.tiles import (
    ENTRIES,
    TileId,
    TileSource,
    consistency_proof_from_tiles,
    root_from_tiles,
    split_hashes,
)
from services.published import layout
from storage.base import ObjectStore
from storage.errors import NotFoundError

from .workload import Acked

# An online check of one EVM anchor record (its fields) for what it must commit to.
EvmCheck = Callable[[Mapping[str, Any], AnchorTarget], Awaitable[AnchorVerdict]]
FULL_VERIFY_SAMPLE = 2000  # receipts also put through merkle.verify_receipt whole
DIGEST_SIZE = 32


@dataclass
class AuditedLog:
    checkpoint: Checkpoint
    entries: list[bytes]
    tiles: dict[TileId, bytes]

    def consistent_with(self, old: Checkpoint) -> bool:
        if old.size > self.checkpoint.size:
            return False
        proof = consistency_proof_from_tiles(old.size, self.checkpoint.size, self.tiles.__getitem__)
        return verify_consistency(old.size, self.checkpoint.size, proof, old.root, self.checkpoint.root)


async def audit(store: ObjectStore, *, prefix: str, origin: str, log_key: str, clock_key: str) -> AuditedLog:
    """Verify the checkpoint, fetch every tile and bundle, check each level-0 hash against its entry
    and the root against the checkpoint. AssertionError on any discrepancy."""
    note = (await store.get(prefix + "checkpoint")).decode()
    opened = open_checkpoint(
        note,
        origin=origin,
        log_verifiers=[Verifier.from_key(log_key)],
        clock_verifiers=[CosignatureVerifier.from_key(clock_key)],
    )
    assert opened.ok and opened.cosigned_time is not None, "checkpoint signatures do not verify"
    cp = opened.checkpoint
    tiles = {t: await store.get(prefix + t.path) for t in tiles_for_size(cp.size, entries=True)}
    entries: list[bytes] = []
    for tid in sorted((t for t in tiles if t.level == ENTRIES), key=lambda t: t.index):
        entries += decode_bundle(tiles[tid], count=tid.width)
    assert len(entries) == cp.size
    for tid in (t for t in tiles if t.level == 0):
        hashes = split_hashes(tiles[tid], tid.width)
        assert hashes == [leaf_hash(e) for e in entries[tid.index * 256 : tid.index * 256 + tid.width]]
    assert root_from_tiles(cp.size, tiles.__getitem__) == cp.root, "tiles do not hash to the checkpoint"
    return AuditedLog(cp, entries, tiles)


def _opened(
    note: str, origin: str, logs: list[Verifier], clocks: list[CosignatureVerifier]
) -> Checkpoint | None:
    """The checkpoint of a signed note when its signatures verify (cosigned when clocks are given)."""
    try:
        opened = open_checkpoint(note, origin=origin, log_verifiers=logs, clock_verifiers=clocks)
    except ValueError:
        return None
    if not opened.ok or (clocks and opened.cosigned_time is None):
        return None
    return opened.checkpoint


@dataclass
class Verdict:
    """What the checker found; ``ok`` only when nothing was lost, doubled, forked or invented."""

    final_size: int = 0
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    duplicate_indices: list[int] = field(default_factory=list)
    bad_receipts: list[str] = field(default_factory=list)
    inconsistent_checkpoints: list[str] = field(default_factory=list)
    time_reversals: list[str] = field(default_factory=list)  # a bigger tree cosigned at an older time
    anchors_checked: dict[str, int] = field(default_factory=dict)
    orphan_records: int = 0  # anchor records whose checkpoint note was never written
    bad_anchors: list[str] = field(default_factory=list)
    in_clear: list[str] = field(default_factory=list)  # digests found in a bundle, entries not v2

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicate_indices
            or self.bad_receipts
            or self.inconsistent_checkpoints
            or self.time_reversals
            or self.bad_anchors
            or self.in_clear
        )

    def summary(self) -> dict[str, Any]:
        return {
            "final_tree_size": self.final_size,
            "acknowledged": self.acknowledged,
            "lost": len(self.lost),
            "duplicate_indices": len(self.duplicate_indices),
            "bad_receipts": len(self.bad_receipts),
            "inconsistent_checkpoints": len(self.inconsistent_checkpoints),
            "time_reversals": len(self.time_reversals),
            "anchors_checked": self.anchors_checked,
            "orphan_anchor_records": self.orphan_records,
            "bad_anchors": len(self.bad_anchors),
            "in_clear": len(self.in_clear),
            "examples": (
                self.lost
                + self.bad_receipts
                + self.inconsistent_checkpoints
                + self.time_reversals
                + self.bad_anchors
                + self.in_clear
            )[:5],
        }


def _check_receipts(
    log: AuditedLog, acked: Iterable[Acked], keys: list[str], origin: str, v: Verdict
) -> None:
    by_index: dict[int, str] = {}
    roots: dict[str, Checkpoint | None] = {}
    trusted = [Verifier.from_key(keys[0])]
    clocks = [CosignatureVerifier.from_key(keys[1])]
    acked = list(acked)
    sample = set(random.sample(range(len(acked)), min(FULL_VERIFY_SAMPLE, len(acked))))
    for n, a in enumerate(acked):
        v.acknowledged += 1
        if a.index in by_index:  # every digest a workload sends is new
            v.duplicate_indices.append(a.index)
        by_index[a.index] = a.digest
        if a.checkpoint not in roots:
            roots[a.checkpoint] = _opened(a.checkpoint, origin, trusted, clocks)
        cp = roots[a.checkpoint]
        entry = bytes.fromhex(a.entry)
        try:
            commits = make_entry(parse_digest(a.digest), bytes.fromhex(a.salt), a.subject) == entry
        except ValueError:
            commits = False
        if not commits:
            v.bad_receipts.append(
                f"{a.digest}: its entry is not the commitment to its digest, salt and subject"
            )
        if cp is None or cp.size != a.tree_size:
            v.bad_receipts.append(f"{a.digest}: its checkpoint does not verify or is not of its size")
        elif not verify_inclusion(
            leaf_hash(entry), a.index, a.tree_size, [bytes.fromhex(h) for h in a.inclusion], cp.root
        ):
            v.bad_receipts.append(f"{a.digest}: its inclusion proof fails")
        if a.index >= len(log.entries) or leaf_hash(log.entries[a.index]) != leaf_hash(entry):
            v.lost.append(f"{a.digest}: acknowledged at index {a.index}, not in the final log")
        if n in sample:
            try:
                receipt = Receipt.build(
                    digest=parse_digest(a.digest),
                    salt=bytes.fromhex(a.salt),
                    subject=a.subject,
                    origin=origin,
                    index=a.index,
                    tree_size=a.tree_size,
                    inclusion=[bytes.fromhex(h) for h in a.inclusion],
                    checkpoint=a.checkpoint,
                )
            except ValueError as e:
                v.bad_receipts.append(f"{a.digest}: not a well-formed receipt: {e}")
                continue
            result = verify_receipt(receipt, keys=keys, digest=a.digest, origin=origin)
            if not result.valid:
                v.bad_receipts.append(f"{a.digest}: verify_receipt says {result.failed}")


def _check_in_clear(log: AuditedLog, acked: Iterable[Acked], v: Verdict) -> None:
    """No entry bundle holds a notarized digest's bytes anywhere (not only where an entry starts),
    and every entry is a v2 commitment (SPEC §1)."""
    digests = {parse_digest(a.digest).value: a.digest for a in acked}
    for tid in sorted((t for t in log.tiles if t.level == ENTRIES), key=lambda t: t.index):
        data = log.tiles[tid]
        found = {
            digests[w]
            for i in range(len(data) - DIGEST_SIZE + 1)
            if (w := data[i : i + DIGEST_SIZE]) in digests
        }
        v.in_clear += [f"{d}: in clear in entry bundle {tid.path}" for d in sorted(found)]
    for i, entry in enumerate(log.entries):
        try:
            kind = parse_entry(entry)
        except ValueError as e:
            kind = None
            why = str(e)
        if kind != ENTRY_NOTAR:
            v.in_clear.append(f"entry {i} is not a v2 commitment: {why if kind is None else f'type {kind}'}")


def cosigned_times(notes: Iterable[str], origin: str, keys: list[str]) -> list[tuple[int, int]]:
    """(tree size, cosigned time) of every note whose log signature and clock cosignature verify."""
    logs, clocks = [Verifier.from_key(keys[0])], [CosignatureVerifier.from_key(keys[1])]
    out = []
    for note in notes:
        try:
            opened = open_checkpoint(note, origin=origin, log_verifiers=logs, clock_verifiers=clocks)
        except ValueError:
            continue
        if opened.ok and opened.cosigned_time is not None:
            out.append((opened.checkpoint.size, opened.cosigned_time))
    return out


def time_reversals(times: Iterable[tuple[int, int]]) -> list[str]:
    """Where a bigger tree was cosigned at an earlier time than a smaller one (tlog-cosignature
    times must not go back as the log grows, whatever the signer's wall clock did)."""
    found, latest = [], (-1, -1)  # the latest time cosigned over a smaller or equal tree
    for size, t in sorted(set(times)):
        if t < latest[1] and size > latest[0]:
            found.append(f"tree size {size} cosigned at {t}, after size {latest[0]} at {latest[1]}")
        if t > latest[1]:
            latest = (size, t)
    return found


async def _check_anchors(
    store: ObjectStore,
    log: AuditedLog,
    prefix: str,
    keys: list[str],
    v: Verdict,
    *,
    tsa_cas: Iterable[Any],
    evm: EvmCheck | None,
) -> None:
    offline = offline_anchor_verifiers(keys=keys, tsa_cas=tsa_cas)
    source = TileSource(log.checkpoint.size, log.tiles.__getitem__)
    local_blocks = [orjson.loads(await store.get(k)) async for k in store.list(layout.local_chain(prefix))]
    if local_blocks:
        problems = verify_chain(sorted(local_blocks, key=lambda b: int(b["height"])), keys)
        v.bad_anchors += [f"local chain: {p}" for p in problems]
    async for key in store.list(layout.anchor_records(prefix)):
        record = orjson.loads(await store.get(key))
        kind = str(record.get("type"))
        size = int(key.split("/")[-2])
        # The checkpoint of that size as the final log has it; the stored note must agree. The
        # note is written after the first record, so an anchor killed in between leaves a record
        # without one (counted: that anchor is never offered in receipts; later ones cover it).
        at_size = Checkpoint(log.checkpoint.origin, size, subtree_hash(source, 0, size))
        try:
            body = parse_note((await store.get(layout.anchor_checkpoint_key(size, prefix))).decode()).text
        except NotFoundError:
            v.orphan_records += 1
            body = at_size.format()
        cp = parse_checkpoint(body)
        if (cp.origin, cp.size, cp.root) != (at_size.origin, at_size.size, at_size.root):
            v.bad_anchors.append(f"{key}: the anchored checkpoint of size {size} is not the final log's")
            continue
        try:
            target = AnchorTarget.for_record(record, cp, body)
            why = target.mismatch(record)
            if kind == "evm" and evm is not None:
                verdict = await evm(record, target) if why is None else None
            elif kind in offline:
                verdict = offline[kind](Anchor.from_obj(record), target) if why is None else None
            else:
                v.bad_anchors.append(f"{key}: no way to check a {kind} record was given to the checker")
                continue
        except ValueError as e:
            verdict, why = None, f"malformed: {e}"
        v.anchors_checked[kind] = v.anchors_checked.get(kind, 0) + 1
        if verdict is None:
            v.bad_anchors.append(f"{key}: it does not commit to the checkpoint of size {size}: {why}")
        elif verdict.status is not Status.OK:
            v.bad_anchors.append(f"{key}: {verdict.detail}")


async def check(
    store: ObjectStore,
    *,
    origin: str,
    keys: list[str],
    acked: Iterable[Acked],
    checkpoints: Iterable[str],
    prefix: str = "log/",
    tsa_cas: Iterable[Any] = (),
    evm: EvmCheck | None = None,
) -> Verdict:
    """Audit the published log in ``store`` and hold it to what the clients were given.
    ``keys`` are the log's published [log key, clock key]."""
    v = Verdict()
    checkpoints = list(checkpoints)
    log = await audit(store, prefix=prefix, origin=origin, log_key=keys[0], clock_key=keys[1])
    v.final_size = log.checkpoint.size
    acked = list(acked)
    _check_receipts(log, acked, keys, origin, v)
    _check_in_clear(log, acked, v)
    trusted = [Verifier.from_key(keys[0])]
    for note in checkpoints:
        cp = _opened(note, origin, trusted, [])
        if cp is None:
            v.inconsistent_checkpoints.append(f"a checkpoint seen does not verify: {note[:80]!r}")
            continue
        if not log.consistent_with(cp):
            v.inconsistent_checkpoints.append(
                f"checkpoint of size {cp.size} is not consistent with the final log"
            )
    final = (await store.get(prefix + "checkpoint")).decode()
    v.time_reversals = time_reversals(cosigned_times([*checkpoints, final], origin, keys))
    await _check_anchors(store, log, prefix, keys, v, tsa_cas=tsa_cas, evm=evm)
    return v
