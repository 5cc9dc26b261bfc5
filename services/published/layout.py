"""The bucket's layout: every object key notar reads or writes, and nowhere else.

Keys are relative to the store's own prefix (S3_PREFIX). The log's keys hang under a log prefix,
``LOG_PREFIX`` (``log/``) unless a caller gives another (tests run several logs in one bucket).

=========================================== =============================== ===================
key                                         written by                      public or private
=========================================== =============================== ===================
``log/checkpoint``                          anchor (publisher), replaced    public (C2SP
                                            over the version it last wrote  tlog-tiles)
``log/tile/<L>/<N>[.p/<W>]``                anchor (publisher), immutable   public (tlog-tiles)
``log/tile/entries/<N>[.p/<W>]``            anchor (publisher), immutable   public (tlog-tiles)
``log/keys.json``                           anchor, at each start           public (verifier keys)
``log/lease``                               anchor (one writer per log)     private bookkeeping
``log/anchors/record/<size>/<kind>.json``   anchor (committer), immutable   public
``log/anchors/checkpoint/<size>``           anchor (committer), immutable,  public
                                            after its first record
``log/anchors/local/<height>``              anchor (committer: the local    public
                                            chain's blocks), immutable
``documents/chunks/<upload>/<position>``    ingest, immutable, encrypted    private
``documents/manifests/<name>``              ingest, immutable, encrypted,   private
                                            after the chunks
``tenants/names/<name>``                    ``notar tenant add``            private
``tenants/keys/<sha256 of the API key>``    ``notar tenant``                private
=========================================== =============================== ===================

``<size>`` and ``<height>`` are 20 decimal digits; tile paths are ``merkle.tiles.tile_path``'s.
A document's ``<name>`` is a keyed hash of its tenant and digest (32 hex digits, one manifest per
digest: BLAKE3 and SHA-256), ``<upload>`` 16 random bytes in hex and ``<position>`` 10 decimal
digits (``services/ingest/documents.py``, docs/privacy.md): no object name holds a digest.
``log/lease`` and ``log/keys.json`` sit under the public prefix today though only the anchor
needs the lease: moving them is a change of this module (and of the deployments' bucket policy).
"""

from __future__ import annotations

from merkle.tiles import TileId

LOG_PREFIX = "log/"
CHECKPOINT = "checkpoint"
"""The latest signed checkpoint, relative to the log prefix (as ``LogReader.raw`` takes it)."""
KEYS = "keys.json"
"""The verifier keys the anchor publishes, relative to the log prefix."""
LEASE = "lease"
SIZE_DIGITS = 20
HEIGHT_DIGITS = 20
DOCUMENTS_PREFIX = "documents/"
POSITION_DIGITS = 10
TENANTS_PREFIX = "tenants/"


def checkpoint_key(prefix: str = LOG_PREFIX) -> str:
    return prefix + CHECKPOINT


def keys_key(prefix: str = LOG_PREFIX) -> str:
    return prefix + KEYS


def lease_key(prefix: str = LOG_PREFIX) -> str:
    return prefix + LEASE


def tile_key(tile: TileId, prefix: str = LOG_PREFIX) -> str:
    return prefix + tile.path


def anchor_checkpoints(prefix: str = LOG_PREFIX) -> str:
    """The folder of anchored checkpoints' notes, one per anchored tree size."""
    return prefix + "anchors/checkpoint/"


def anchor_checkpoint_key(size: int, prefix: str = LOG_PREFIX) -> str:
    return f"{anchor_checkpoints(prefix)}{size:0{SIZE_DIGITS}d}"


def anchor_records(prefix: str = LOG_PREFIX) -> str:
    """The folder of anchor records: ``<size>/<kind>.json`` under it."""
    return prefix + "anchors/record/"


def anchor_records_of(size: int, prefix: str = LOG_PREFIX) -> str:
    """The folder of the anchor records of the checkpoint of tree size ``size``."""
    return f"{anchor_records(prefix)}{size:0{SIZE_DIGITS}d}/"


def anchor_record_key(size: int, kind: str, prefix: str = LOG_PREFIX) -> str:
    return f"{anchor_records_of(size, prefix)}{kind}.json"


def local_chain(prefix: str = LOG_PREFIX) -> str:
    """The folder of the local chain's blocks."""
    return prefix + "anchors/local/"


def local_block_key(height: int, prefix: str = LOG_PREFIX) -> str:
    return f"{local_chain(prefix)}{height:0{HEIGHT_DIGITS}d}"


def document_manifest_key(name: str, prefix: str = DOCUMENTS_PREFIX) -> str:
    """A document's manifest under one of its keyed names (32 hex digits)."""
    return f"{prefix}manifests/{name}"


def document_chunks(upload: str, prefix: str = DOCUMENTS_PREFIX) -> str:
    """The folder of the chunks of one upload (its id: 32 hex digits)."""
    return f"{prefix}chunks/{upload}/"


def document_chunk_key(upload: str, position: int, prefix: str = DOCUMENTS_PREFIX) -> str:
    return f"{document_chunks(upload, prefix)}{position:0{POSITION_DIGITS}d}"


def tenant_name_key(name: str, prefix: str = TENANTS_PREFIX) -> str:
    return f"{prefix}names/{name}"


def api_keys(prefix: str = TENANTS_PREFIX) -> str:
    """The folder of API-key records, one per key, named by the key's SHA-256 (hex)."""
    return f"{prefix}keys/"


def api_key_key(key_hash: str, prefix: str = TENANTS_PREFIX) -> str:
    return api_keys(prefix) + key_hash
