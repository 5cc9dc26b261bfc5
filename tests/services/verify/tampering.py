"""Receipts that differ from a valid one in one way each: the corpus on which the web verifier
and `notar verify` must agree."""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Callable
from typing import Any

from tests.services.verify.live import Receipt


def _flip_hex(h: str, at: int = 0) -> str:
    return h[:at] + ("0" if h[at] != "0" else "1") + h[at + 1 :]


def _note_parts(note: str) -> tuple[str, list[str]]:
    text, block = note.split("\n\n")
    return text + "\n", block[:-1].split("\n")


def _join_note(text: str, lines: list[str]) -> str:
    return text + "\n" + "".join(line + "\n" for line in lines)


def _sig_edit(line: str, edit: Callable[[bytearray], None]) -> str:
    head, _, encoded = line.rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    edit(raw)
    return f"{head} {base64.b64encode(bytes(raw)).decode()}"


def _flip_byte(at: int) -> Callable[[bytearray], None]:
    def edit(raw: bytearray) -> None:
        raw[at] ^= 0x01

    return edit


def flip_last_byte(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _with(receipt: Receipt, edit: Callable[[Receipt], None]) -> Receipt:
    out = copy.deepcopy(receipt)
    edit(out)
    return out


def _note(edit: Callable[[str, list[str]], tuple[str, list[str]]]) -> Callable[[Receipt], None]:
    def apply(r: Receipt) -> None:
        text, lines = _note_parts(r["checkpoint"])
        r["checkpoint"] = _join_note(*edit(text, lines))

    return apply


def tampered(
    base: Receipt, anchored_receipt: Receipt, foreign_token: str, aggregated: Receipt | None = None
) -> dict[str, Receipt | str]:
    """Receipts that differ from a valid one in one way each (str: raw JSON text): `base` has no
    anchors, `anchored_receipt` has [local, rfc3161, evm], `aggregated` the same kinds, each with an
    `aggregate` member (SPEC §4), in that order."""
    log = base["log"]
    witness = "— witness.example/w " + base64.b64encode(os.urandom(4 + 64)).decode()

    def set_log(**kv: Any) -> Callable[[Receipt], None]:
        return lambda r: r["log"].update(kv)

    def set_top(**kv: Any) -> Callable[[Receipt], None]:
        return lambda r: r.update(kv)

    def lines_edit(fn: Callable[[list[str]], list[str]]) -> Callable[[Receipt], None]:
        return _note(lambda text, lines: (text, fn(lines)))

    def text_edit(fn: Callable[[str], str]) -> Callable[[Receipt], None]:
        return _note(lambda text, lines: (fn(text), lines))

    def anchor_edit(i: int, **kv: Any) -> Callable[[Receipt], None]:
        return lambda r: r["anchors"][i].update(kv)

    text_lines = base["checkpoint"].split("\n")
    other_subject = base["subject"] + "-x" if len(base["subject"]) < 60 else "other"
    edits: dict[str, Callable[[Receipt], None]] = {
        "digest-hex": set_top(digest=_flip_hex(base["digest"], 10)),
        "digest-algorithm": set_top(digest="sha256:" + base["digest"].split(":")[1]),
        "entry-commitment-byte": set_top(entry=_flip_hex(base["entry"], 8)),
        "entry-last-byte": set_top(entry=_flip_hex(base["entry"], 65)),
        "entry-type-03": set_top(entry="03" + base["entry"][2:]),
        "entry-short": set_top(entry=base["entry"][:-2]),
        "entry-upper-case": set_top(entry=base["entry"].upper()),
        "entry-v1-multihash": set_top(entry="1e20" + base["digest"].split(":")[1]),
        "salt-flipped": set_top(salt=_flip_hex(base["salt"], 3)),
        "salt-short": set_top(salt=base["salt"][:-2]),
        "salt-upper-case": set_top(salt=base["salt"].upper()),
        "subject-changed": set_top(subject=other_subject),
        "subject-empty": set_top(subject=""),
        "subject-65-bytes": set_top(subject="é" * 32 + "x"),
        "subject-number": set_top(subject=7),
        "index-plus-one": set_log(index=log["index"] + 1),
        "index-is-size": set_log(index=log["tree_size"]),
        "size-plus-one": set_log(tree_size=log["tree_size"] + 1),
        "proof-first-flipped": set_log(inclusion=[_flip_hex(log["inclusion"][0]), *log["inclusion"][1:]]),
        "proof-last-dropped": set_log(inclusion=log["inclusion"][:-1]),
        "proof-extra-hash": set_log(inclusion=[*log["inclusion"], "ab" * 32]),
        "proof-reversed": set_log(inclusion=log["inclusion"][::-1]),
        "proof-too-long": set_log(inclusion=["ab" * 32] * 65),
        "proof-upper-case": set_log(inclusion=[h.upper() for h in log["inclusion"]]),
        "log-origin": set_log(origin="elsewhere.example/log"),
        "log-origin-empty": set_log(origin=""),
        "format-v1": set_top(format="notar.receipt.v1"),
        "format-v3": set_top(format="notar.receipt.v3"),
        "negative-index": set_log(index=-1),
        "index-as-string": set_log(index=str(log["index"])),
        "index-true": set_log(index=True),
        "size-u64-max": set_log(tree_size=2**64 - 1),
        "size-2-63": set_log(tree_size=2**63),
        "anchors-not-a-list": set_top(anchors={}),
        "anchor-without-type": set_top(anchors=[{"kind": "local"}]),
        "anchor-type-number": set_top(anchors=[{"type": 5}]),
        "anchor-type-empty": set_top(anchors=[{"type": ""}]),
        "anchor-not-an-object": set_top(anchors=["local"]),
        "anchor-unknown-kind": set_top(anchors=[{"type": "carrier-pigeon", "note": "on its way"}]),
        "anchors-16-unknown": set_top(anchors=[{"type": f"x-{i}"} for i in range(16)]),
        "anchors-17": set_top(anchors=[{"type": f"x-{i}"} for i in range(17)]),
        "extra-top-level-field": set_top(comment="filed with the court"),
        "extra-signed-time": set_top(signed_time="2019-01-01T00:00:00Z"),
        "extra-log-field": set_log(shard=0),
        "missing-salt": lambda r: r.pop("salt"),
        "missing-anchors": lambda r: r.pop("anchors"),
        "missing-log-inclusion": lambda r: r["log"].pop("inclusion"),
        "checkpoint-root-zero": text_edit(
            lambda t: "\n".join([*t.split("\n")[:2], base64.b64encode(bytes(32)).decode(), ""])
        ),
        "checkpoint-size-line": text_edit(
            lambda t: t.replace(f"\n{log['tree_size']}\n", f"\n{log['tree_size'] + 1}\n", 1)
        ),
        "checkpoint-origin-line": text_edit(lambda t: "other.example/log" + t[t.index("\n") :]),
        "checkpoint-size-leading-zero": text_edit(
            lambda t: t.replace(f"\n{log['tree_size']}\n", f"\n0{log['tree_size']}\n", 1)
        ),
        "checkpoint-extension-line": text_edit(lambda t: t + "an extension line\n"),
        "log-signature-removed": lines_edit(lambda ls: ls[1:]),
        "clock-signature-removed": lines_edit(lambda ls: ls[:1]),
        "log-signature-flipped": lines_edit(lambda ls: [_sig_edit(ls[0], _flip_byte(20)), *ls[1:]]),
        "log-key-id-flipped": lines_edit(lambda ls: [_sig_edit(ls[0], _flip_byte(0)), *ls[1:]]),
        "clock-time-changed": lines_edit(lambda ls: [ls[0], _sig_edit(ls[1], _flip_byte(11))]),
        "clock-signature-flipped": lines_edit(lambda ls: [ls[0], _sig_edit(ls[1], _flip_byte(40))]),
        "unknown-witness-signature": lines_edit(lambda ls: [*ls, witness]),
        "duplicate-signature-line": lines_edit(lambda ls: [*ls, ls[0]]),
        "signature-line-no-dash": lines_edit(lambda ls: [ls[0].replace("— ", "- ", 1), *ls[1:]]),
        "no-blank-line": set_top(checkpoint=base["checkpoint"].replace("\n\n", "\n", 1)),
        "trailing-blank-line": set_top(checkpoint=base["checkpoint"] + "\n"),
        "crlf-checkpoint": set_top(checkpoint=base["checkpoint"].replace("\n", "\r\n")),
        "checkpoint-not-text": set_top(checkpoint=text_lines),
    }
    out: dict[str, Receipt | str] = {name: _with(base, edit) for name, edit in edits.items()}

    a_edits: dict[str, Callable[[Receipt], None]] = {
        "local-root": anchor_edit(0, root="00" * 32),
        "local-time": anchor_edit(0, time=anchored_receipt["anchors"][0]["time"] + 1),
        "local-height": anchor_edit(0, height=anchored_receipt["anchors"][0]["height"] + 1),
        "local-extra-field": anchor_edit(0, note="added"),
        "local-size-as-float": anchor_edit(0, tree_size=float(anchored_receipt["log"]["tree_size"])),
        "local-size-wrong": anchor_edit(0, tree_size=anchored_receipt["log"]["tree_size"] + 1),
        "local-sig-not-base64": anchor_edit(0, sig="not base64!"),
        "local-origin": anchor_edit(0, origin="other.example/log"),
        "rfc3161-other-checkpoint": anchor_edit(1, token=foreign_token),
        "rfc3161-garbage": anchor_edit(1, token=base64.b64encode(b"\x30\x03abc").decode()),
        "rfc3161-non-canonical-base64": anchor_edit(1, token="AB=="),
        "rfc3161-bad-signature": anchor_edit(
            1, token=flip_last_byte(anchored_receipt["anchors"][1]["token"])
        ),
        "evm-root": anchor_edit(2, root="0x" + "11" * 32),
        "evm-size": anchor_edit(2, tree_size=1),
        "evm-no-size": lambda r: r["anchors"][2].pop("tree_size"),
        "invented-kind": anchor_edit(0, type="notary-public"),
    }
    out.update({f"anchored-{name}": _with(anchored_receipt, edit) for name, edit in a_edits.items()})
    if aggregated is not None:
        path = aggregated["anchors"][0]["aggregate"]["path"]

        def aggregate_edit(i: int, **kv: Any) -> Callable[[Receipt], None]:
            return lambda r: r["anchors"][i]["aggregate"].update(kv)

        g_edits: dict[str, Callable[[Receipt], None]] = {
            "path-flipped": aggregate_edit(0, path=[_flip_hex(path[0]), *path[1:]]),
            "path-dropped": aggregate_edit(0, path=path[:-1]),
            "index-other": aggregate_edit(0, index=(aggregated["anchors"][0]["aggregate"]["index"] + 1) % 3),
            "index-outside": aggregate_edit(0, index=3),
            "size-zero": aggregate_edit(0, size=0),
            "extra-member": aggregate_edit(0, note="x"),
            "not-an-object": anchor_edit(0, aggregate=[1, 2]),
            "removed": lambda r: r["anchors"][0].pop("aggregate"),
            "evm-root": anchor_edit(2, root="0x" + "11" * 32),
            "evm-path-flipped": aggregate_edit(2, path=[_flip_hex(path[0]), *path[1:]]),
            "rfc3161-of-the-checkpoint": anchor_edit(1, token=anchored_receipt["anchors"][1]["token"]),
        }
        out.update({f"aggregated-{name}": _with(aggregated, edit) for name, edit in g_edits.items()})

    text = json.dumps(base)
    index = f'"index": {log["index"]}'
    assert index in text
    out["index-as-float"] = text.replace(index, f'"index": {log["index"]}.0')
    out["index-exponent"] = text.replace(index, f'"index": {log["index"]}e0')
    out["index-beyond-u64"] = text.replace(index, '"index": 18446744073709551616')
    # Valid read last-wins (JSON.parse, orjson), invalid read first-wins: refused by both.
    out["duplicate-name"] = text.replace(index, f'"index": 999, {index}')
    out["duplicate-name-top-level"] = '{"digest": "sha256:' + "00" * 32 + '", ' + text[1:]
    out["duplicate-name-in-anchor"] = text.replace(
        '"anchors": []', '"anchors": [{"type": "x-future", "type": "local"}]'
    )
    out["not-json"] = text[:-1]
    out["bom"] = "\ufeff" + text
    out["nan-in-anchors"] = text.replace('"anchors": []', '"anchors": [{"type": "evm", "tree_size": NaN}]')
    return out


def clock_tampered(base: Receipt) -> Receipt:
    """`base` with one byte of the clock's signature flipped (valid when only the log key is trusted)."""
    return _with(base, _note(lambda t, ls: (t, [ls[0], _sig_edit(ls[1], _flip_byte(40))])))
