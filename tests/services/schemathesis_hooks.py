"""Loaded by `st run` (SCHEMATHESIS_HOOKS) in tests/services/test_openapi.py: the bodies of
`POST /entries` (application/cose) are raw bytes, which schemathesis cannot derive from a schema:
random bytes and byte strings that start as a tagged COSE_Sign1 (CBOR tag 18, an array of four)."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type(
    "application/cose",
    st.one_of(st.binary(max_size=2048), st.binary(max_size=2048).map(lambda b: b"\xd2\x84" + b)),
)
