"""Structure-aware mutations for the Hypothesis fuzzers: a valid seed changed in one to four ways
that know what a receipt is made of, so most mutants get deep into the verifier.

JSON-level: replace any node (anywhere in the receipt, anchors and proof included) by a near value
(an int one off, as a float, a string, a bool; a string with one character changed, upper-cased,
with a control character, a lone surrogate, 0x toggled...) or by arbitrary JSON; delete or insert
nodes; splice in the value another seed has at the same place. Content-level: edit the signed note
line by line and signature by signature (bits of a signature, its key ID, its timestamp); edit the
bytes behind hex (entry, hashes) and base64 (tokens, block signatures); move the index and tree
size together. The same byte edits serve DER tokens, CBOR receipts and tlog-proofs.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from typing import Any

from hypothesis import strategies as st

from loadtest.fuzz_seeds import Seeds
from tests.merkle.logs import MEMBER_PATHS, set_member

Path = tuple[str | int, ...]
Draw = st.DrawFn

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
ODD_TEXT = ["", " ", "\n", "\r\n", "\x00", "\x1f", "\u2014", "\u00a0", "\ud800", "\U0001f600", "+", "=", "0x"]


def paths(node: Any, prefix: Path = ()) -> list[Path]:
    """Every path into a JSON value, the root excluded."""
    out: list[Path] = []
    items: list[tuple[str | int, Any]] = (
        list(node.items())
        if isinstance(node, dict)
        else list(enumerate(node))
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


def get(node: Any, path: Path) -> Any:
    for key in path:
        node = node[key]
    return node


def put(node: Any, path: Path, value: Any) -> None:
    get(node, path[:-1])[path[-1]] = value


def byte_edit(draw: Draw, data: bytes) -> bytes:
    """One byte-level edit: flip bits, set a byte, truncate, insert, delete, duplicate a slice."""
    b = bytearray(data)
    op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "dup"]))
    at = draw(st.integers(0, max(len(b) - 1, 0)))
    if op == "flip" and b:
        b[at] ^= 1 << draw(st.integers(0, 7))
    elif op == "set" and b:
        b[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF, b[at] + 1 & 0xFF]))
    elif op == "truncate":
        del b[at:]
    elif op == "insert":
        b[at:at] = draw(st.binary(min_size=1, max_size=4))
    elif op == "delete" and b:
        del b[at : at + draw(st.integers(1, 8))]
    else:
        size = draw(st.integers(1, 16))
        b[at:at] = b[at : at + size]
    return bytes(b)


def _text_edit(draw: Draw, s: str) -> str:
    op = draw(st.sampled_from(["char", "upper", "lower", "cut", "odd", "0x", "dup", "hex"]))
    at = draw(st.integers(0, len(s)))
    if op == "char" and s:
        at = min(at, len(s) - 1)
        return s[:at] + draw(st.characters()) + s[at + 1 :]
    if op == "upper":
        return s.upper()
    if op == "lower":
        return s.lower()
    if op == "cut":
        return s[:at]
    if op == "odd":
        return s[:at] + draw(st.sampled_from(ODD_TEXT)) + s[at:]
    if op == "0x":
        return s[2:] if s.startswith("0x") else "0x" + s
    if op == "dup":
        return s + s
    try:
        return byte_edit(draw, bytes.fromhex(s.removeprefix("0x"))).hex()
    except ValueError:
        return s + "0"


def near(draw: Draw, v: Any) -> Any:
    """A value close to `v`, or of a confusable type."""
    if isinstance(v, bool):
        return draw(st.sampled_from([not v, int(v), None]))
    if isinstance(v, int):
        return draw(
            st.sampled_from(
                [
                    v + 1,
                    v - 1,
                    -v,
                    0,
                    2 * v,
                    2 * v + 1,
                    v // 2,
                    2**63 - 1,
                    2**63,
                    2**64,
                    float(v),
                    str(v),
                    v == 1,
                    None,
                ]
            )
        )
    if isinstance(v, str):
        return _text_edit(draw, v)
    if isinstance(v, list):
        op = draw(st.sampled_from(["reverse", "drop", "dup", "empty", "swap"]))
        if op == "reverse" or (len(v) < 2 and op == "swap"):
            return v[::-1]
        if op == "drop" and v:
            return v[:-1] if draw(st.booleans()) else v[1:]
        if op == "dup" and v:
            return [*v, v[draw(st.integers(0, len(v) - 1))]]
        if op == "swap":
            i = draw(st.integers(0, len(v) - 2))
            return [*v[:i], v[i + 1], v[i], *v[i + 2 :]]
        return []
    return draw(json_values)


# -- the signed note ------------------------------------------------------------------------------


def note_edit(draw: Draw, note: str, seeds: Seeds) -> str:
    """One edit of a signed note: of a body line, of a signature line (or its bytes), of the order
    or number of the signature lines, or of the separators."""
    if "\n\n" not in note:
        return _text_edit(draw, note)
    split = note.rindex("\n\n")
    body, sigs = note[: split + 1].split("\n")[:-1], note[split + 2 :].split("\n")[:-1]
    other = draw(st.sampled_from(seeds.notes))
    o_split = other.rindex("\n\n")
    o_body, o_sigs = other[: o_split + 1].split("\n")[:-1], other[o_split + 2 :].split("\n")[:-1]
    op = draw(
        st.sampled_from(
            ["body", "body-line", "sig-bytes", "sig-name", "sig-op", "splice-sig", "splice-body", "separator"]
        )
    )
    if op == "body" and body:
        i = draw(st.integers(0, len(body) - 1))
        body[i] = str(near(draw, int(body[i]))) if body[i].isdigit() else _text_edit(draw, body[i])
    elif op == "body-line":
        i = draw(st.integers(0, len(body)))
        body[i:i] = [draw(st.sampled_from(["", "extension", body[-1] if body else "x", *o_body]))]
    elif op in ("sig-bytes", "sig-name") and sigs:
        i = draw(st.integers(0, len(sigs) - 1))
        name, _, encoded = sigs[i].partition(" ")[2].partition(" ")
        if op == "sig-name":
            name = _text_edit(draw, name)
        else:
            try:
                raw = base64.b64decode(encoded)
            except ValueError:
                raw = encoded.encode()
            # bytes 0-3: key ID; 4-11 of a cosignature: the timestamp; the rest: the signature
            encoded = base64.b64encode(byte_edit(draw, raw)).decode()
        sigs[i] = f"\u2014 {name} {encoded}"
    elif op == "sig-op" and sigs:
        sigs = near(draw, sigs)
    elif op == "splice-sig":
        sigs.insert(draw(st.integers(0, len(sigs))), draw(st.sampled_from(o_sigs)))
    elif op == "splice-body":
        body = o_body
    else:
        sep = draw(st.sampled_from(["\n", "\r\n", "\n\n", " \n", ""]))
        return "\n".join(body) + "\n" + sep + "".join(s + "\n" for s in sigs)
    return "".join(line + "\n" for line in body) + "\n" + "".join(s + "\n" for s in sigs)


# -- whole receipts -------------------------------------------------------------------------------


def _base64_edit(draw: Draw, v: str) -> str:
    try:
        raw = base64.b64decode(v, validate=True)
    except ValueError:
        return _text_edit(draw, v)
    return base64.b64encode(byte_edit(draw, raw)).decode()


def _mutate_once(draw: Draw, r: dict[str, Any], seeds: Seeds) -> dict[str, Any]:
    op = draw(
        st.sampled_from(
            ["near", "near", "near", "any", "delete", "insert", "splice", "note", "note", "bytes", "proof"]
        )
    )
    if op == "note" and isinstance(r.get("checkpoint"), str):
        r["checkpoint"] = note_edit(draw, r["checkpoint"], seeds)
        return r
    if op == "proof" and isinstance(r.get("log"), dict):
        log = r["log"]
        i, n = log.get("index"), log.get("tree_size")
        if type(i) is int and type(n) is int:
            shift = draw(st.integers(0, 6))
            log["index"], log["tree_size"] = draw(
                st.sampled_from(
                    [
                        (i ^ (1 << shift), n),
                        (i, n + (1 << shift)),
                        (i << 1, n << 1),
                        (i >> 1, n >> 1),
                        (i + (1 << shift), n + (1 << shift)),
                        (n - 1, n),
                    ]
                )
            )
        return r
    every = paths(r)
    if not every:
        return r
    path = draw(st.sampled_from(every))
    value = get(r, path)
    if op == "near":
        put(r, path, near(draw, value))
    elif op == "any":
        put(r, path, draw(json_values))
    elif op == "delete":
        del get(r, path[:-1])[path[-1]]
    elif op == "insert":
        parent = get(r, path[:-1])
        if isinstance(parent, dict):
            parent[
                draw(st.sampled_from(["type", "tree_size", "root", "anchors", "extra", "index", "sig"]))
            ] = copy.deepcopy(value)
        else:
            parent.insert(path[-1], copy.deepcopy(value))
    elif op == "splice":
        donors = [s for s in seeds.receipts if _has(s, path)]
        if donors:
            put(r, path, copy.deepcopy(get(draw(st.sampled_from(donors)), path)))
    elif isinstance(value, str):
        put(r, path, _bytes_behind(draw, path, value))
    return r


def _bytes_behind(draw: Draw, path: Path, value: str) -> str:
    """`value` with the bytes it encodes (hex, 0x-hex or base64) edited, re-encoded the same way."""
    if path[-1] in ("token", "sig"):
        return _base64_edit(draw, value)
    bare = value.removeprefix("0x")
    try:
        raw = bytes.fromhex(bare)
    except ValueError:
        return _text_edit(draw, value)
    return value[: len(value) - len(bare)] + byte_edit(draw, raw).hex()


def _has(node: Any, path: Path) -> bool:
    try:
        get(node, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


@st.composite
def mutated_receipts(draw: Draw, seeds: Seeds, max_edits: int = 4) -> Any:
    """A seed receipt (a deep copy) changed in 1 to `max_edits` ways."""
    r: Any = copy.deepcopy(draw(st.sampled_from(seeds.receipts)))
    for _ in range(draw(st.integers(1, max_edits))):
        if not isinstance(r, dict):
            break
        r = _mutate_once(draw, r, seeds)
    return r


@st.composite
def any_json_in_a_member(draw: Draw, seeds: Seeds) -> bytes:
    """A seed receipt as JSON bytes with one member (any of SPEC §5's, the log's included, or a
    new one) set to arbitrary JSON: what merkle's own property (tests/merkle/test_receipt.py) does
    to one receipt, over every seed, for `Receipt.from_json`."""
    r = copy.deepcopy(draw(st.sampled_from(seeds.receipts)))
    path = draw(st.sampled_from([*MEMBER_PATHS, "new", "log.new"]))
    set_member(r, path, draw(json_values))
    return json.dumps(r).encode()  # the standard library writes integers beyond 64 bits too


@st.composite
def mutated_json(draw: Draw, values: list[Any], max_edits: int = 3) -> Any:
    """One of `values` (a deep copy) with 1 to `max_edits` JSON-level edits (near, any, delete)."""
    v = copy.deepcopy(draw(st.sampled_from(values)))
    for _ in range(draw(st.integers(1, max_edits))):
        every = paths(v)
        if not every:
            break
        path = draw(st.sampled_from(every))
        op = draw(st.sampled_from(["near", "near", "any", "delete"]))
        if op == "delete":
            del get(v, path[:-1])[path[-1]]
        else:
            put(v, path, near(draw, get(v, path)) if op == "near" else draw(json_values))
    return v


@st.composite
def mutated_bytes(draw: Draw, values: list[bytes], max_edits: int = 3) -> bytes:
    data = draw(st.sampled_from(values))
    for _ in range(draw(st.integers(1, max_edits))):
        data = byte_edit(draw, data)
    return data


@st.composite
def mutated_notes(draw: Draw, seeds: Seeds, max_edits: int = 3) -> str:
    note = draw(st.sampled_from(seeds.notes))
    for _ in range(draw(st.integers(1, max_edits))):
        note = note_edit(draw, note, seeds)
    return note


@st.composite
def mutated_text(draw: Draw, values: list[str], max_edits: int = 3) -> str:
    """One of `values` with line-level edits: a line changed (its text, or the bytes behind its
    base64), dropped, repeated, swapped with the next, or taken from another value."""
    lines = draw(st.sampled_from(values)).split("\n")
    for _ in range(draw(st.integers(1, max_edits))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["text", "bytes", "drop", "repeat", "swap", "splice"]))
        if op == "text":
            lines[i] = _text_edit(draw, lines[i])
        elif op == "bytes":
            head, _, tail = lines[i].rpartition(" ")
            lines[i] = (head + " " if head else "") + _base64_edit(draw, tail)
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        else:
            lines.insert(i, draw(st.sampled_from(draw(st.sampled_from(values)).split("\n"))))
    return "\n".join(lines)


@st.composite
def mutated_cose(draw: Draw, values: list[bytes]) -> bytes:
    """A COSE receipt edited inside its CBOR: the proof's tree size, index and path, the entry, the
    protected header or the signature."""
    import cbor2

    protected, unprotected, payload, signature = cbor2.loads(draw(st.sampled_from(values))[1:])
    size, index, path = cbor2.loads(unprotected[396][-1][0])
    op = draw(st.sampled_from(["size", "index", "both", "path", "entry", "protected", "signature"]))
    if op in ("size", "both"):
        size = near(draw, size)
    if op in ("index", "both"):
        index = near(draw, index)
    if op == "path":
        path = near(draw, path)
    if op == "entry":
        unprotected["notar.entry"] = byte_edit(draw, unprotected["notar.entry"])
    if op == "protected":
        protected = byte_edit(draw, protected)
    if op == "signature":
        signature = byte_edit(draw, signature)
    with contextlib.suppress(TypeError, ValueError, cbor2.CBOREncodeError):
        unprotected[396] = {-1: [cbor2.dumps([size, index, path])]}
    return b"\xd2" + bytes(cbor2.dumps([protected, unprotected, payload, signature]))


@st.composite
def mutated_statements(draw: Draw, values: list[bytes]) -> bytes:
    """A SCITT statement edited inside its CBOR: a protected header's value, key or bytes, the
    unprotected header, the payload, the signature, the tag or the array's length."""
    import cbor2

    tag = cbor2.loads(draw(st.sampled_from(values)))
    protected, unprotected, payload, signature = tag.value
    header = cbor2.loads(protected)
    op = draw(
        st.sampled_from(
            ["value", "drop", "add", "bytes", "unprotected", "payload", "signature", "tag", "shape"]
        )
    )
    if op in ("value", "drop") and header:
        label = draw(st.sampled_from(sorted(header, key=repr)))
        if op == "drop":
            del header[label]
        else:
            header[label] = draw(json_values | st.binary(max_size=40) | st.integers(-(2**70), 2**70))
    if op == "add":
        header[draw(st.integers(-300, 300) | st.text(max_size=4))] = draw(json_values | st.binary(max_size=8))
    if op in ("value", "drop", "add"):
        with contextlib.suppress(TypeError, ValueError, cbor2.CBOREncodeError):
            protected = cbor2.dumps(header)
    if op == "bytes":
        protected = byte_edit(draw, protected)
    if op == "unprotected":
        unprotected = {draw(st.integers(-3, 400)): draw(json_values | st.binary(max_size=8))}
    if op == "payload":
        payload = draw(st.none() | st.binary(max_size=64))
    if op == "signature":
        signature = byte_edit(draw, signature)
    parts: list[Any] = [protected, unprotected, payload, signature]
    if op == "shape":
        parts = parts[: draw(st.integers(0, 5))]
    number = draw(st.sampled_from([16, 17, 19, 98])) if op == "tag" else 18
    return bytes(cbor2.dumps(cbor2.CBORTag(number, parts)))
