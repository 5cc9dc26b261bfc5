"""The fuzz targets: each takes one crafted input and raises when the code under test misbehaves.

Misbehaving is an exception other than the ValueError a parser documents (the receipt verifier
documents none), or a `Finding`: a tampered input that verifies (see loadtest/fuzz_oracle.py) or a
parser that accepts something it would not write back byte for byte (parsing is meant to be
strict). Byte-level entry points (`BYTE_TARGETS`, for atheris) pick a sub-target by the first byte.

(a) receipts: `receipt` (an object, as verify_receipt gets it) and `receipt_bytes` (JSON bytes, read
    by `Receipt.from_json` as `notar verify` reads a file: refused with ValueError, or read into a
    receipt that writes back and reads again to itself), checked with every anchor kind's verifier;
(b) signed notes, checkpoints and cosignatures: `note`, and verifier key strings: `key`;
(c) anchors: RFC 3161 tokens (`token`) and TimeStampResp (`tsa_response`) as DER, anchor records
    against each kind's verifier (`anchor_record`), and the chain's answers to the EVM check
    (`chain_answer`: what a hostile JSON-RPC node could send `notar verify --online`);
(d) exports: `tlog_proof` texts and COSE receipts (`cose`);
(e) SCITT signed statements (`statement`): the parser of POST /entries, the entry, and issuer
    signatures (a statement no seed signed must not verify under the seeds' issuer keys).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import cbor2
import orjson

from loadtest.fuzz_oracle import Oracle, anchor_evidence, key_ids, note_evidence, token_evidence
from loadtest.fuzz_seeds import CHAIN_ID, CONFIRMATIONS, NONCE, Seeds
from merkle.aggregate import AnchorTarget
from merkle.anchors.evm import check_receipt
from merkle.anchors.rfc3161 import load_certificates, token_from_response, verify_token
from merkle.cbor import Tag, encode
from merkle.checkpoint import open_checkpoint, parse_checkpoint
from merkle.checks import Status
from merkle.cosignature import CosignatureVerifier, signature_timestamp, verifier_from_key
from merkle.export import TLOG_PROOF_HEADER, parse_tlog_proof, verify_cose
from merkle.note import NoteVerifier, Verifier, parse_note
from merkle.receipt import Anchor, Receipt
from merkle.scitt import StatementError, load_issuer_key, parse_statement, verify_signature
from merkle.verdict import verify_receipt


class Finding(AssertionError):
    """A verdict or a parse the oracle refuses."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Targets:
    def __init__(self, seeds: Seeds) -> None:
        self.seeds = seeds
        self.keys = seeds.keys
        self.verifiers = seeds.anchor_verifiers()
        self.oracle = Oracle(seeds)
        self.trusted = key_ids(seeds.keys)
        verifiers = [verifier_from_key(k) for k in seeds.keys]
        self.clocks = [v for v in verifiers if isinstance(v, CosignatureVerifier)]
        self.logs: list[NoteVerifier] = [v for v in verifiers if not isinstance(v, CosignatureVerifier)]
        self.cas = load_certificates(seeds.ca_pem.encode())
        self.checkpoints = {body: parse_checkpoint(body) for body in seeds.anchors}
        self.notes: dict[str, frozenset[str]] = {}
        for note in seeds.notes:
            body, sigs = note_evidence(note, self.trusted) or ("", frozenset())
            self.notes[body] = sigs
        self.times = {t for sigs in self.notes.values() for t in self.oracle.cosignature_times(sigs)}
        self.tokens = set(seeds.tokens())
        self.stamped: dict[str, set[Any]] = {}  # text -> the evidence of the tokens stamping it
        for body, records in seeds.anchors.items():
            for r in records:
                if r["type"] == "rfc3161":
                    text = AnchorTarget.for_record(r, self.checkpoints[body], body).stamped
                    self.stamped.setdefault(text, set()).add(token_evidence(base64.b64decode(r["token"])))
        self.cose_log = next(
            v for v in self.logs if isinstance(v, Verifier) and v.name == seeds.receipts[0]["log"]["origin"]
        )
        self.cose_seeds = {self._cose_evidence(base64.b64decode(c)) for c in seeds.cose}
        self.evm_record = next(
            a for recs in seeds.anchors.values() for a in recs if a["type"] == "evm" and "aggregate" not in a
        )
        self.issuer_keys = [load_issuer_key(k.encode()) for k in seeds.issuer_keys]
        self.signed = {_signed_parts(base64.b64decode(b)) for b in seeds.statements}
        self.executions = 0

    # (a) receipts ---------------------------------------------------------------------------------

    def receipt(self, receipt: Any, digest: str | None = None) -> None:
        self.executions += 1
        result = verify_receipt(receipt, keys=self.keys, digest=digest, anchor_verifiers=self.verifiers)
        problem = self.oracle.judge(receipt, result)
        if problem is None and digest is not None and result.valid:
            assert isinstance(receipt, Mapping)
            if receipt["digest"] != digest:
                problem = f"valid for digest {digest}, the receipt is for {receipt['digest']}"
        if problem is not None:
            raise Finding(problem)

    def receipt_bytes(self, data: bytes) -> None:
        try:
            parsed = Receipt.from_json(data)
        except ValueError:
            return
        again = parsed.to_json()
        if Receipt.from_json(again) != parsed or again != Receipt.from_obj(orjson.loads(data)).to_json():
            raise Finding(f"Receipt.from_json read {data[:300]!r} into a receipt that does not read back")
        self.receipt(orjson.loads(data))

    # (b) signed notes, checkpoints, cosignatures, keys --------------------------------------------

    def note(self, note: str | bytes) -> None:
        self.executions += 1
        try:
            parsed = parse_note(note)
        except ValueError:
            return
        text = note if isinstance(note, str) else note.decode("utf-8")
        if parsed.text + "\n" + "".join(s.line() for s in parsed.signatures) != text:
            raise Finding(f"parse_note accepted a note it writes back otherwise: {text[:300]!r}")
        for sig in parsed.signatures:
            for clock in self.clocks:
                clock.verify(parsed.text.encode(), sig.signature)
            with contextlib.suppress(ValueError):
                signature_timestamp(sig.signature)
        try:
            cp = parse_checkpoint(parsed.text)
        except ValueError:
            return
        if cp.format() != parsed.text:
            raise Finding(f"parse_checkpoint accepted a body it writes back otherwise: {parsed.text!r:.300}")
        opened = open_checkpoint(note, origin=cp.origin, log_verifiers=self.logs, clock_verifiers=self.clocks)
        if not opened.note.verified:
            return
        lines = {s.line()[:-1] for s in opened.note.verified}
        if parsed.text not in self.notes or not lines <= self.notes[parsed.text]:
            raise Finding(f"a signature of a trusted key verifies on a note no seed has: {text[:300]!r}")
        if opened.cosigned_time is not None and opened.cosigned_time not in self.times:
            raise Finding(f"cosigned time {opened.cosigned_time} is no seed's")

    def key(self, text: str) -> None:
        self.executions += 1
        try:
            v = verifier_from_key(text)
        except ValueError:
            return
        if v.to_key() != text:
            raise Finding(f"verifier_from_key accepted a key it writes back otherwise: {text!r:.200}")

    # (c) anchors ----------------------------------------------------------------------------------

    def token(self, der: bytes) -> None:
        """Against every text a seed's token stamps (checkpoint bodies, aggregates' texts)."""
        self.executions += 1
        for text, pool in self.stamped.items():
            try:
                verify_token(der, body=text, trusted_cas=self.cas)
            except ValueError:
                continue
            if token_evidence(der) not in pool:
                raise Finding(f"a token the TSA did not make for this text verifies: {_b64(der)}")

    def tsa_response(self, der: bytes) -> None:
        self.executions += 1
        for body in self.checkpoints:
            try:
                token = token_from_response(der, nonce=NONCE, body=body)
            except ValueError:
                continue
            self.token(token)

    def anchor_record(self, record: object) -> None:
        """Every kind's verifier on the record (as if its type said so), against every checkpoint,
        as verify_receipt calls it: for the target the record names (the checkpoint, or the
        aggregate its path leads to), once what it states of that target fits."""
        self.executions += 1
        if not isinstance(record, dict):
            return
        for body, cp in self.checkpoints.items():
            for kind, verifier in self.verifiers.items():
                fields = {**record, "type": kind}
                try:
                    anchor = Anchor.from_obj(fields)
                    target = AnchorTarget.for_record(fields, cp, body)
                    if target.mismatch(fields) is not None:
                        continue
                    verdict = verifier(anchor, target)
                except ValueError:
                    continue
                pool = {anchor_evidence(a) for a in self.seeds.anchors[body]}
                if verdict.status is Status.OK and anchor_evidence(fields) not in pool:
                    raise Finding(f"a {kind} anchor no seed has verifies: {record!r:.300}")

    def chain_answer(self, tx_receipt: object) -> None:
        """What a JSON-RPC node answers to eth_getTransactionReceipt, checked as the EVM check would."""
        self.executions += 1
        if not isinstance(tx_receipt, dict):
            return
        body, cp = next((b, c) for b, c in self.checkpoints.items() if c.size == self.evm_record["tree_size"])
        with contextlib.suppress(ValueError):
            check_receipt(
                self.evm_record,
                AnchorTarget.of(cp, body),
                tx_receipt=tx_receipt,
                chain_id=CHAIN_ID,
                head=self.seeds.chain["head"],
                canonical_hash=self.evm_record["block_hash"],
                confirmations=CONFIRMATIONS,
            )

    # (d) exports ----------------------------------------------------------------------------------

    def tlog_proof(self, text: str) -> None:
        self.executions += 1
        try:
            p = parse_tlog_proof(text)
        except ValueError:
            return
        lines = [TLOG_PROOF_HEADER, f"extra {_b64(p.extra)}", f"index {p.index}"]
        again = "\n".join([*lines, *map(_b64, p.proof)]) + "\n\n" + p.checkpoint
        if again != text:
            raise Finding(f"parse_tlog_proof accepted a text it writes back otherwise: {text[:300]!r}")

    def _cose_evidence(self, data: bytes) -> tuple[Any, ...]:
        """The root, entry and tree size of a COSE receipt that verifies. The size is signed in
        notar's profile (merkle.cose); RFC 9942 signs the root alone, and one path leads to the
        same root from several (index, size) pairs (index 0 of any size from 17 to 32 with a
        5-hash path), so the index in the proof stays a claim."""
        c = verify_cose(data, self.cose_log)
        return (c.root, c.entry, c.tree_size)

    def cose(self, data: bytes) -> None:
        self.executions += 1
        try:
            evidence = self._cose_evidence(data)
        except ValueError:
            return
        if evidence not in self.cose_seeds:
            raise Finding(f"a COSE receipt no seed has verifies: {evidence!r:.300}")

    # (e) SCITT statements ----------------------------------------------------------------------------
    def statement(self, data: bytes) -> None:
        """A statement is refused with StatementError, or parsed into one whose entry is that of
        its deterministic re-encoding without the unprotected header, and whose re-encoding with it
        parses again to the same entry; and it verifies
        under an issuer key only if a seed with its signed parts was signed by it."""
        self.executions += 1
        try:
            s = parse_statement(data, max_size=1 << 16)
        except StatementError:
            return
        bare = encode(Tag(18, [s.protected_raw, {}, s.payload, s.signature]))
        # The same statement in cbor2's canonical encoding (the unprotected header may hold what
        # merkle.cbor never encodes: floats, tags), which must parse to the same entry.
        try:
            again = cbor2.dumps(cbor2.loads(data), canonical=True)
        except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError):
            again = bare
        if s.entry != b"\x03" + hashlib.sha256(bare).digest() or parse_statement(again).entry != s.entry:
            raise Finding(f"a statement's entry is not that of its re-encoding: {data[:200]!r}")
        for key in self.issuer_keys:
            try:
                verify_signature(s, key)
            except StatementError:
                continue
            if (s.protected_raw, s.payload, s.signature) not in self.signed:
                raise Finding(f"a statement no seed has verifies under an issuer key: {data[:300]!r}")


