"""The bucket's layout: every object key notar reads or writes, and nowhere else.

Keys are relative to the store's own prefix (S3_PREFIX). The log's keys hang under a log prefix,
``LOG_PREFIX`` (``log/``) unless a caller gives another (tests run several logs in one bucket);
its private state under ``private/`` followed by that log prefix. Only ``log/`` may be public
(a CDN, a bucket policy): it holds nothing but the C2SP tlog-tiles files, which reveal no
notarized digest and no tenant (SPEC §1, §2). Everything else is private.

=================================================== ============================= =================
key                                                 written by                    public or private
=================================================== ============================= =================
``log/checkpoint``                                  anchor (publisher), replaced  public (C2SP
                                                    over the version it last      tlog-tiles)
                                                    wrote; ``CHECKPOINT_CACHE``
``log/tile/<L>/<N>[.p/<W>]``                        anchor (publisher),           public (tlog-tiles)
                                                    immutable; ``IMMUTABLE``
``log/tile/entries/<N>[.p/<W>]``                    anchor (publisher),           public (tlog-tiles)
                                                    immutable; ``IMMUTABLE``
``private/log/format``                              anchor, when the log starts   private
                                                    (immutable: the log's format)
``private/log/keys.json``                           anchor, at each start         private (verify
                                                                                  serves it: /v1/keys)
``private/log/lease``                               anchor (one writer per log)   private
``private/log/history/first``                       anchor at its first start, or private (verify
                                                    ``notar keys rotate``, once   reads it for
                                                                                  /v1/keys)
``private/log/history/rotation-<seq>``              ``notar keys rotate``,        private (evidence:
                                                    immutable                     in /v1/keys)
``private/log/witnessed/<size>/<witness>``          anchor (witness client),      private (evidence:
                                                    immutable                     in upgraded receipts)
``private/log/anchors/record/<size>/<kind>.json``   anchor (committer), immutable private (evidence:
                                                                                  in upgraded receipts)
``private/log/anchors/checkpoint/<size>``           anchor (committer),           private (evidence)
                                                    immutable, after its first
                                                    record
``private/log/anchors/local/<height>``              anchor (committer: the local  private (evidence)
                                                    chain's blocks), immutable
``private/log/backups/<id>/files/<file>``           anchor (backup: a RocksDB     private (rows
                                                    checkpoint's files),          encrypted; never
                                                    immutable                     the index key)
``private/log/backups/<id>/manifest.json``          anchor (backup), immutable,   private
                                                    after the files
``private/log/restores/<size>-<entries>.json``      anchor, starting on an index  private
                                                    restored from a backup
``private/log/erasures/<name>``                     anchor (erasure), before the  private
                                                    rows go; replayed after a
                                                    restore
``private/log/frozen/manifest.json``                the shard's anchor when it    private (rows
                                                    freezes (frozen_index.py);    encrypted; never
                                                    replaced by each compaction   the index key)
``private/log/frozen/files/<file>``                 the same, immutable: a frozen private
                                                    shard's tenant index, sorted
``private/log/frozen/tombstones/<name>``            erasure in a frozen shard;    private
                                                    deleted by the compaction
                                                    that rewrote its rows away
``private/log/frozen/times/records``                the shard's anchor when it    private (public
                                                    freezes, before the manifest  facts: batches'
                                                    (frozen_times.py)             signed times)
``private/log/frozen/times/fence``                  the same, after the records   private


``private/log/frozen/scitt/manifest.json``          the shard's anchor when it    private
                                                    freezes (frozen_scitt.py),
                                                    after the files
``private/log/frozen/scitt/files/<file>``           the same, immutable: a frozen private
                                                    shard's SCITT entries and
                                                    receipts, sorted
``documents/chunks/<upload>/<position>``            ingest, immutable, encrypted  private
``documents/manifests/<name>``                      ingest, immutable, encrypted, private
                                                    after the chunks
``tenants/names/<name>``                            ``notar tenant add``          private
``tenants/keys/<sha256 of the API key>``            ``notar tenant``              private
``tenants/issuers/<tenant>/<kid>``                  ``notar tenant issuer add``   private
=================================================== ============================= =================

``<size>``, ``<entries>`` and ``<height>`` are 20 decimal digits; a backup's ``<id>`` is the UTC
time it was taken, ``YYYYMMDDTHHMMSSmmmZ`` (ids sort by age), and ``<file>`` a file name of the
RocksDB checkpoint (``000012.sst``, ``MANIFEST-000005``, ``CURRENT``…); an erasure's ``<name>``
is the keyed row name of the tenant index (32 hex digits: ``services/anchor/tenant_index.py``);
tile paths are ``merkle.tiles.tile_path``'s.
``history/first`` holds the log's first log and clock verifier keys (``log <vkey>`` and ``clock
<vkey>`` lines); ``rotation-<seq>`` (``<seq>`` 6 decimal digits from 000001, in order) each signed
rotation statement (``merkle.keyhistory``): together, the log's key history (``services.anchor.
history``). A ``witnessed`` object is the checkpoint of that size as one witness cosigned it (the
log's signatures and the witness's), ``<witness>`` the first 32 hex digits of the SHA-256 of the
witness's verifier key.
A document's ``<name>`` is a keyed hash of its tenant and digest (32 hex digits, one manifest per
digest: BLAKE3 and SHA-256), an issuer's ``<kid>`` the SHA-256 of its key (64 hex digits, SPEC §12),
``<upload>`` 16 random bytes in hex and ``<position>`` 10 decimal
digits (``services/ingest/documents.py``, docs/privacy.md): no object name holds a digest.
Anchor records and the checkpoints they anchor are evidence, immutable, and reveal nothing
private; they are kept beside the log's private state all the same, so that ``log/`` stays a
plain tlog-tiles log that any mirror or CDN serves as it is. They reach the public inside
upgraded receipts (``GET /v1/receipts/{digest}``). The objects of ``log/`` carry Cache-Control,
the same values the verify service's ``/log/`` routes answer: ``CHECKPOINT_CACHE`` for the
checkpoint, ``IMMUTABLE`` for tiles and bundles (a partial one names its width: it never changes).
"""

