"""Seeds of the receipt fuzzers: valid notar.receipt.v2 receipts of two logs, signed with real
keys, and what a verifier trusts to check them (loadtest/fuzz_receipts.py).

Log A (three checkpoints of one tree: sizes 1, 20 and 37) and log B (8 entries) sign with fixed
Ed25519 keys, so a corpus file made today still verifies tomorrow; their entries are v2 commitments
by two subjects (one of them not ASCII), every third of a SHA-256 digest. The checkpoint of size 37
carries a trusted witness's cosignature and one by a key nobody trusts, and is anchored three ways:
a `local` block, an RFC 3161 token from `openssl ts -reply` under a throwaway CA (tests/tsa.py), and
an `evm` record whose chain answers come from `ChainState`, a JSON-RPC node holding the anchor
transactions. Log B's checkpoint is anchored both alone (a local block) and in an aggregate with
A's checkpoint of size 37 (SPEC §4: local, RFC 3161 and EVM records carrying `aggregate`), so
aggregate paths are fuzzed too. `Seeds` is JSON-ready (`to_json`/`from_json`) so atheris children
load the very seeds the parent made.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import tempfile
from collections.abc import Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import blake3
import orjson

from merkle.aggregate import AnchorTarget, aggregate_body, make_aggregate
from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.evm import ANCHORED_TOPIC, aggregate_origin_hash, calldata, origin_hash
from merkle.anchors.local import make_block
from merkle.anchors.rfc3161 import build_request, load_certificates, token_from_response
from merkle.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from merkle.checks import AnchorVerdict, AnchorVerifier
from merkle.cosignature import CosignatureSigner
from merkle.digests import Digest, make_entries
from merkle.export import to_cose, to_tlog_proof
from merkle.hashing import leaf_hash
from merkle.note import Signer, add_signatures
from merkle.proofs import Tree
from merkle.receipt import Anchor, Receipt
from services.anchor.chains.evm_rpc import JsonRpc, RpcError

T = TypeVar("T")

ORIGIN_A = "fuzz.notar.test/log"
ORIGIN_B = ORIGIN_A + "/1"  # another log: shard 1 of the same deployment (SPEC §10)
SUBJECTS = {ORIGIN_A: "acme", ORIGIN_B: "Étude Müller ✓"}
SIGNED_AT = 1_790_000_000
CHAIN_ID = 31337
CONFIRMATIONS = 3
NONCE = 0x5EED


def _seed(name: str) -> bytes:
    return hashlib.sha256(b"notar fuzz seed key\n" + name.encode()).digest()


def log_signer(origin: str) -> Signer:
    return Signer(origin, _seed(origin))


def cosigner(name: str) -> CosignatureSigner:
    return CosignatureSigner(name, _seed(name))


def _hex(label: str, size: int = 32) -> str:
    return "0x" + hashlib.sha256(label.encode()).digest()[:size].hex()


def body_of(note: str) -> str:
    """The checkpoint body of a signed note: the text up to, not including, the blank line."""
    return note[: note.find("\n\n") + 1]


@dataclass
class Seeds:
    keys: list[str]  # every trusted verifier key: log keys, clock keys, one witness
    receipts: list[dict[str, Any]]  # valid receipts, as JSON objects
    anchors: dict[str, list[dict[str, Any]]]  # checkpoint body -> every anchor record valid for it
    notes: list[str]  # every signed checkpoint
    ca_pem: str  # the TSA's CA, trusted for rfc3161 anchors
    tsa_responses: list[str]  # base64 DER TimeStampResp, each answering NONCE for a body in `anchors`
    chain: dict[str, Any]  # what ChainState answers: chain_id, head, receipts by tx hash, block hashes
    cose: list[str]  # base64 COSE receipts of `receipts`, by log A's key
    tlog_proofs: list[str]  # tlog-proof texts of `receipts`
    statements: list[str] = field(default_factory=list)  # base64 SCITT signed statements
    issuer_keys: list[str] = field(default_factory=list)  # PEM public keys that signed them

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Seeds:
        return cls(**doc)

    def tokens(self) -> list[bytes]:
        return [
            base64.b64decode(a["token"])
            for recs in self.anchors.values()
            for a in recs
            if a["type"] == "rfc3161"
        ]

    def anchor_verifiers(self) -> dict[str, AnchorVerifier]:
        """The verifiers `notar verify --tsa-ca CA --online` uses, the chain being ChainState."""
        from services.anchor.chains.evm import verify_online

        verifiers = offline_anchor_verifiers(keys=self.keys, tsa_cas=load_certificates(self.ca_pem.encode()))
        rpc = ChainState(self.chain)

        def evm(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
            return drive(verify_online(anchor.fields(), target, rpc=rpc, confirmations=CONFIRMATIONS))

        verifiers["evm"] = evm
        return verifiers


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (ChainState answers at once) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("the coroutine suspended: it waits on something ChainState does not answer")


class ChainState(JsonRpc):
    """A JSON-RPC node answering from a fixed state (`Seeds.chain`), as an honest node would."""

    def __init__(self, chain: Mapping[str, Any]) -> None:
        super().__init__("http://chain.invalid")
        self._chain = chain

    async def call(self, method: str, *params: Any) -> Any:
        c = self._chain
        if method == "eth_chainId":
            return hex(c["chain_id"])
        if method == "eth_blockNumber":
            return hex(c["head"])
        if method == "eth_getTransactionReceipt":
            return c["receipts"].get(str(params[0]).lower())
        if method == "eth_getBlockByNumber":
            found = c["blocks"].get(str(int(params[0], 16)))
            return {"number": params[0], "hash": found} if found else None
        raise RpcError(f"method {method} is not served", method=method)


def _evm_anchor(
    origin_digest: bytes, size: int, root: bytes, chain: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A transaction anchoring (origin_digest, size, root), kept in `chain`, and its record."""
    contract = _hex("contract", 20)
    label = f"{origin_digest.hex()} {size}"
    tx_hash, block_hash = _hex(f"tx {label}"), _hex(f"block {label}")
    number = 100 + len(chain["receipts"])
    chain["blocks"][str(number)] = block_hash
    chain["head"] = max(chain["head"], number + CONFIRMATIONS + 2)
    chain["receipts"][tx_hash] = {
        "transactionHash": tx_hash,
        "status": "0x1",
        "to": contract,
        "blockNumber": hex(number),
        "blockHash": block_hash,
        "input": "0x" + calldata(origin_digest, size, root).hex(),
        "logs": [
            {
                "address": contract,
                "topics": [ANCHORED_TOPIC, "0x" + origin_digest.hex()],
                "data": "0x" + (size.to_bytes(32, "big") + root).hex(),
            }
        ],
    }
    return {
        "type": "evm",
        "chain_id": CHAIN_ID,
        "contract": contract,
        "tx_hash": tx_hash,
        "block_number": number,
        "block_hash": block_hash,
        "tree_size": size,
        "root": "0x" + root.hex(),
        **extra,
    }


