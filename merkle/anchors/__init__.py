"""Offline verification of anchor records (SPEC §4), one module per kind; pure, like all of merkle.

``local``: blocks of notar's embedded hash chain, signed by the log key. ``rfc3161``: RFC 3161
time-stamp tokens, checked against a trusted CA. ``evm``: the pure part of checking an EVM anchor
(the contract's call and event encoding, and a transaction receipt fetched by the caller).
What a record must commit to, a checkpoint or an aggregate of them, is ``merkle.aggregate``.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509

from merkle.anchors.local import local_anchor_verifier
from merkle.anchors.rfc3161 import rfc3161_anchor_verifier
from merkle.checks import AnchorVerifier
from merkle.note import NoteVerifier


def offline_anchor_verifiers(
    *, keys: Iterable[str | NoteVerifier], tsa_cas: Iterable[x509.Certificate] = ()
) -> dict[str, AnchorVerifier]:
    """The AnchorVerifiers a receipt can be checked with offline, by kind: ``local`` blocks under
    the trusted log ``keys``, ``rfc3161`` tokens under the trusted TSA CAs (when any are given).
    ``evm`` records need the chain: ``merkle.anchors.evm.check_receipt`` on what it answers."""
    verifiers = {"local": local_anchor_verifier(list(keys))}
    cas = list(tsa_cas)
    if cas:
        verifiers["rfc3161"] = rfc3161_anchor_verifier(cas)
    return verifiers
