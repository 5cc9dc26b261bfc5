"""Offline verification of anchor records (SPEC §4), one module per kind; pure, like all of merkle.

``local``: blocks of notar's embedded hash chain, signed by the log key. ``rfc3161``: RFC 3161
time-stamp tokens, checked against a trusted CA. ``evm``: the pure part of checking an EVM anchor
(the contract's call and event encoding, and a transaction receipt fetched by the caller).
"""
