"""Strict JSON reading: RFC 8259 text where no object names a member twice.

RFC 8259 leaves the meaning of a repeated name to the parser (the first wins in one tool, the last
in the next), so a receipt naming a member twice could read one way to its verifier and another way
to a court's: such a document is refused. orjson parses (it refuses invalid UTF-8, lone surrogates,
NaN and nesting past 1,024 levels); the names are then checked by an iterative scan of the same
text, so no nesting depth can exhaust Python's recursion limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# A JSON string (escapes unrolled for speed) or one structural character; numbers and literals are
# skipped: the text is known to be valid JSON when this runs.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]', re.DOTALL)


def loads(data: bytes | str) -> Any:
    """The JSON value of `data`; ValueError (one line) when it is not JSON or an object names a
    member twice (the error names the member by its path, e.g. `log.index` or `anchors[0].type`)."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes | str):
        raise ValueError(f"JSON must be given as bytes or str, not {type(data).__name__}")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e}") from None
    check_unique_names(data)
    return value


def check_unique_names(data: bytes | str) -> None:
    """ValueError naming the first member that appears twice in one object of the JSON `data`,
    which must already be known to be valid JSON (see `loads`)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    # One frame per open object or array: [names seen (None for an array), current key or index,
    # whether the next string is a member name].
    stack: list[list[Any]] = []
    for m in _TOKEN.finditer(text):
        token = m.group()
        c = token[0]
        if c == '"':
            if stack and stack[-1][2]:
                frame = stack[-1]
                name = token[1:-1] if "\\" not in token else json.loads(token)
                if name in frame[0]:
                    frame[1] = name
                    raise ValueError(f"the member {_path(stack)!r} is named twice in one object")
                frame[0].add(name)
                frame[1] = name
                frame[2] = False
        elif c == "{":
            stack.append([set(), None, True])
        elif c == "[":
            stack.append([None, 0, False])
        elif c in "}]":
            stack.pop()
        elif c == ",":
            frame = stack[-1]
            if frame[0] is None:
                frame[1] += 1
            else:
                frame[2] = True


def _path(stack: list[list[Any]]) -> str:
    out = ""
    for names, at, _ in stack:
        if names is None:
            out += f"[{at}]"
        else:
            out += f".{at}" if out else str(at)
    return out
