"""notar's pure Merkle library (SPEC §9): RFC 9162 trees and proofs, C2SP tiles, signed notes,
checkpoints, v2 log entries, receipts and their offline verification, key histories, the witness
protocol and witness policies. No I/O, no asyncio, no environment: auditors can use it on its own.
"""

from merkle.aggregate import Aggregate, AnchorTarget, make_aggregate, parse_aggregate
from merkle.bundles import BundleBuilder, decode_bundle, encode_bundle
from merkle.checkpoint import Checkpoint, OpenedCheckpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from merkle.checks import AnchorVerdict, AnchorVerifier, Check, Status
from merkle.digests import (
    ENTRY_NOTAR,
    ENTRY_SCITT,
    Digest,
    hash_document,
    make_entries,
    make_entry,
    parse_digest,
    parse_entry,
    parse_multihash,
)
from merkle.export import TlogProof, parse_tlog_proof, to_cose, to_tlog_proof, verify_cose
from merkle.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash, root
from merkle.keyhistory import KeyHistory, KeyPeriod, Rotation, open_rotation, parse_rotation, read_rotation
from merkle.mldsa import MLDSA44CosignatureSigner, MLDSA44CosignatureVerifier, mldsa44_available
from merkle.note import Signer, Verifier, open_note, sign_note
from merkle.policy import Policy, PolicyVerdict, check_witnesses, parse_policy
from merkle.proofs import (
    Tree,
    consistency_proof,
    inclusion_proof,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)
from merkle.receipt import RECEIPT_FORMAT, Anchor, Receipt
from merkle.receipt_writer import Proven, write_receipts
from merkle.tiles import (
    ENTRIES,
    Tile,
    TileBuilder,
    TileId,
    consistency_proof_from_tiles,
    inclusion_proof_from_tiles,
    parse_tile_path,
    root_from_tiles,
    tile_path,
    tiles_for_size,
    tiles_needed,
)
from merkle.trust import Trust
from merkle.verdict import ReceiptResult, verify_receipt
from merkle.witness import (
    AddCheckpoint,
    Outcome,
    WitnessAnswer,
    add_checkpoint_body,
    merge_cosignatures,
    parse_add_checkpoint,
    read_answer,
)

__all__ = [
    "EMPTY_ROOT",
    "ENTRIES",
    "ENTRY_NOTAR",
    "ENTRY_SCITT",
    "HASH_SIZE",
    "RECEIPT_FORMAT",
    "AddCheckpoint",
    "Aggregate",
    "Anchor",
    "AnchorTarget",
    "AnchorVerdict",
    "AnchorVerifier",
    "BundleBuilder",
    "Check",
    "Checkpoint",
    "Digest",
    "KeyHistory",
    "KeyPeriod",
    "MLDSA44CosignatureSigner",
    "MLDSA44CosignatureVerifier",
    "OpenedCheckpoint",
    "Outcome",
    "Policy",
    "PolicyVerdict",
    "Proven",
    "Receipt",
    "ReceiptResult",
    "Rotation",
    "Signer",
    "Status",
    "Tile",
    "TileBuilder",
    "TileId",
    "TlogProof",
    "Tree",
    "Trust",
    "Verifier",
    "WitnessAnswer",
    "add_checkpoint_body",
    "check_witnesses",
    "consistency_proof",
    "consistency_proof_from_tiles",
    "decode_bundle",
    "encode_bundle",
    "hash_document",
    "inclusion_proof",
    "inclusion_proof_from_tiles",
    "leaf_hash",
    "make_aggregate",
    "make_entries",
    "make_entry",
    "merge_cosignatures",
    "mldsa44_available",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "open_rotation",
    "parse_add_checkpoint",
    "parse_aggregate",
    "parse_checkpoint",
    "parse_digest",
    "parse_entry",
    "parse_multihash",
    "parse_policy",
    "parse_rotation",
    "parse_tile_path",
    "parse_tlog_proof",
    "read_answer",
    "read_rotation",
    "root",
    "root_from_inclusion",
    "root_from_tiles",
    "sign_checkpoint",
    "sign_note",
    "tile_path",
    "tiles_for_size",
    "tiles_needed",
    "to_cose",
    "to_tlog_proof",
    "verify_consistency",
    "verify_cose",
    "verify_inclusion",
    "verify_receipt",
    "write_receipts",
]