from __future__ import annotations

import hashlib

from merkle.tiles import TileId

LOG_PREFIX = "log/"
PRIVATE_PREFIX = "private/"
CHECKPOINT = "checkpoint"
"""The latest signed checkpoint, relative to the log prefix (as ``LogReader.raw`` takes it)."""
KEYS = "keys.json"
LEASE = "lease"
FORMAT = "format"
CHECKPOINT_CACHE = "public, max-age=2"
"""Cache-Control of the checkpoint: replaced by every newer tree, about once a batch."""
IMMUTABLE = "public, max-age=31536000, immutable"
"""Cache-Control of tiles and entry bundles, full or partial: their bytes never change."""
SIZE_DIGITS = 20
HEIGHT_DIGITS = 20
DOCUMENTS_PREFIX = "documents/"
POSITION_DIGITS = 10
TENANTS_PREFIX = "tenants/"
ROTATION = "rotation-"
ROTATION_DIGITS = 6
BACKUP_MANIFEST = "manifest.json"


def checkpoint_key(prefix: str = LOG_PREFIX) -> str:
    return prefix + CHECKPOINT


def private_prefix(prefix: str = LOG_PREFIX) -> str:
    """Where the private state of the log under ``prefix`` lives (``private/log/``)."""
    return PRIVATE_PREFIX + prefix


def keys_key(prefix: str = LOG_PREFIX) -> str:
    """The keys document (``services.published.trust``) the anchor writes for verify pods."""
    return private_prefix(prefix) + KEYS


def lease_key(prefix: str = LOG_PREFIX) -> str:
    return private_prefix(prefix) + LEASE


def format_key(prefix: str = LOG_PREFIX) -> str:
    """The log's format marker, written once when the log starts (``services.anchor.logformat``)."""
    return private_prefix(prefix) + FORMAT


def history(prefix: str = LOG_PREFIX) -> str:
    """The folder of the log's key history: its first keys and its rotation statements."""
    return private_prefix(prefix) + "history/"


def first_keys_key(prefix: str = LOG_PREFIX) -> str:
    return history(prefix) + "first"


def introduction_key(prefix: str) -> str:
    """Shard i > 0's introduction: its first keys, signed by shard 0's log key (SPEC §10)."""
    return history(prefix) + "introduction"


def rotation_key(seq: int, prefix: str = LOG_PREFIX) -> str:
    """The ``seq``-th rotation statement of the log (from 1)."""
    return f"{history(prefix)}{ROTATION}{seq:0{ROTATION_DIGITS}d}"


def witnessed(prefix: str = LOG_PREFIX) -> str:
    """The folder of checkpoints cosigned by witnesses: ``<size>/<witness>`` under it."""
    return private_prefix(prefix) + "witnessed/"


def witnessed_key(size: int, witness: str, prefix: str = LOG_PREFIX) -> str:
    """The checkpoint of ``size`` as the witness ``witness`` (``witness_id``) cosigned it."""
    return f"{witnessed(prefix)}{size:0{SIZE_DIGITS}d}/{witness}"


def witness_id(vkey: str) -> str:
    """A witness's name in object keys: the first 32 hex digits of SHA-256 of its verifier key."""
    return hashlib.sha256(vkey.encode("utf-8")).hexdigest()[:32]


def tile_key(tile: TileId, prefix: str = LOG_PREFIX) -> str:
    return prefix + tile.path


def anchor_checkpoints(prefix: str = LOG_PREFIX) -> str:
    """The folder of anchored checkpoints' notes, one per anchored tree size."""
    return private_prefix(prefix) + "anchors/checkpoint/"


def anchor_checkpoint_key(size: int, prefix: str = LOG_PREFIX) -> str:
    return f"{anchor_checkpoints(prefix)}{size:0{SIZE_DIGITS}d}"


