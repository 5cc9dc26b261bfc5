"""An independent auditor of a published notar log: rebuilds everything from the object store."""

from __future__ import annotations

from dataclasses import dataclass

from merkle import decode_bundle, leaf_hash, tiles_for_size
from merkle.checkpoint import Checkpoint, open_checkpoint
from merkle.cosignature import CosignatureVerifier
from merkle.note import Verifier
from merkle.proofs import verify_consistency
from merkle.tiles import ENTRIES, TileId, consistency_proof_from_tiles, root_from_tiles, split_hashes
from storage.base import ObjectStore


@dataclass
class AuditedLog:
    checkpoint: Checkpoint
    entries: list[bytes]
    tiles: dict[TileId, bytes]

    def consistent_with(self, old: Checkpoint) -> bool:
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
