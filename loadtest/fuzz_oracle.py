"""The fuzzers' oracle: a receipt may verify only when its evidence is evidence a seed has.

Evidence is read here independently of merkle/ (plain string, int and base64 handling, no call into
the verifier), strictly: JSON types must be exact (an index of 21.0 or true is not 21), hex and
base64 canonical. A receipt's core evidence is its format, digest, salt, subject, entry, origin,
index, tree size, inclusion proof and checkpoint body; besides, every signature line of a trusted
key, and every anchor of a kind the verifier checks (local blocks, RFC 3161 tokens, EVM records with
hex compared lower-case, as the chain does, each with its `aggregate` path when it has one).

A verdict has three statuses (SPEC §5): a check that was not made is not a failed one, and a receipt
with no failed check is valid. `Oracle.judge` says what is wrong with a verdict of "valid", or None:

- the core evidence must be a seed's, and the trusted signature lines a subset of that seed's (a
  witness cosignature may be dropped, an untrusted line added: verifiers ignore unknown keys);
- an anchor reported ok must be of a checked kind and one the seed's checkpoint has; an anchor of
  another kind may be "not checked", never ok;
- what the result reports (origin, index, size, signed time) must be what the seed says.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loadtest.fuzz_seeds import Seeds

DASH = "\u2014 "
LOCAL_FIELDS = {"height", "prev", "time", "origin", "tree_size", "root", "sig"}
CHECKED_KINDS = frozenset({"local", "rfc3161", "evm"})
Evidence = tuple[Any, ...]


def strict_b64(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == text else None


def key_ids(keys: Iterable[str]) -> dict[tuple[str, int], int]:
    """(name, key ID) -> signature type, of verifier key strings name+hexid+base64(type||key)."""
    out = {}
    for k in keys:
        name, hex_id, material = k.split("+", 2)
        out[(name, int(hex_id, 16))] = base64.b64decode(material)[0]
    return out


def note_evidence(note: object, trusted: Mapping[tuple[str, int], int]) -> tuple[str, frozenset[str]] | None:
    """(checkpoint body, the signature lines of trusted keys) of a signed note, or None."""
    if not isinstance(note, str) or not note.endswith("\n") or "\n\n" not in note:
        return None
    split = note.rindex("\n\n")
    body, lines = note[: split + 1], note[split + 2 : -1].split("\n")
    sigs = set()
    for line in lines:
        name, _, encoded = line.removeprefix(DASH).partition(" ")
        raw = strict_b64(encoded)
        if not line.startswith(DASH) or raw is None or len(raw) < 5:
            return None
        if (name, int.from_bytes(raw[:4], "big")) in trusted:
            sigs.add(line)
    return body, frozenset(sigs)


def _int(v: object) -> int | None:
    return v if type(v) is int else None


def aggregate_evidence(record: Mapping[str, Any]) -> Evidence | None:
    """An anchor record's `aggregate` member (size, index, path) exactly, ("none",) when it has
    none, or None when it is not of that shape."""
    if "aggregate" not in record:
        return ("none",)
    value = record["aggregate"]
    if not isinstance(value, Mapping) or set(value) != {"size", "index", "path"}:
        return None
    size, index, path = _int(value["size"]), _int(value["index"]), value["path"]
    if size is None or index is None or not isinstance(path, list):
        return None
    if not all(isinstance(h, str) for h in path):
        return None
    return ("aggregate", size, index, tuple(path))


def anchor_evidence(record: object) -> Evidence | None:
    """What an anchor record of a checked kind proves, canonically; None if it is not well formed."""
    if not isinstance(record, Mapping):
        return None
    kind = record.get("type")
    aggregate = aggregate_evidence(record)
    if aggregate is None:
        return None
    if kind == "local":
        block = {k: v for k, v in record.items() if k not in ("type", "aggregate")}
        if set(block) != LOCAL_FIELDS:
            return None
        ints = [_int(block[k]) for k in ("height", "time", "tree_size")]
        strs = [block[k] for k in ("prev", "origin", "root", "sig")]
        if None in ints or not all(isinstance(s, str) for s in strs):
            return None
        return ("local", *ints, *strs, aggregate)
    if kind == "rfc3161":
        token = strict_b64(record.get("token"))
        evidence = None if token is None else token_evidence(token)
        return None if evidence is None else (*evidence, aggregate)
    if kind == "evm":
        ints = [_int(record.get(k)) for k in ("chain_id", "block_number", "tree_size")]
        strs = [record.get(k) for k in ("contract", "tx_hash", "block_hash", "root")]
        if None in ints or not all(isinstance(s, str) for s in strs):
            return None
        return ("evm", *ints, *(str(s).lower() for s in strs), aggregate)
    return None


def token_evidence(der: bytes) -> Evidence | None:
    """What an RFC 3161 token proves: its TSTInfo and the signed attributes, as encoded. The rest
    of a CMS SignedData is not signed (its digestAlgorithms set, version, unsigned attributes, the
    order of its certificates): a token that differs only there is the same evidence (atheris
    found a token with another digestAlgorithms OID that verifies, as CMS allows)."""
    from asn1crypto import cms

    try:
        sd = cms.ContentInfo.load(der, strict=True)["content"]
        return (
            "rfc3161",
            sd["encap_content_info"]["content"].contents,
            sd["signer_infos"][0]["signed_attrs"].dump(),
        )
    except Exception:  # asn1crypto raises many kinds on garbage: no evidence
        return None


@dataclass(frozen=True)
class Core:
    key: Evidence  # format, digest, salt, subject, entry, origin, index, tree size, inclusion, body
    sigs: frozenset[str]

    @property
    def place(self) -> tuple[Any, Any, Any]:
        """The receipt's origin, index and tree size."""
        return self.key[5], self.key[6], self.key[7]