def anchor_records(prefix: str = LOG_PREFIX) -> str:
    """The folder of anchor records: ``<size>/<kind>.json`` under it."""
    return private_prefix(prefix) + "anchors/record/"


def anchor_records_of(size: int, prefix: str = LOG_PREFIX) -> str:
    """The folder of the anchor records of the checkpoint of tree size ``size``."""
    return f"{anchor_records(prefix)}{size:0{SIZE_DIGITS}d}/"


def anchor_record_key(size: int, kind: str, prefix: str = LOG_PREFIX) -> str:
    return f"{anchor_records_of(size, prefix)}{kind}.json"


def local_chain(prefix: str = LOG_PREFIX) -> str:
    """The folder of the local chain's blocks."""
    return private_prefix(prefix) + "anchors/local/"


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


def issuers(tenant: str, prefix: str = TENANTS_PREFIX) -> str:
    """The folder of a tenant's SCITT issuer keys, one record per key (services.common.issuers)."""
    return f"{prefix}issuers/{tenant}/"


def issuer_key(tenant: str, kid_hex: str, prefix: str = TENANTS_PREFIX) -> str:
    return issuers(tenant, prefix) + kid_hex
def backups(prefix: str = LOG_PREFIX) -> str:
    """The folder of the backups of the anchor's index: ``<id>/`` under it, one per backup."""
    return private_prefix(prefix) + "backups/"


def backup_file_key(backup: str, name: str, prefix: str = LOG_PREFIX) -> str:
    return f"{backups(prefix)}{backup}/files/{name}"


def backup_manifest_key(backup: str, prefix: str = LOG_PREFIX) -> str:
    """A backup's manifest, written after its files: a backup without one is incomplete."""
    return f"{backups(prefix)}{backup}/{BACKUP_MANIFEST}"


def backup_id_of(key: str, prefix: str = LOG_PREFIX) -> str:
    """The backup a key under ``backups(prefix)`` belongs to."""
    return key[len(backups(prefix)) :].split("/", 1)[0]


def restores(prefix: str = LOG_PREFIX) -> str:
    """The folder of the records of restores (``services.published.restores``)."""
    return private_prefix(prefix) + "restores/"


def restore_key(size: int, entries: int, prefix: str = LOG_PREFIX) -> str:
    """The record of the index restored with ``entries`` entries under a log of ``size``."""
    return f"{restores(prefix)}{size:0{SIZE_DIGITS}d}-{entries:0{SIZE_DIGITS}d}.json"


def erasures(prefix: str = LOG_PREFIX) -> str:
    """The folder of the erasure journal: one empty object per erased row name."""
    return private_prefix(prefix) + "erasures/"


def erasure_key(name: str, prefix: str = LOG_PREFIX) -> str:
    return erasures(prefix) + name


def frozen(prefix: str = LOG_PREFIX) -> str:
    """The folder of a frozen shard's tenant index in the store (services.anchor.frozen_index)."""
    return private_prefix(prefix) + "frozen/"


def frozen_manifest_key(prefix: str = LOG_PREFIX) -> str:
    """The frozen index's manifest: its files, replaced (conditionally) by each compaction."""
    return frozen(prefix) + "manifest.json"


def frozen_files(prefix: str = LOG_PREFIX) -> str:
    return frozen(prefix) + "files/"


def frozen_file_key(file: str, prefix: str = LOG_PREFIX) -> str:
    """One immutable sorted file of the frozen index (``<file>``: 32 random hex digits)."""
    return frozen_files(prefix) + file


def frozen_tombstones(prefix: str = LOG_PREFIX) -> str:
    return frozen(prefix) + "tombstones/"


def frozen_tombstone_key(name: str, prefix: str = LOG_PREFIX) -> str:
    """The tombstone of an erased row name (32 hex digits) in a frozen index."""
    return frozen_tombstones(prefix) + name


def frozen_times_key(prefix: str = LOG_PREFIX) -> str:
    """A frozen shard's batch times (services.anchor.frozen_times): sorted 24-byte records."""
    return frozen(prefix) + "times/records"


def frozen_times_fence_key(prefix: str = LOG_PREFIX) -> str:
    """The fence of `frozen_times_key`, written after it: the export of the times is complete."""
    return frozen(prefix) + "times/fence"


def frozen_scitt_manifest_key(prefix: str = LOG_PREFIX) -> str:
    """The manifest of a frozen shard's SCITT registrations (services.anchor.frozen_scitt)."""
    return frozen(prefix) + "scitt/manifest.json"


def frozen_scitt_files(prefix: str = LOG_PREFIX) -> str:
    return frozen(prefix) + "scitt/files/"


def frozen_scitt_file_key(file: str, prefix: str = LOG_PREFIX) -> str:
    """One immutable sorted file of them (``<file>``: 32 random hex digits)."""
    return frozen_scitt_files(prefix) + file
