"""verify_receipt (SPEC §5): one check per name, each ok / failed / not checked with its reason;
every tampering fails the check that names it; origin = key name; anchor times."""

from __future__ import annotations

import base64
import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle import Anchor, AnchorTarget, AnchorVerdict, Check, Receipt, Signer, Status, verify_receipt
from merkle.checkpoint import sign_checkpoint
from merkle.cosignature import CosignatureSigner
from tests.merkle.logs import MEMBER_PATHS, ORIGIN, SIGNED_AT, make_log, set_member

LOG = make_log()
RECEIPT = LOG.receipt(anchors=[LOG.block()])
DOC = LOG.documents[21]
OBJ: dict[str, Any] = orjson.loads(RECEIPT.to_json())
NAMES = [
    "format",
    "document",
    "entry",
    "checkpoint",
    "log signature",
    "inclusion",
    "signed time",
    "anchor 1 (local)",
]


def statuses(result: Any) -> dict[str, str]:
    return {c.name: c.status.value for c in result.checks}


def test_a_valid_receipt_passes_every_check() -> None:
    result = verify_receipt(RECEIPT, keys=LOG.keys, document=DOC)
    assert [c.name for c in result.checks] == NAMES
    assert all(c.status is Status.OK and c.ok for c in result.checks), result.checks
    assert result.valid and result.unchecked == [] and result.failed == []
    assert (result.signed_time, result.log_key, result.clock_key) == (SIGNED_AT, ORIGIN, ORIGIN + "/clock")
    assert (result.origin, result.index, result.tree_size) == (ORIGIN, 21, 37)
    assert "cosigned by notar.localhost/log/clock" in result.checks[6].detail


@pytest.mark.parametrize("form", [RECEIPT, RECEIPT.to_json(), RECEIPT.to_json().decode(), OBJ])
def test_every_form_of_a_receipt_gives_the_same_verdict(form: Any) -> None:
    assert verify_receipt(form, keys=LOG.keys, document=DOC) == verify_receipt(
        RECEIPT, keys=LOG.keys, document=DOC
    )


def test_what_was_not_given_is_not_checked_and_said_so() -> None:
    result = verify_receipt(RECEIPT, keys=[LOG.signer.verifier().to_key()])
    assert statuses(result)["document"] == "not checked" and statuses(result)["signed time"] == "not checked"
    assert result.check("document").detail.startswith("no document given")  # type: ignore[union-attr]
    assert result.check("signed time").detail.startswith("no clock key given")  # type: ignore[union-attr]
    assert result.valid and [c.name for c in result.unchecked] == ["document", "signed time"]
    assert not result.check("document").ok  # type: ignore[union-attr]  # ok is true only for ok
    assert result.signed_time is None and result.clock_key is None


def test_document_given_as_chunks_or_as_digest() -> None:
    assert verify_receipt(RECEIPT, keys=LOG.keys, document=iter([DOC[:3], DOC[3:]])).valid
    assert verify_receipt(RECEIPT, keys=LOG.keys, digest=str(RECEIPT.digest)).valid
    other = verify_receipt(RECEIPT, keys=LOG.keys, document=DOC + b"!")
    assert [c.name for c in other.failed] == ["document"]
    bad = verify_receipt(RECEIPT, keys=LOG.keys, digest="md5:00")
    assert [c.name for c in bad.failed] == ["document"]


def test_check_model() -> None:
    assert [s.value for s in Status] == ["ok", "failed", "not checked"]
    assert Check("x", "ok", "d").ok and Check("x", "ok", "d").status is Status.OK  # type: ignore[arg-type]
    assert not Check("x", Status.NOT_CHECKED, "d").ok and not Check("x", Status.FAILED, "d").ok
    assert Check("x", Status.NOT_CHECKED, "why").to_obj() == {
        "name": "x",
        "status": "not checked",
        "ok": False,
        "detail": "why",
    }
    with pytest.raises(ValueError):
        Check("x", "fine", "d")  # type: ignore[arg-type]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda r: set_member(r, path, value)


def _flip_hex(h: str) -> str:
    return ("1" if h[0] != "1" else "2") + h[1:]


