"""The Receipt type (SPEC §5, §9): canonical JSON both ways, strict reading, anchors carried byte for
byte, upgrades, and the batch writer's bytes equal to each receipt's own."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import RECEIPT_FORMAT, Anchor, Digest, Receipt, make_entry, write_receipts
from merkle.receipt_writer import NodeTexts
from tests.merkle.logs import DELETE, MEMBER_PATHS, ORIGIN, SUBJECT, Log, make_log, set_member

LOG = make_log()
UNKNOWN = {"type": "x-future", "nested": {"z": [1, 2.5, None, True], "a": "ünïcode ✓"}, "big": 2**63}
RECEIPT = LOG.receipt(anchors=[LOG.block(), UNKNOWN])


def reference_obj(r: Receipt) -> dict[str, Any]:
    """The receipt as SPEC §5 shows it, written member by member."""
    return {
        "format": "notar.receipt.v2",
        "digest": str(r.digest),
        "salt": r.salt.hex(),
        "subject": r.subject,
        "entry": r.entry.hex(),
        "log": {
            "origin": r.origin,
            "index": r.index,
            "tree_size": r.tree_size,
            "inclusion": [h.hex() for h in r.inclusion],
        },
        "checkpoint": r.checkpoint,
        "anchors": [json.loads(a.raw) for a in r.anchors],
    }


def test_canonical_form() -> None:
    data = RECEIPT.to_json()
    assert data == orjson.dumps(reference_obj(RECEIPT))
    order: list[list[str]] = []

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        order.append([k for k, _ in members])
        return dict(members)

    json.loads(data, object_pairs_hook=pairs)
    assert order[-1] == ["format", "digest", "salt", "subject", "entry", "log", "checkpoint", "anchors"]
    assert ["origin", "index", "tree_size", "inclusion"] in order
    assert list(UNKNOWN) in order  # an anchor's members in the order they came
    assert b"\xc3\xbcn\xc3\xafcode \xe2\x9c\x93" in data  # non-ASCII as it is
    assert b": " not in data and b", " not in data.replace(b"\n", b"")[: data.find(b'"checkpoint"')]


def test_round_trips() -> None:
    data = RECEIPT.to_json()
    assert Receipt.from_json(data) == RECEIPT
    assert Receipt.from_json(data.decode()) == RECEIPT
    assert Receipt.from_obj(json.loads(data)) == RECEIPT
    assert Receipt.from_json(data).to_json() == data
    assert Receipt.from_json(data).anchors[1].fields() == UNKNOWN


def test_an_unknown_anchor_is_kept_byte_for_byte() -> None:
    raw = b'{"type":"x-future","z":1e-7,"a":[{"\xc3\xa9":-0.0}],"n":null}'
    anchor = Anchor(raw)
    assert anchor.type == "x-future" and anchor.raw == raw
    r = dataclasses.replace(RECEIPT, anchors=(anchor,))
    assert raw in r.to_json() and Receipt.from_json(r.to_json()).anchors == (anchor,)


def test_receipts_are_immutable_and_hashable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECEIPT.index = 3  # type: ignore[misc]
    assert isinstance(RECEIPT.inclusion, tuple) and isinstance(RECEIPT.anchors, tuple)
    assert len({RECEIPT, Receipt.from_json(RECEIPT.to_json())}) == 1
    fields = RECEIPT.anchors[1].fields()
    fields["type"] = "changed"
    assert RECEIPT.anchors[1].type == "x-future"


def test_build_computes_the_entry() -> None:
    r = LOG.receipt(index=3)
    assert r.entry == make_entry(r.digest, r.salt, SUBJECT) and r.subject == SUBJECT


def test_upgrade_keeps_the_notarization() -> None:
    bigger = make_log(n=40)
    r = LOG.receipt(index=3)
    up = r.upgraded(
        checkpoint=bigger.note, tree_size=40, inclusion=bigger.tree.inclusion_proof(3), anchors=[UNKNOWN]
    )
    assert (up.digest, up.salt, up.subject, up.entry, up.origin, up.index) == (
        r.digest,
        r.salt,
        r.subject,
        r.entry,
        r.origin,
        r.index,
    )
    assert (up.tree_size, up.checkpoint, up.anchors[0].type) == (40, bigger.note, "x-future")
    assert r.upgraded(checkpoint=r.checkpoint, tree_size=r.tree_size, inclusion=r.inclusion) == r
    with pytest.raises(ValueError, match="smaller tree"):
        r.upgraded(checkpoint=r.checkpoint, tree_size=36, inclusion=r.inclusion)


def _obj() -> dict[str, Any]:
    return copy.deepcopy(reference_obj(RECEIPT))


def _with(path: str, value: Any) -> dict[str, Any]:
    obj = _obj()
    set_member(obj, path, value)
    return obj


TEXT = RECEIPT.to_json().decode()

MALFORMED: list[tuple[str, Any, str]] = [
    ("not an object", [1], "a JSON object, not a list"),
    ("a string", "receipt", "a JSON object, not a string"),
    ("v1", _with("format", "notar.receipt.v1"), "notar.receipt.v1 is a pre-release format"),
    ("v3", _with("format", "notar.receipt.v3"), "format 'notar.receipt.v3' is not 'notar.receipt.v2'"),
    ("format missing", _with("format", DELETE), "'format' is missing"),
    ("format a number", _with("format", 2), "format a number is not"),
    ("unknown member", {**_obj(), "comment": "hi"}, "unknown member 'comment'"),
    ("salt missing", _with("salt", DELETE), "'salt' is missing"),
    ("anchors missing", _with("anchors", DELETE), "'anchors' is missing"),
    ("unknown log member", _with("log.extra", 1), "unknown member 'log.extra'"),
    ("log index missing", _with("log.index", DELETE), "'log.index' is missing"),
    ("digest upper case", _with("digest", str(RECEIPT.digest).upper()), "digest: not a digest"),
    ("digest md5", _with("digest", "md5:" + "00" * 16), "digest: not a digest"),
    ("salt short", _with("salt", "00" * 15), "salt must be 32 lowercase hex"),
    ("salt upper", _with("salt", "AB" * 16), "salt must be 32 lowercase hex"),
    ("salt not hex", _with("salt", "zz" * 16), "salt must be 32 lowercase hex"),
    ("salt a number", _with("salt", 5), "salt must be 32 lowercase hex"),
    ("subject empty", _with("subject", ""), "subject: "),
    ("subject long", _with("subject", "x" * 65), "not 65"),
    ("subject a list", _with("subject", ["acme"]), "subject must be a string, not a list"),
    ("entry v1 length", _with("entry", "1e20" + "00" * 48), "entry must be 66 lowercase hex"),
    ("entry odd", _with("entry", "0" * 65), "entry must be 66 lowercase hex"),
    ("log not object", _with("log", []), "log must be an object, not a list"),
    ("origin empty", _with("log.origin", ""), "log.origin must be a non-empty string"),
    ("origin number", _with("log.origin", 1), "log.origin must be a string, not a number"),
    ("index bool", _with("log.index", True), "log.index must be an integer, not a boolean"),
    ("index float", _with("log.index", 21.0), "log.index must be an integer, not a number"),
    ("index negative", _with("log.index", -1), "log.index must be an integer from 0"),
    ("size too big", _with("log.tree_size", 2**63), "log.tree_size must be an integer from 0"),
    ("size string", _with("log.tree_size", "37"), "log.tree_size must be an integer, not a string"),
    ("inclusion not list", _with("log.inclusion", "ab"), "log.inclusion must be a list"),
    ("inclusion bad hash", _with("log.inclusion", ["00" * 31]), r"log.inclusion\[0\] must be 64"),
    ("inclusion too long", _with("log.inclusion", ["00" * 32] * 65), "more than 64 hashes"),
    (
        "checkpoint null",
        _with("checkpoint", None),
        "checkpoint must be the signed note as a string, not null",
    ),
    ("anchors object", _with("anchors", {}), "anchors must be a list, not an object"),
    ("17 anchors", _with("anchors", [UNKNOWN] * 17), "at most 16 anchors, not 17"),
    ("anchor not object", _with("anchors", [1]), r"anchors\[0\]: an anchor record is a JSON object"),
    ("anchor without type", _with("anchors", [{"x": 1}]), r"anchors\[0\]: .*'type'"),
    ("anchor type number", _with("anchors", [UNKNOWN, {"type": 3}]), r"anchors\[1\]: .*'type'"),
    ("anchor type empty", _with("anchors", [{"type": ""}]), r"anchors\[0\]: .*'type'"),
]


@pytest.mark.parametrize(("what", "obj", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_receipts_are_refused_naming_what(what: str, obj: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        Receipt.from_json(orjson.dumps(obj))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=message):
        Receipt.from_obj(obj)


def test_sixteen_anchors_are_fine() -> None:
    assert len(Receipt.from_obj(_with("anchors", [UNKNOWN] * 16)).anchors) == 16


@pytest.mark.parametrize(
    ("text", "member"),
    [
        (TEXT.replace('"digest":', '"digest":"blake3:' + "00" * 32 + '","digest":', 1), "digest"),
        (TEXT.replace('"index":', '"index":1,"index":', 1), "log.index"),
        (TEXT.replace('"type":"local"', '"type":"local","type":"evm"', 1), "anchors[0].type"),
        (TEXT.replace('"x-future","nested":{', '"x-future","nested":{"a":0,', 1), "anchors[1].nested.a"),
    ],
)
def test_a_member_named_twice_anywhere_is_malformed(text: str, member: str) -> None:
    with pytest.raises(ValueError, match="named twice") as info:
        Receipt.from_json(text)
    assert repr(member) in str(info.value)


@pytest.mark.parametrize("bad", [b"", b"{", b"\xff", b'{"format":NaN}', "[" * 2000 + "]" * 2000])
def test_text_that_is_not_json(bad: bytes | str) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        Receipt.from_json(bad)


def test_constructor_checks_shape_too() -> None:
    base = dataclasses.asdict(RECEIPT)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"salt": b"x"}, "salt must be 16 bytes"),
        ({"subject": "x" * 65}, "subject"),
        ({"entry": RECEIPT.entry[:-1]}, "entry must be 33 bytes"),
        ({"origin": ""}, "log.origin"),
        ({"index": True}, "log.index"),
        ({"inclusion": (b"x",)}, r"log.inclusion\[0\]"),
        ({"checkpoint": "\ud800"}, "checkpoint is not valid UTF-8"),
        ({"anchors": ({"type": "x"},)}, "Anchor records"),
        ({"digest": str(RECEIPT.digest)}, "digest must be a Digest"),
    ]
    for change, message in changes:
        kwargs: dict[str, Any] = {**base, "digest": RECEIPT.digest, "anchors": RECEIPT.anchors, **change}
        with pytest.raises(ValueError, match=message):
            Receipt(**kwargs)


def test_anchor_records_hold_json_only() -> None:
    records: list[dict[Any, Any]] = [
        {"type": "x", "v": (1, 2)},
        {"type": "x", "v": float("nan")},
        {"type": "x", 1: 2},
        {"type": "x", "v": 2**70},
        {"type": "x", "v": b"bytes"},
        {"type": "x", "v": "\ud800"},
    ]
    for bad in records:
        with pytest.raises(ValueError):
            Anchor.from_obj(bad)
    with pytest.raises(ValueError, match="canonical"):
        Anchor(b'{"type": "x"}')
    with pytest.raises(ValueError):
        Anchor(b'["type"]')


# --------------------------------------------------------------------------- properties
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
subjects = texts.filter(lambda s: 1 <= len(s.encode()) <= 64)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
anchors = st.builds(
    lambda kind, rest: {"type": kind, **{k: v for k, v in rest.items() if k != "type"}},
    texts.filter(bool),
    st.dictionaries(texts, json_values, max_size=3),
)
receipts = st.builds(
    Receipt,
    st.builds(Digest, st.sampled_from(["blake3", "sha256"]), st.binary(min_size=32, max_size=32)),
    st.binary(min_size=16, max_size=16),
    subjects,
    st.binary(min_size=33, max_size=33),
    texts.filter(bool),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    st.lists(st.binary(min_size=32, max_size=32), max_size=4).map(tuple),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=60),
    st.lists(anchors.map(Anchor.from_obj), max_size=3).map(tuple),
)


@settings(max_examples=200)
@given(receipts)
def test_any_receipt_round_trips_both_ways(r: Receipt) -> None:
    data = r.to_json()
    assert data == orjson.dumps(reference_obj(r))
    back = Receipt.from_json(data)
    assert back == r and back.to_json() == data


MEMBERS = [*MEMBER_PATHS, "new"]


@settings(max_examples=400)
@given(st.sampled_from(MEMBERS), json_values)
def test_any_json_in_any_member_reads_or_is_a_value_error(path: str, value: Any) -> None:
    obj = _with(path, value) if path != "new" else {**_obj(), "new": value}
    try:
        r = Receipt.from_json(orjson.dumps(obj))
    except ValueError as e:
        assert "\n" not in str(e)
        return
    assert Receipt.from_json(r.to_json()) == r
    assert r.to_json() == orjson.dumps(reference_obj(r))


@given(json_values)
def test_any_json_document_reads_or_is_a_value_error(value: Any) -> None:
    with contextlib.suppress(ValueError):
        Receipt.from_json(orjson.dumps(value))


# --------------------------------------------------------------------------- the batch writer
OTHER = make_log(n=40)


def _proven(log: Log, index: int) -> Receipt:
    """A Receipt is a Proven too: it has index, entry, salt, tree_size, inclusion and checkpoint."""
    return log.receipt(index)


def test_batch_writer_is_byte_identical_to_each_receipt() -> None:
    # a batch proven against two checkpoints (a request split over two sequencer batches), with anchors
    proven = [_proven(LOG, i) for i in range(37)] + [_proven(OTHER, i) for i in range(5)]
    anchors = [Anchor.from_obj(LOG.block()), Anchor.from_obj(UNKNOWN)]
    want = [dataclasses.replace(p, anchors=tuple(anchors)).to_json() for p in proven]
    body = write_receipts(
        subject=SUBJECT,
        origin=ORIGIN,
        digests=[p.digest for p in proven],
        proven=proven,
        anchors=anchors,
        head=b'{"receipts":[',
        tail=b"]}",
    )
    assert body == b'{"receipts":[' + b",".join(want) + b"]}"
    assert body == orjson.dumps({"receipts": [reference_obj(Receipt.from_json(w)) for w in want]})
    as_text = write_receipts(
        subject=SUBJECT,
        origin=ORIGIN,
        digests=[str(p.digest) for p in proven],
        proven=proven,
        anchors=anchors,
    )
    assert as_text == b"[" + b",".join(want) + b"]"
    assert write_receipts(subject=SUBJECT, origin=ORIGIN, digests=[], proven=[]) == b"[]"


def test_node_texts_shared_between_calls_change_no_byte() -> None:
    # the anchor shares one NodeTexts between the answers of a batch: each answer's bytes must be
    # those of a writer on its own, whichever nodes earlier answers (of other trees too) left in it
    shared = NodeTexts()
    for proven in ([_proven(LOG, i) for i in range(0, 37, 3)], [_proven(OTHER, i) for i in range(5)],
                   [_proven(LOG, i) for i in range(37)]):
        kwargs: dict[str, Any] = {"subject": SUBJECT, "origin": ORIGIN, "digests": [p.digest for p in proven],
                                  "proven": proven}
        alone = write_receipts(**kwargs)
        assert write_receipts(**kwargs, node_texts=shared) == alone
        assert alone == b"[" + b",".join(dataclasses.replace(p, anchors=()).to_json() for p in proven) + b"]"
    everything = [*(_proven(LOG, i) for i in range(37)), *(_proven(OTHER, i) for i in range(5))]
    assert set(shared) == {h for p in everything for h in p.inclusion}
    with pytest.raises(ValueError, match="32-byte hash"):
        shared[b"short"]  # only hashes get a text


def test_batch_writer_escapes_what_it_shares() -> None:
    log = make_log('o"\\ü/log', n=3)
    p = log.receipt(1)
    r = dataclasses.replace(p, subject='t"\\ü')
    got = write_receipts(
        subject='t"\\ü', origin='o"\\ü/log', digests=[p.digest], proven=[p], head=b"", tail=b""
    )
    assert got == r.to_json() == orjson.dumps(reference_obj(r))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"digests": ["blake3:" + "AB" * 32]}, "not a digest"),
        ({"digests": []}, "1 proven entries"),
        ({"subject": ""}, "1 to 64 bytes"),
        ({"origin": ""}, "log.origin"),
        ({"proven": [dataclasses.replace(RECEIPT, anchors=())]}, None),
        ({"anchors": [UNKNOWN]}, "Anchor records"),
    ],
)
def test_batch_writer_refuses_bad_input(change: dict[str, Any], message: str | None) -> None:
    kwargs: dict[str, Any] = {
        "subject": SUBJECT,
        "origin": ORIGIN,
        "digests": [RECEIPT.digest],
        "proven": [RECEIPT],
    }
    kwargs.update(change)
    if message is None:
        assert write_receipts(**kwargs) == b"[" + dataclasses.replace(RECEIPT, anchors=()).to_json() + b"]"
    else:
        with pytest.raises(ValueError, match=message):
            write_receipts(**kwargs)


@dataclasses.dataclass
class Raw:
    index: Any = 1
    entry: Any = b"\x02" * 33
    salt: Any = b"s" * 16
    tree_size: Any = 2
    inclusion: Any = (b"h" * 32,)
    checkpoint: Any = "note\n"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Raw(salt=b"s"), "salt must be 16 bytes"),
        (Raw(entry=b"\x02" * 34), "entry 33 bytes"),
        (Raw(index=True), "log.index and log.tree_size"),
        (Raw(tree_size=-1), "log.index and log.tree_size"),
        (Raw(inclusion=(b"h" * 31,)), "32-byte hash"),
        (Raw(inclusion=(b"h" * 32,) * 65), "more than 64"),
        (Raw(checkpoint="\ud800"), "checkpoint is not valid UTF-8"),
        (Raw(checkpoint=None), "checkpoint must be"),
    ],
)
def test_batch_writer_checks_each_proven_entry(bad: Raw, message: str) -> None:
    write_receipts(subject=SUBJECT, origin=ORIGIN, digests=[RECEIPT.digest], proven=[Raw()])
    with pytest.raises(ValueError, match=message):
        write_receipts(subject=SUBJECT, origin=ORIGIN, digests=[RECEIPT.digest], proven=[bad])


def test_format_constant() -> None:
    assert RECEIPT_FORMAT == "notar.receipt.v2" and RECEIPT.to_json().startswith(
        b'{"format":"notar.receipt.v2",'
    )