def _openssl_reply(pki: Any, body: str, work: Path) -> bytes:
    """A TimeStampResp from `openssl ts -reply` (the real TSA of tests/tsa.py) for our request."""
    (work / "q.tsq").write_bytes(build_request(body, NONCE))
    subprocess.run(
        [
            "openssl",
            "ts",
            "-reply",
            "-config",
            str(pki.config),
            "-queryfile",
            "q.tsq",
            "-signer",
            str(pki.tsa_cert),
            "-inkey",
            str(pki.tsa_key),
            "-out",
            "r.tsr",
        ],
        cwd=work,
        check=True,
        capture_output=True,
    )
    return (work / "r.tsr").read_bytes()


def _entries(n: int, origin: str) -> tuple[list[Digest], list[bytes], list[bytes]]:
    """Digests, salts and v2 entries of log `origin`'s documents (every third a SHA-256 digest)."""
    digests, salts = [], []
    for i in range(n):
        doc = f"fuzz document {i}".encode()
        if i % 3 == 0:
            digests.append(Digest("sha256", hashlib.sha256(doc).digest()))
        else:
            digests.append(Digest("blake3", blake3.blake3(doc).digest()))
        salts.append(hashlib.sha256(b"salt %d" % i).digest()[:16])
    return digests, salts, make_entries(digests, salts, SUBJECTS[origin])