def _signed_parts(data: bytes) -> tuple[bytes, bytes, bytes]:
    s = parse_statement(data)
    return (s.protected_raw, s.payload, s.signature)


def _json(fn: Callable[[object], None]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        fn(value)

    return run


def _text(fn: Callable[[str], None]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        fn(text)

    return run


def byte_targets(t: Targets) -> dict[str, list[Callable[[bytes], None]]]:
    """Per target group, its sub-targets; the first input byte picks one (modulo their number)."""
    return {
        "receipt": [t.receipt_bytes],
        "note": [t.note, _text(t.key)],
        "anchors": [t.token, t.tsa_response, _json(t.anchor_record), _json(t.chain_answer)],
        "export": [_text(t.tlog_proof), t.cose],
        "statement": [t.statement],
    }


def byte_seeds(seeds: Seeds) -> dict[str, list[bytes]]:
    """Seed inputs of each group, prefixed with their sub-target's byte where there are several."""
    records = [a for recs in seeds.anchors.values() for a in recs]
    return {
        "receipt": [orjson.dumps(r) for r in seeds.receipts]
        + [orjson.dumps(r, option=orjson.OPT_INDENT_2) for r in seeds.receipts[:2]],
        "note": [b"\x00" + n.encode() for n in seeds.notes] + [b"\x01" + k.encode() for k in seeds.keys],
        "anchors": [b"\x00" + t for t in seeds.tokens()]
        + [b"\x01" + base64.b64decode(r) for r in seeds.tsa_responses]
        + [b"\x02" + orjson.dumps(a) for a in records]
        + [b"\x03" + orjson.dumps(r) for r in seeds.chain["receipts"].values()],
        "export": [b"\x00" + t.encode() for t in seeds.tlog_proofs]
        + [b"\x01" + base64.b64decode(c) for c in seeds.cose],
        "statement": [base64.b64decode(b) for b in seeds.statements],
    }


def run_bytes(group: list[Callable[[bytes], None]], data: bytes) -> None:
    if len(group) == 1:
        group[0](data)
    elif data:
        group[data[0] % len(group)](data[1:])