def core_evidence(receipt: object, trusted: Mapping[tuple[str, int], int]) -> Core | None:
    if not isinstance(receipt, Mapping) or not isinstance(receipt.get("log"), Mapping):
        return None
    log = receipt["log"]
    strs = [receipt.get(k) for k in ("format", "digest", "salt", "subject", "entry")] + [log.get("origin")]
    ints = [_int(log.get("index")), _int(log.get("tree_size"))]
    inclusion = log.get("inclusion")
    note = note_evidence(receipt.get("checkpoint"), trusted)
    if (
        not all(isinstance(s, str) for s in strs)
        or None in ints
        or not isinstance(inclusion, list)
        or not all(isinstance(h, str) for h in inclusion)
        or note is None
    ):
        return None
    return Core((*strs, *ints, tuple(inclusion), note[0]), note[1])


@dataclass(frozen=True)
class _Seed:
    sigs: frozenset[str]
    times: frozenset[int]
    anchors: frozenset[Evidence]


class Oracle:
    def __init__(self, seeds: Seeds, *, checked_kinds: Iterable[str] = CHECKED_KINDS) -> None:
        self.trusted = key_ids(seeds.keys)
        self.checked = frozenset(checked_kinds)
        self.seeds: dict[Evidence, _Seed] = {}
        for r in seeds.receipts:
            core = core_evidence(r, self.trusted)
            assert core is not None, "a seed receipt has no evidence"
            pool = seeds.anchors.get(core.key[-1], [])
            evidence = frozenset(e for e in map(anchor_evidence, pool) if e is not None)
            times = frozenset(self.cosignature_times(core.sigs))
            self.seeds[core.key] = _Seed(core.sigs, times, evidence)

    def cosignature_times(self, lines: Iterable[str]) -> list[int]:
        """The timestamps of trusted cosignature (type 0x04) lines."""
        out = []
        for line in lines:
            name, _, encoded = line.removeprefix(DASH).partition(" ")
            raw = base64.b64decode(encoded)
            if self.trusted[(name, int.from_bytes(raw[:4], "big"))] == 0x04:
                out.append(int.from_bytes(raw[4:12], "big"))
        return out

    def judge(self, receipt: object, result: Any) -> str | None:
        """What is wrong with `result` (a ReceiptResult) for `receipt`, or None when nothing is."""
        if not result.valid:
            return None
        core = core_evidence(receipt, self.trusted)
        if core is None:
            return "valid, yet its evidence is not well formed"
        seed = self.seeds.get(core.key)
        if seed is None:
            return f"valid with core evidence no seed has: {core.key[:7]!r}"
        if not core.sigs <= seed.sigs:
            return f"valid with trusted signatures no seed has: {sorted(core.sigs - seed.sigs)}"
        if (result.origin, result.index, result.tree_size) != core.place:
            return f"reports {(result.origin, result.index, result.tree_size)}, the receipt says {core.place}"
        if result.signed_time is not None and result.signed_time not in seed.times:
            return f"reports signed time {result.signed_time}, no trusted cosignature says so"
        assert isinstance(receipt, Mapping)
        for i, record in enumerate(receipt.get("anchors", [])):
            kind = record["type"]
            check = result.check(f"anchor {i + 1} ({kind[:40]})")
            if check is None:
                return f"anchor {i + 1} ({kind}) has no check"
            if check.status.value != "ok":
                continue  # not checked (a valid receipt has no failed check)
            if kind not in self.checked:
                return f"anchor {i + 1} ({kind}) of an unchecked kind passes as checked"
            if anchor_evidence(record) not in seed.anchors:
                return f"anchor {i + 1} ({kind}) passes, yet no seed has it: {record!r:.300}"
        return None