def _tamper_signature(index: int) -> Callable[[dict[str, Any]], None]:
    def apply(r: dict[str, Any]) -> None:
        head, sigs = r["checkpoint"].split("\n\n")
        lines = sigs.rstrip("\n").split("\n")
        name, b64 = lines[index].rsplit(" ", 1)
        raw = bytearray(base64.b64decode(b64))
        raw[-1] ^= 1
        lines[index] = name + " " + base64.b64encode(bytes(raw)).decode()
        r["checkpoint"] = head + "\n\n" + "\n".join(lines) + "\n"

    return apply


OTHER = make_log("other.example/log")
TAMPERINGS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("digest", _set("digest", "blake3:" + "00" * 32), "entry"),
    ("digest algorithm", _set("digest", lambda d: d.replace("blake3", "sha256")), "entry"),
    ("salt", _set("salt", lambda s: _flip_hex(s)), "entry"),
    ("subject", _set("subject", "acmf"), "entry"),
    ("entry", _set("entry", lambda e: e[:-1] + ("0" if e[-1] != "0" else "1")), "entry"),
    ("entry type", _set("entry", lambda e: "03" + e[2:]), "entry"),
    ("origin", _set("log.origin", "other.example/log"), "checkpoint"),
    ("index", _set("log.index", 20), "inclusion"),
    ("index outside the tree", _set("log.index", 37), "inclusion"),
    ("tree size", _set("log.tree_size", 36), "checkpoint"),
    ("inclusion hash", _set("log.inclusion", lambda p: [_flip_hex(p[0]), *p[1:]]), "inclusion"),
    ("proof dropped", _set("log.inclusion", lambda p: p[:-1]), "inclusion"),
    ("proof extended", _set("log.inclusion", lambda p: [*p, p[0]]), "inclusion"),
    ("checkpoint of another log", _set("checkpoint", OTHER.note), "checkpoint"),
    ("checkpoint not a note", _set("checkpoint", "hello"), "checkpoint"),
    (
        "root in checkpoint",
        _set("checkpoint", lambda n: n.replace(n.split("\n")[2], "A" * 43 + "=")),
        "log signature",
    ),
    ("log signature", _tamper_signature(0), "log signature"),
    ("clock signature", _tamper_signature(1), "signed time"),
    ("anchor on another root", _set("anchors", [LOG.block(root="00" * 32)]), "anchor 1 (local)"),
    ("anchor on another size", _set("anchors", [LOG.block(tree_size=36)]), "anchor 1 (local)"),
    (
        "anchor re-timed",
        _set("anchors", [LOG.block(time=SIGNED_AT + 6, sig=LOG.block()["sig"])]),
        "anchor 1 (local)",
    ),
    ("anchor of another log", _set("anchors", [OTHER.block()]), "anchor 1 (local)"),
    ("evm anchor on another size", _set("anchors", [{"type": "evm", "tree_size": 36}]), "anchor 1 (evm)"),
    ("format", _set("format", "notar.receipt.v3"), "format"),
]


@pytest.mark.parametrize(("what", "tamper", "check"), TAMPERINGS, ids=[t[0] for t in TAMPERINGS])
def test_tampering_fails_the_named_check(
    what: str, tamper: Callable[[dict[str, Any]], None], check: str
) -> None:
    r = copy.deepcopy(OBJ)
    tamper(r)
    result = verify_receipt(r, keys=LOG.keys)
    assert not result.valid
    failed = result.check(check)
    assert failed is not None and failed.status is Status.FAILED, [
        (c.name, c.status, c.detail) for c in result.checks
    ]
    if check != "format":  # the checks that are never "not checked" are all there
        names = [c.name for c in result.checks]
        assert {"format", "entry", "checkpoint", "log signature", "inclusion"} <= set(names)
        assert all(
            c.checked
            for c in result.checks
            if c.name in ("entry", "checkpoint", "log signature", "inclusion")
        )


def test_entry_of_another_type_says_so() -> None:
    r = copy.deepcopy(OBJ)
    r["entry"] = "03" + r["entry"][2:]
    detail = verify_receipt(r, keys=LOG.keys).check("entry").detail  # type: ignore[union-attr]
    assert "type 0x03" in detail


@pytest.mark.parametrize(
    "garbage",
    [None, 42, "not json", b"\xff", [], {}, {"format": "notar.receipt.v2"}, OBJ | {"extra": 1}, "[" * 3000],
)
def test_malformed_is_only_a_failed_format_check(garbage: Any) -> None:
    result = verify_receipt(garbage, keys=LOG.keys)
    assert [(c.name, c.status) for c in result.checks] == [("format", Status.FAILED)]
    assert not result.valid and result.receipt is None and result.anchors == ()


