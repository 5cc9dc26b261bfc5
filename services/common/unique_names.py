"""JSON objects that name a member twice: refused by POST /v1/verify and by `notar verify` alike.
Standard library only, so the offline verifier loads no server code for it."""

from __future__ import annotations

import json
from typing import Any


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = dict(pairs)
    if len(names) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"the member {name[:100]!r} appears twice in one object")
            seen.add(name)
    return names


def check_unique_names(text: bytes | str) -> None:
    """ValueError naming a member that appears twice in one object of the JSON ``text`` (which
    orjson read already: RFC 8259 leaves such a member's meaning to the parser, and a receipt
    must not read one way to one tool and another way to the next). The standard library's
    parser, which shows every pair, recurses: JSON nested deeper than it can go is refused."""
    try:
        json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise ValueError("nested too deep to check its member names") from None
