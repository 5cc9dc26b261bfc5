"""Seeds of the receipt fuzzers: valid receipts of two logs, signed with real keys, and what a
verifier trusts to check them (loadtest/fuzz_receipts.py).

Log A (three checkpoints of one tree: sizes 1, 20 and 37) and log B (8 entries) sign with fixed
Ed25519 keys, so a corpus file made today still verifies tomorrow. The checkpoint of size 37 carries
a trusted witness's cosignature and one by a key nobody trusts, and is anchored three ways: a
`local` block, an RFC 3161 token from `openssl ts -reply` under a throwaway CA (tests/tsa.py), and an
`evm` record whose chain answers come from `ChainState`, a JSON-RPC node holding that one anchor
transaction. `Seeds` is JSON-ready (`to_json`/`from_json`) so atheris children load the very seeds
the parent made.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import tempfile
from collections.abc import Coroutine, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import blake3

from merkle.anchors import offline_anchor_verifiers
from merkle.anchors.evm import ANCHORED_TOPIC, anchor_calldata, event_data, origin_hash
from merkle.anchors.local import make_block
from merkle.anchors.rfc3161 import build_request, load_certificates, token_from_response
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.digests import Digest, make_entry
from merkle.export import to_cose, to_tlog_proof
from merkle.hashing import leaf_hash
from merkle.note import Signer, add_signatures
from merkle.proofs import Tree
from merkle.receipt import AnchorVerifier, build_receipt
from services.anchor.chains.evm_rpc import JsonRpc, RpcError

T = TypeVar("T")

ORIGIN_A = "fuzz.notar.test/log"
ORIGIN_B = "other.notar.test/log"
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
    receipts: list[dict[str, Any]]  # valid receipts
    anchors: dict[str, list[dict[str, Any]]]  # checkpoint body -> every anchor record valid for it
    notes: list[str]  # every signed checkpoint
    ca_pem: str  # the TSA's CA, trusted for rfc3161 anchors
    tsa_responses: list[str]  # base64 DER TimeStampResp, each answering NONCE for a body in `anchors`
    chain: dict[str, Any]  # what ChainState answers: chain_id, head, receipts by tx hash, block hashes
    cose: list[str]  # base64 COSE receipts of `receipts`, by log A's key
    tlog_proofs: list[str]  # tlog-proof texts of `receipts`

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

        def evm(record: Mapping[str, Any], cp: Checkpoint, body: str) -> tuple[bool, str]:
            return drive(verify_online(record, cp, rpc=rpc, confirmations=CONFIRMATIONS))

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


def _evm_anchor(cp: Checkpoint, chain: dict[str, Any]) -> dict[str, Any]:
    contract = _hex("contract", 20)
    tx_hash, block_hash = _hex(f"tx {cp.size}"), _hex(f"block {cp.size}")
    number = 100 + len(chain["receipts"])
    chain["blocks"][str(number)] = block_hash
    chain["head"] = max(chain["head"], number + CONFIRMATIONS + 2)
    chain["receipts"][tx_hash] = {
        "transactionHash": tx_hash,
        "status": "0x1",
        "to": contract,
        "blockNumber": hex(number),
        "blockHash": block_hash,
        "input": "0x" + anchor_calldata(cp).hex(),
        "logs": [
            {
                "address": contract,
                "topics": [ANCHORED_TOPIC, "0x" + origin_hash(cp.origin).hex()],
                "data": "0x" + event_data(cp).hex(),
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
        "tree_size": cp.size,
        "root": "0x" + cp.root.hex(),
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


def _entries(n: int) -> tuple[list[Digest], list[bytes]]:
    digests, salts = [], []
    for i in range(n):
        doc = f"fuzz document {i}".encode()
        if i % 3 == 0:  # every third: SHA-256, unsalted
            digests.append(Digest("sha256", hashlib.sha256(doc).digest()))
            salts.append(b"")
        else:
            digests.append(Digest("blake3", blake3.blake3(doc).digest()))
            salts.append(hashlib.sha256(b"salt %d" % i).digest()[:16])
    return digests, salts


def build_seeds() -> Seeds:
    """Make the seeds (a second or so: openssl makes a CA, a TSA certificate and one token)."""
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
    block: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="notar-fuzz-seeds-") as tmp:
        pki = make_pki(Path(tmp) / "pki")
        ca_pem = pki.ca_cert.read_text()
        plan = [  # (log, clock, entries, size, indices, anchor kinds)
            (log_a, clock_a, 37, 1, [0], ()),
            (log_a, clock_a, 37, 20, [0, 19], ("local",)),
            (log_a, clock_a, 37, 37, [0, 21, 36], ("local", "rfc3161", "evm")),
            (log_b, clock_b, 8, 8, [5], ("local",)),
        ]
        for signer, clock, n, size, indices, kinds in plan:
            digests, salts = _entries(n)
            tree = Tree([leaf_hash(make_entry(d, s)) for d, s in zip(digests, salts, strict=True)])
            cp = Checkpoint(signer.name, size, tree.root(size))
            note = sign_checkpoint(cp, signer, clock, SIGNED_AT + size)
            if size == 37:
                note = add_signatures(note, [witness.at(SIGNED_AT + 40), stranger.at(SIGNED_AT + 41)])
            notes.append(note)
            body = body_of(note)
            records: list[dict[str, Any]] = []
            for kind in kinds:
                if kind == "local":
                    previous = block if block is not None and block["origin"] == cp.origin else None
                    block = make_block(previous=previous, time=SIGNED_AT + size, checkpoint=cp, signer=signer)
                    records.append({"type": "local", **block})
                elif kind == "rfc3161":
                    reply = _openssl_reply(pki, body, Path(tmp))
                    responses.append(base64.b64encode(reply).decode())
                    token = token_from_response(reply, nonce=NONCE, body=body)
                    records.append(
                        {
                            "type": "rfc3161",
                            "tsa": "http://tsa.fuzz.test/",
                            "token": base64.b64encode(token).decode(),
                        }
                    )
                else:
                    records.append(_evm_anchor(cp, chain))
            anchors[body] = records
            for i in indices:
                receipts.append(
                    build_receipt(
                        digest=digests[i],
                        salt=salts[i],
                        origin=cp.origin,
                        index=i,
                        tree_size=size,
                        inclusion=tree.inclusion_proof(i, size),
                        checkpoint=note,
                        anchors=records[: len(records) if i != 36 else 0],
                    )
                )
    return Seeds(
        keys=keys,
        receipts=receipts,
        anchors=anchors,
        notes=notes,
        ca_pem=ca_pem,
        tsa_responses=responses,
        chain=chain,
        cose=[
            base64.b64encode(to_cose(r, log_a)).decode() for r in receipts if r["log"]["origin"] == ORIGIN_A
        ],
        tlog_proofs=[to_tlog_proof(r) for r in receipts],
    )