def test_v1_receipt_is_refused_naming_the_version() -> None:
    v1 = {"format": "notar.receipt.v1", "digest": str(RECEIPT.digest), "entry": "1e20" + "00" * 32, "log": {}}
    detail = verify_receipt(v1, keys=LOG.keys).checks[0].detail
    assert "notar.receipt.v1 is a pre-release format" in detail


def test_duplicate_member_is_malformed() -> None:
    text = RECEIPT.to_json().decode().replace('"index":21', '"index":20,"index":21')
    result = verify_receipt(text, keys=LOG.keys)
    assert (
        result.checks[0].status is Status.FAILED and "'log.index' is named twice" in result.checks[0].detail
    )


def test_seventeen_anchors_are_malformed() -> None:
    r = copy.deepcopy(OBJ)
    r["anchors"] = [LOG.block()] * 17
    assert "at most 16 anchors" in verify_receipt(r, keys=LOG.keys).checks[0].detail
    r["anchors"] = [LOG.block()] * 16
    assert verify_receipt(r, keys=LOG.keys).valid


def test_a_checkpoint_signed_by_a_key_of_another_name_fails_the_log_signature() -> None:
    stranger = Signer.generate("other.example/log")  # trusted, but not named after this origin
    log = make_log(signer=stranger)
    result = verify_receipt(log.receipt(), keys=log.keys)
    assert [c.name for c in result.failed] == ["log signature"]
    detail = result.check("log signature").detail  # type: ignore[union-attr]
    assert "other.example/log" in detail and "not the origin 'notar.localhost/log'" in detail
    assert result.log_key is None


def test_an_untrusted_key_fails_the_log_signature() -> None:
    result = verify_receipt(RECEIPT, keys=[OTHER.signer.verifier().to_key()])
    assert [c.name for c in result.failed] == ["log signature", "anchor 1 (local)"]  # the block's key too
    assert "no signature by a trusted log key named" in result.failed[0].detail


def test_receipt_from_another_log_than_asked() -> None:
    result = verify_receipt(OTHER.receipt(), keys=OTHER.keys, origin=ORIGIN)
    assert [c.name for c in result.failed] == ["checkpoint"]


def test_any_trusted_clock_key_is_accepted_and_named() -> None:
    clock = CosignatureSigner.generate("time.example")
    note = sign_checkpoint(LOG.checkpoint, LOG.signer, clock, SIGNED_AT)
    r = dataclasses.replace(RECEIPT, checkpoint=note)
    result = verify_receipt(r, keys=[LOG.signer.verifier().to_key(), clock.verifier().to_key()])
    assert result.valid and result.clock_key == "time.example"
    assert "(cosigned by time.example)" in result.check("signed time").detail  # type: ignore[union-attr]
    only_log = verify_receipt(r, keys=[LOG.signer.verifier().to_key(), LOG.clock.verifier().to_key()])
    assert [c.name for c in only_log.failed] == ["signed time"]


# --------------------------------------------------------------------------- anchors
def test_unknown_anchor_types_are_not_checked() -> None:
    r = dataclasses.replace(RECEIPT, anchors=(Anchor.from_obj({"type": "x-future", "tree_size": 1}),))
    result = verify_receipt(r, keys=LOG.keys, document=DOC)
    check = result.check("anchor 1 (x-future)")
    assert check is not None and check.status is Status.NOT_CHECKED and "unknown" in check.detail
    assert result.valid and result.unchecked == [check]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"type": "evm", "tree_size": 37}, "--online"),
        ({"type": "rfc3161", "tsa": "t", "token": "AA=="}, "--tsa-ca"),
    ],
)
def test_known_kinds_without_a_verifier_are_not_checked_with_the_reason(
    record: dict[str, Any], reason: str
) -> None:
    r = dataclasses.replace(RECEIPT, anchors=(Anchor.from_obj(record),))
    result = verify_receipt(r, keys=LOG.keys)
    check = result.checks[-1]
    assert check.status is Status.NOT_CHECKED and reason in check.detail and result.valid


