"""Receipts built with merkle/ alone (test keys, no server) for the web verifier's corpus: valid
ones of every shape (documents of many sizes, a SHA-256 digest, a non-ASCII subject, local, RFC 3161
and EVM anchors, aggregates over shards, unknown anchor kinds, sixteen anchors) and ones that differ
from a valid one in one way each (tests/services/verify/tampering.py), RFC 3161 anchors of every
kind of TSA, sound and not (tests/services/verify/tsa_cases.py), with the documents, the key sets
and the TSA CA file each is checked with. The page and `notar verify` must agree on every one."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import orjson

from merkle import Checkpoint, Receipt, Signer, Tree, leaf_hash, make_aggregate, make_entry, parse_digest
from merkle.aggregate import aggregate_body
from merkle.anchors.local import make_block
from merkle.checkpoint import sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import add_signatures
from tests.services.verify.live import body_of, timestamp_token
from tests.services.verify.tampering import clock_tampered, tampered
from tests.services.verify.tsa_cases import cases as rfc3161_cases
from tests.tsa import Pki

ORIGIN = "web.notar.test/log"
SHARD = ORIGIN + "/1"
OTHER = "other.notar.test/log"
SIGNED_AT = 1_700_000_000  # before any RFC 3161 token made today: an anchor may not predate it
SUBJECT = "court"
SIZES = [0, 1, 100, 4096, 65_537, 1_000_000, 33]
Obj = dict[str, Any]


@dataclass
class Log:
    """A signed log of `entries` (its tree, checkpoint and note), with its keys."""

    origin: str
    entries: list[bytes]
    signer: Signer = field(init=False)
    clock: CosignatureSigner = field(init=False)
    tree: Tree = field(init=False)
    checkpoint: Checkpoint = field(init=False)
    note: str = field(init=False)

    def __post_init__(self) -> None:
        self.signer = Signer.generate(self.origin)
        self.clock = CosignatureSigner.generate(self.origin + "/clock")
        self.tree = Tree([leaf_hash(e) for e in self.entries])
        self.checkpoint = Checkpoint(self.origin, len(self.entries), self.tree.root())
        self.note = sign_checkpoint(self.checkpoint, self.signer, self.clock, SIGNED_AT)

    @property
    def keys(self) -> list[str]:
        return [self.signer.verifier().to_key(), self.clock.verifier().to_key()]

    def block(self, checkpoint: Checkpoint | None = None, *, time: int = SIGNED_AT + 5, **extra: Any) -> Obj:
        cp = checkpoint or self.checkpoint
        return {
            "type": "local",
            **make_block(previous=None, time=time, checkpoint=cp, signer=self.signer),
            **extra,
        }


@dataclass
class Notarized:
    digest: str
    salt: bytes
    subject: str
    document: Path | None

    @property
    def entry(self) -> bytes:
        return make_entry(parse_digest(self.digest), self.salt, self.subject)


def notarized_file(path: Path, data: bytes, rng: random.Random, subject: str = SUBJECT) -> Notarized:
    path.write_bytes(data)
    return Notarized("blake3:" + blake3.blake3(data).hexdigest(), rng.randbytes(16), subject, path)


def receipt(log: Log, index: int, n: Notarized, anchors: Sequence[Obj] = ()) -> Obj:
    r = Receipt.build(
        digest=parse_digest(n.digest), salt=n.salt, subject=n.subject, origin=log.origin, index=index,
        tree_size=log.checkpoint.size, inclusion=log.tree.inclusion_proof(index), checkpoint=log.note,
        anchors=anchors,
    )  # fmt: skip
    out: Obj = orjson.loads(r.to_json())
    return out


def evm_record(size: int, root: bytes, **extra: Any) -> Obj:
    return {
        "type": "evm", "chain_id": 31337, "contract": "0x" + "12" * 20, "tx_hash": "0x" + "ab" * 32,
        "block_number": 7, "block_hash": "0x" + "cd" * 32, "tree_size": size, "root": "0x" + root.hex(),
        **extra,
    }  # fmt: skip


@dataclass
class Corpus:
    items: list[Obj]  # id, receipt (path), document (path or None), keys (a key set's name), tsa_ca (path)
    keys: dict[str, list[str]]
    files: list[Path]  # documents whose receipt in the corpus is valid
    expected_valid: set[str]
    base: Obj  # the valid receipt the tampered ones come from, and its document
    base_document: Path
    anchored: Obj  # base with local, RFC 3161 and EVM anchors


def build(work: Path, pki: Pki, rng: random.Random) -> Corpus:
    """Write the documents and receipts under `work` (RFC 3161 tokens from the test TSA in `pki`)."""
    docs = work / "documents"
    docs.mkdir(parents=True)
    notarized: list[Notarized] = []
    for i, size in enumerate(SIZES):
        notarized.append(notarized_file(docs / f"doc{i}.bin", rng.randbytes(size), rng))
    sha = docs / "scan.pdf"
    sha.write_bytes(rng.randbytes(70_000))
    sha_digest = "sha256:" + hashlib.sha256(sha.read_bytes()).hexdigest()
    notarized.append(Notarized(sha_digest, rng.randbytes(16), SUBJECT, sha))
    deed = "un acte notarié".encode()
    notarized.append(notarized_file(docs / "étude.txt", deed, rng, "Étude Müller & Associés ✓"))
    longest = "x" * 64  # the longest subject
    notarized.append(Notarized("blake3:" + "5a" * 32, rng.randbytes(16), longest, None))
    while len(notarized) < 41:  # others' entries, so that proofs have several levels
        notarized.append(Notarized("blake3:" + rng.randbytes(32).hex(), rng.randbytes(16), "globex", None))
    main = Log(ORIGIN, [n.entry for n in notarized])
    shard = Log(SHARD, [n.entry for n in notarized[:5]])
    other_doc = docs / "elsewhere.txt"
    elsewhere = notarized_file(other_doc, b"notarized by another log", rng)
    other = Log(OTHER, [elsewhere.entry, *(n.entry for n in notarized[:6])])

    cp, body = main.checkpoint, body_of(main.note)
    token = timestamp_token(pki, body, work / "ts-main")
    anchors = [
        main.block(),
        {"type": "rfc3161", "tsa": "http://tsa.test/", "token": token},
        evm_record(cp.size, cp.root),
    ]
    root, proofs = make_aggregate([cp, shard.checkpoint, Checkpoint(ORIGIN + "/2", 9, bytes(32))])
    aggregate = Checkpoint(ORIGIN, 3, root)  # what the aggregating log (shard 0) anchors
    agg_token = timestamp_token(pki, aggregate_body(3, root), work / "ts-aggregate")

    def aggregated(i: int) -> list[Obj]:
        of = {"aggregate": proofs[i].to_obj()}
        return [
            main.block(aggregate, aggregate=proofs[i].to_obj()),
            {"type": "rfc3161", "tsa": "http://tsa.test/", "token": agg_token, **of},
            evm_record(3, root, **of),
        ]

    foreign_token = timestamp_token(pki, body_of(other.note), work / "ts-other")
    base_index = 3  # a document of 4 KiB, a proof of several hashes
    base = receipt(main, base_index, notarized[base_index])
    with_anchors = receipt(main, base_index, notarized[base_index], anchors)
    with_aggregate = receipt(main, base_index, notarized[base_index], aggregated(0))

    items: list[Obj] = []
    (work / "receipts").mkdir()

    def add(name: str, r: Obj | str, doc: Path | None, keys: str = "main", ca: Path = pki.ca_cert) -> None:
        path = work / "receipts" / f"{name}.json"
        text = r if isinstance(r, str) else json.dumps(r, indent=1, ensure_ascii=False)
        path.write_text(text, encoding="utf-8")
        item = {"id": name, "receipt": str(path), "document": str(doc) if doc else None, "keys": keys}
        items.append({**item, "tsa_ca": str(ca)})

    doc = notarized[base_index].document
    first, future = notarized[0], {"type": "x-future", "nested": {"z": [1, 2.5, None, True], "a": "ünïcode"}}
    witness = CosignatureSigner.generate("witness.example/w").at(SIGNED_AT + 9)
    valid: set[str] = set()
    for i, n in enumerate(notarized[: len(SIZES) + 3]):
        name = f"valid-{i}-{n.document.name if n.document else 'digest-only'}"
        add(name, receipt(main, i, n), n.document)
        valid.add(name)
    more_valid = {
        "valid-without-document": (base, None, "main"),
        "valid-log-key-only": (base, doc, "main_log_only"),
        "valid-anchored-all-kinds": (with_anchors, doc, "main"),
        "valid-aggregated-all-kinds": (with_aggregate, doc, "main"),
        "valid-shard-aggregated": (
            receipt(shard, 1, notarized[1], aggregated(1)),
            notarized[1].document,
            "shards",
        ),
        "valid-anchor-300-s-early": (
            receipt(main, 0, first, [main.block(time=SIGNED_AT - 300)]),
            None,
            "main",
        ),
        "valid-sixteen-anchors": (
            receipt(main, 0, first, [main.block()] * 8 + [{"type": f"x-{i}"} for i in range(8)]),
            None,
            "main",
        ),
        "valid-unknown-anchor-kinds": (
            receipt(main, 0, first, [{**future, "big": 2**63}, {"type": "opentimestamps", "proof": "AAAA"}]),
            None,
            "main",
        ),
        "valid-witness-cosigned": (
            {**base, "checkpoint": add_signatures(base["checkpoint"], [witness])},
            None,
            "main",
        ),
        "clock-tampered-log-key-only": (clock_tampered(base), None, "main_log_only"),
        "other-log-receipt-its-keys": (receipt(other, 0, elsewhere), other_doc, "other"),
        "unknown-witness-signature": (None, None, "main"),  # from tampered() below: still valid
        "anchor-unknown-kind": (None, None, "main"),
        "anchored-invented-kind": (None, None, "main"),
        "anchored-evm-no-size": (None, None, "main"),
        "anchors-16-unknown": (None, None, "main"),
    }
    for name, (r, given, key_set) in more_valid.items():
        if r is not None:
            add(name, r, given, key_set)
        valid.add(name)
    failing: dict[str, tuple[Obj, Path | None, str]] = {
        "changed-document": (base, docs / "changed.bin", "main"),
        "sha256-changed-document": (receipt(main, 7, notarized[7]), docs / "changed.bin", "main"),
        "wrong-keys": (base, doc, "other"),
        "clock-key-only": (base, doc, "main_clock_only"),
        "other-log-receipt": (receipt(other, 0, elsewhere), other_doc, "main"),
        "shard-aggregated-without-shard-0-key": (
            receipt(shard, 1, notarized[1], aggregated(1)),
            None,
            "shard_only",
        ),
        "anchor-301-s-early": (receipt(main, 0, first, [main.block(time=SIGNED_AT - 301)]), None, "main"),
        "anchors-17-local": (receipt(main, 0, first, [main.block()] * 16), None, "main"),  # + 1 below
        "v1-receipt": (v1_receipt(base), doc, "main"),
        "a-log-key-named-otherwise": (base, None, "renamed"),
    }
    failing["anchors-17-local"][0]["anchors"].append(main.block())
    assert doc is not None
    changed = bytearray(doc.read_bytes())
    changed[len(changed) // 2] ^= 0x01
    (docs / "changed.bin").write_bytes(bytes(changed))
    for name, (r, given, key_set) in failing.items():
        add(name, r, given, key_set)
    for name, t in tampered(base, with_anchors, foreign_token, with_aggregate).items():
        if name in more_valid and more_valid[name][0] is None:
            add(name, t, None)
        else:
            no_doc = name.startswith(("entry", "digest", "salt", "subject"))
            add(name, t, None if no_doc else doc)
    add("digest-hex-with-document", tampered(base, with_anchors, foreign_token)["digest-hex"], doc)
    tsa_cases = rfc3161_cases(work / "tsa", body, SIGNED_AT, lambda rs: receipt(main, 5, notarized[5], rs))
    for case in tsa_cases:
        add(case.name, case.receipt, None, ca=case.ca)
        if case.valid:
            valid.add(case.name)

    renamed = Signer.generate(ORIGIN + "-renamed").verifier().to_key()
    keys = {
        "main": main.keys,
        "main_log_only": main.keys[:1],
        "main_clock_only": main.keys[1:],
        "other": other.keys,
        "shards": [*main.keys, *shard.keys],
        "shard_only": shard.keys,
        "renamed": [renamed, main.keys[1]],
    }
    files = [n.document for n in notarized[: len(SIZES) + 3] if n.document is not None]
    return Corpus(items, keys, files, valid, base, doc, with_anchors)


def v1_receipt(base: Obj) -> Obj:
    """What a pre-release receipt looked like: refused naming its version."""
    old = copy.deepcopy(base)
    digest = parse_digest(base["digest"])
    for name in ("salt", "subject"):
        old.pop(name)
    old["format"] = "notar.receipt.v1"
    old["entry"] = (digest.multihash + bytes.fromhex(base["salt"])).hex()
    return old