def build_seeds() -> Seeds:
    """Make the seeds (a second or so: openssl makes a CA, a TSA certificate and three tokens)."""
    from tests.tsa import make_pki

    log_a, clock_a = log_signer(ORIGIN_A), cosigner("clock.fuzz.notar.test")
    log_b, clock_b = log_signer(ORIGIN_B), cosigner("clock.other.notar.test")
    witness, stranger = cosigner("witness.fuzz.test"), cosigner("stranger.example")
    keys = [s.verifier().to_key() for s in (log_a, clock_a, log_b, clock_b, witness)]
    chain: dict[str, Any] = {"chain_id": CHAIN_ID, "head": 0, "receipts": {}, "blocks": {}}
    receipts: list[dict[str, Any]] = []
    anchors: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    responses: list[str] = []
    cose: list[str] = []
    block: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="notar-fuzz-seeds-") as tmp:
        pki = make_pki(Path(tmp) / "pki")
        ca_pem = pki.ca_cert.read_text()

        def rfc3161(text: str, **extra: Any) -> dict[str, Any]:
            reply = _openssl_reply(pki, text, Path(tmp))
            responses.append(base64.b64encode(reply).decode())
            token = token_from_response(reply, nonce=NONCE, body=text)
            return {
                "type": "rfc3161",
                "tsa": "http://tsa.fuzz.test/",
                "token": base64.b64encode(token).decode(),
                **extra,
            }

        def local(cp: Checkpoint, signer: Signer, time: int, **extra: Any) -> dict[str, Any]:
            nonlocal block
            previous = block if block is not None and block["origin"] == cp.origin else None
            block = make_block(previous=previous, time=time, checkpoint=cp, signer=signer)
            return {"type": "local", **block, **extra}

        plan = [  # (log, clock, entries, size, indices, anchor kinds)
            (log_a, clock_a, 37, 1, [0], ()),
            (log_a, clock_a, 37, 20, [0, 19], ("local",)),
            (log_a, clock_a, 37, 37, [0, 21, 36], ("local", "rfc3161", "evm")),
            (log_b, clock_b, 8, 8, [5], ("local",)),
        ]
        checkpoints: dict[str, tuple[Checkpoint, str, Tree, list[Digest], list[bytes]]] = {}
        for signer, clock, n, size, indices, kinds in plan:
            digests, salts, entries = _entries(n, signer.name)
            tree = Tree([leaf_hash(e) for e in entries])
            cp = Checkpoint(signer.name, size, tree.root(size))
            note = sign_checkpoint(cp, signer, clock, SIGNED_AT + size)
            if size == 37:
                note = add_signatures(note, [witness.at(SIGNED_AT + 40), stranger.at(SIGNED_AT + 41)])
            notes.append(note)
            body = body_of(note)
            checkpoints[signer.name] = (cp, note, tree, digests, salts)
            records: list[dict[str, Any]] = []
            for kind in kinds:
                if kind == "local":
                    records.append(local(cp, signer, SIGNED_AT + size))
                elif kind == "rfc3161":
                    records.append(rfc3161(body))
                else:
                    records.append(_evm_anchor(origin_hash(cp.origin), cp.size, cp.root, chain))
            anchors[body] = records
            for i in indices:
                receipts.append(
                    _receipt(
                        digests[i], salts[i], cp, note, i, tree, records[: len(records) if i != 36 else 0]
                    )
                )
        # One aggregate of A's checkpoint of 37 and B's of 8, anchored by A (shard 0) three ways.
        (cp_a, note_a, tree_a, digests_a, salts_a), (cp_b, note_b, tree_b, digests_b, salts_b) = (
            checkpoints[ORIGIN_A],
            checkpoints[ORIGIN_B],
        )
        root, proofs = make_aggregate([cp_a, cp_b])
        shared = [  # one anchor of the aggregate per kind, its record carrying each checkpoint's path
            local(Checkpoint(ORIGIN_A, 2, root), log_a, SIGNED_AT + 50),
            rfc3161(aggregate_body(2, root)),
            _evm_anchor(aggregate_origin_hash(ORIGIN_A), 2, root, chain),
        ]
        for (cp, note, tree, digests, salts, index), proof in zip(
            [(cp_a, note_a, tree_a, digests_a, salts_a, 21), (cp_b, note_b, tree_b, digests_b, salts_b, 3)],
            proofs,
            strict=True,
        ):
            records = [{**r, "aggregate": proof.to_obj()} for r in shared]
            anchors[body_of(note)].extend(records)
            receipts.append(_receipt(digests[index], salts[index], cp, note, index, tree, records))
        for r in receipts:
            if r["log"]["origin"] == ORIGIN_A:
                receipt = Receipt.from_obj(r)
                opened = open_checkpoint(
                    receipt.checkpoint, origin=ORIGIN_A, log_verifiers=[log_a.verifier()]
                )
                cose.append(base64.b64encode(to_cose(receipt, opened, log_a)).decode())
    return Seeds(
        keys=keys,
        receipts=receipts,
        anchors=anchors,
        notes=notes,
        ca_pem=ca_pem,
        tsa_responses=responses,
        chain=chain,
        cose=cose,
        tlog_proofs=[to_tlog_proof(Receipt.from_obj(r)) for r in receipts],
        **_statements(),
    )