def test_given_verifiers_are_called_with_the_record_and_its_target() -> None:
    seen: list[tuple[Anchor, AnchorTarget]] = []

    def custom(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
        seen.append((anchor, target))
        return AnchorVerdict(Status.OK, "fine")

    def broken(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
        raise ValueError("no token member")

    def unsure(anchor: Anchor, target: AnchorTarget) -> AnchorVerdict:
        return AnchorVerdict(Status.NOT_CHECKED, "the chain did not answer")

    records: list[dict[str, Any]] = [{"type": "x-custom", "v": 1}, {"type": "local"}, {"type": "evm"}]
    r = dataclasses.replace(RECEIPT, anchors=tuple(Anchor.from_obj(a) for a in records))
    result = verify_receipt(
        r, keys=LOG.keys, anchor_verifiers={"x-custom": custom, "local": broken, "evm": unsure}
    )
    assert statuses(result)["anchor 1 (x-custom)"] == "ok"
    assert result.check("anchor 2 (local)") == Check(
        "anchor 2 (local)", Status.FAILED, "malformed anchor record: no token member"
    )
    assert statuses(result)["anchor 3 (evm)"] == "not checked"
    ((anchor, target),) = seen
    assert anchor.fields() == records[0]
    assert (target.checkpoint, target.size, target.root, target.aggregate) == (
        LOG.checkpoint,
        37,
        LOG.checkpoint.root,
        None,
    )
    assert target.body == LOG.note.split("\n\n")[0] + "\n" == target.stamped


def test_a_malformed_local_block_fails_its_check() -> None:
    r = copy.deepcopy(OBJ)
    r["anchors"] = [{**LOG.block(), "sig": "not base64"}]
    check = verify_receipt(r, keys=LOG.keys).checks[-1]
    assert check.status is Status.FAILED and check.detail.startswith("malformed anchor record")


@pytest.mark.parametrize(("delta", "status"), [(-301, "failed"), (-300, "ok"), (0, "ok"), (3600, "ok")])
def test_an_anchor_time_more_than_300_s_before_the_signed_time_fails(delta: int, status: str) -> None:
    r = dataclasses.replace(RECEIPT, anchors=(Anchor.from_obj(LOG.block(time=SIGNED_AT + delta)),))
    check = verify_receipt(r, keys=LOG.keys).checks[-1]
    assert check.status.value == status, check.detail
    if status == "failed":
        assert "301 s before the signed time" in check.detail


def test_the_time_rule_needs_a_verified_signed_time() -> None:
    r = dataclasses.replace(RECEIPT, anchors=(Anchor.from_obj(LOG.block(time=SIGNED_AT - 10_000)),))
    result = verify_receipt(r, keys=[LOG.signer.verifier().to_key()])  # no clock key: no signed time
    assert result.checks[-1].status is Status.OK and result.valid


def test_malformed_keys_raise_value_error() -> None:
    with pytest.raises(ValueError):
        verify_receipt(RECEIPT, keys=["not a key"])


# --------------------------------------------------------------------------- properties
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=40)
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.sampled_from(MEMBER_PATHS), json_values)
def test_any_member_replaced_by_any_json_never_raises_and_never_passes_unless_unchanged(
    path: str, value: Any
) -> None:
    r = copy.deepcopy(OBJ)
    _set(path, value)(r)
    result = verify_receipt(r, keys=LOG.keys, document=DOC)
    if result.valid:
        assert r == OBJ or path == "anchors"  # anchors are optional evidence
    if path == "anchors" and result.valid:
        assert all(c.status is not Status.FAILED for c in result.checks)


@given(json_values)
def test_garbage_is_a_failed_format_check(value: Any) -> None:
    result = verify_receipt(value, keys=LOG.keys)
    assert not result.valid and result.checks[0].name == "format"


def test_receipt_type_is_accepted_as_is() -> None:
    assert isinstance(verify_receipt(RECEIPT, keys=LOG.keys).receipt, Receipt)


def test_result_as_json() -> None:
    r = dataclasses.replace(RECEIPT, anchors=(Anchor.from_obj({"type": "x-future"}),))
    obj = verify_receipt(r, keys=LOG.keys).to_obj()
    assert obj["valid"] is True and obj["unchecked"] == ["document", "anchor 1 (x-future)"]
    assert obj["checks"][0] == {"name": "format", "status": "ok", "ok": True, "detail": "notar.receipt.v2"}
    assert [c["status"] for c in obj["checks"]].count("not checked") == 2
    assert orjson.loads(orjson.dumps(obj)) == obj
