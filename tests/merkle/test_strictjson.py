"""Strict JSON: any object naming a member twice is refused, at any depth, naming the member."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.strictjson import loads


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"a":1,"a":2}', "a"),
        ('{"a":1,"b":{"c":1,"d":2,"c":3}}', "b.c"),
        ('{"x":[1,{"k":1},{"k":1,"k":2}]}', "x[2].k"),
        ('[{"a":1},{"b":1,"b":1}]', "[1].b"),
        ('{"a":1,"\\u0061":2}', "a"),  # the same name, escaped
        ('{"\\"":1,"\\"":2}', '"'),
        ('{ "log" : { "index" : 1 , "index" : 2 } }', "log.index"),
    ],
)
def test_duplicates_are_refused_naming_the_member(text: str, path: str) -> None:
    with pytest.raises(ValueError, match="named twice") as info:
        loads(text)
    assert repr(path) in str(info.value)
    with pytest.raises(ValueError, match="named twice"):
        loads(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        '{"a":{"a":1},"b":[{"a":1},{"a":2}]}',
        '{"x":"{\\"a\\":1,\\"a\\":2}","y":"\\\\","z":"[,:]"}',  # names inside strings are text
        '{"a":1,"A":2,"a ":3,"é":4,"e\\u0301":5}',  # different names (no normalisation)
        "[]",
        '"a"',
        "{}",
    ],
)
def test_unique_names_pass_and_give_the_value(text: str) -> None:
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize(
    "bad", ["", "{", '{"a":1,}', "[1,]", "NaN", '{"a":1}x', b"\xff", '"\\ud800"', b"\xef\xbb\xbf{}", "01"]
)
def test_what_is_not_json_is_a_value_error(bad: str | bytes) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        loads(bad)


def test_only_bytes_or_text() -> None:
    with pytest.raises(ValueError, match="bytes or str"):
        loads(42)  # type: ignore[arg-type]
    assert loads(bytearray(b'{"a":1}')) == {"a": 1}  # type: ignore[arg-type]


def test_deep_nesting_does_not_recurse() -> None:
    depth = 1000  # orjson takes up to 1,024 levels; far beyond what a recursive scan survives in a thread
    text = "[" * depth + '{"a":1,"a":2}' + "]" * depth
    with pytest.raises(ValueError, match="named twice") as info:
        loads(text)
    assert str(info.value).count("[0]") == depth
    with pytest.raises(ValueError, match="not valid JSON"):
        loads("[" * 5000 + "]" * 5000)


# Objects as lists of (name, value) pairs, so that a name can repeat; written by hand.
names = st.sampled_from(["a", "b", "é", '"', "\\", "a\u0000"])
values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda xs: ("list", xs))
        | st.lists(st.tuples(names, inner), max_size=4).map(lambda ps: ("object", ps))
    ),
    max_leaves=15,
)


def write(v: Any) -> str:
    if isinstance(v, tuple) and v[0] == "list":
        return "[" + ",".join(write(x) for x in v[1]) + "]"
    if isinstance(v, tuple):
        return "{" + ",".join(json.dumps(k) + ":" + write(x) for k, x in v[1]) + "}"
    return json.dumps(v)


def reference_has_duplicate(text: str) -> bool:
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        keys = [k for k, _ in pairs]
        found = found or len(set(keys)) != len(keys)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


@settings(max_examples=300)
@given(values)
def test_agrees_with_the_standard_librarys_pairs(v: Any) -> None:
    text = write(v)
    if reference_has_duplicate(text):
        with pytest.raises(ValueError, match="named twice"):
            loads(text)
    else:
        assert loads(text) == json.loads(text)