def _statements() -> dict[str, list[str]]:
    """SCITT signed statements (SPEC §12) by three issuer keys, one per algorithm, made from fixed
    seeds: with kid, with a hash envelope, with x5chain and x5t, with crit, with receipts."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from merkle.cbor import Tag, encode
    from merkle.cose import sig_structure
    from merkle.scitt import key_id

    p256 = ec.derive_private_key(int.from_bytes(_seed("issuer p-256"), "big") % (2**255), ec.SECP256R1())
    p384 = ec.derive_private_key(int.from_bytes(_seed("issuer p-384"), "big"), ec.SECP384R1())
    eddsa = ed25519.Ed25519PrivateKey.from_private_bytes(_seed("issuer ed25519"))

    def sign(key: Any, alg: int, payload: bytes, extra: dict[Any, Any], unprotected: dict[Any, Any]) -> str:
        header = {1: alg, 4: key_id(key.public_key()), 15: {1: "https://issuer.fuzz.test", 2: "pkg:fuzz/x@1"}}
        protected = encode({**header, **extra})
        message = sig_structure(protected, payload)
        if alg == -8:
            signature = key.sign(message)
        else:
            r, s_ = decode_dss_signature(
                key.sign(message, ec.ECDSA(hashes.SHA256() if alg == -7 else hashes.SHA384()))
            )
            width = 32 if alg == -7 else 48
            signature = r.to_bytes(width, "big") + s_.to_bytes(width, "big")
        return base64.b64encode(encode(Tag(18, [protected, unprotected, payload, signature]))).decode()

    digest = hashlib.sha256(b"artifact").digest()
    cert = b"\x30\x03\x02\x01\x01"  # not a certificate: parse_statement does not read x5chain
    statements = [
        sign(p256, -7, b'{"sbom": 1}', {3: "application/json"}, {}),
        sign(p384, -35, b"\x00" * 40, {3: 0, 34: [-16, hashlib.sha256(cert).digest()]}, {33: cert}),
        sign(eddsa, -8, digest, {258: -16, 259: "application/spdx+json", 260: "https://x.test/a"}, {}),
        sign(p256, -7, b"x", {2: [3], 3: "text/plain", 34: [-16, digest]}, {33: [b"\x30\x00"], 394: [b"r"]}),
    ]
    pems = [
        k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for k in (p256, p384, eddsa)
    ]
    return {"statements": statements, "issuer_keys": [p.decode() for p in pems]}


def _receipt(
    digest: Digest,
    salt: bytes,
    cp: Checkpoint,
    note: str,
    index: int,
    tree: Tree,
    anchors: list[dict[str, Any]],
) -> dict[str, Any]:
    r = Receipt.build(
        digest=digest,
        salt=salt,
        subject=SUBJECTS[cp.origin],
        origin=cp.origin,
        index=index,
        tree_size=cp.size,
        inclusion=tree.inclusion_proof(index, cp.size),
        checkpoint=note,
        anchors=anchors,
    )
    obj: dict[str, Any] = orjson.loads(r.to_json())
    return obj
