"""The registration policy of notar's SCITT service (SPEC §12, docs/scitt.md).

A signed statement is admitted for a tenant when it parses (merkle.scitt: tag 18, attached payload,
alg ES256/ES384/EdDSA, CWT claims ``iss`` and ``sub``, RFC 9995 rules for hash envelopes, size)
and every key identifier it carries checks out against what is registered to that tenant for its
``iss`` (RFC 9943 §5.1.1.1: all registered identifiers are checked):

- ``kid``: a key registered to the tenant under that kid and that ``iss``, of the statement's
  algorithm, under which the signature verifies;
- ``x5chain`` (with ``x5t`` in the protected header when the chain is unprotected): a path from its
  leaf to a trust anchor registered to the tenant for that ``iss``, and the signature verifying
  under the leaf's key.
"""

from __future__ import annotations

from merkle.scitt import (
    BAD_ALGORITHM,
    UNKNOWN_KEY,
    Statement,
    StatementError,
    chain_leaf,
    key_alg,
    parse_statement,
    verify_chain,
    verify_signature,
)
from services.common.issuers import IssuerRegistry


async def admit(data: bytes, tenant: str, issuers: IssuerRegistry, *, max_size: int) -> Statement:
    """The statement in ``data`` if the policy admits it for ``tenant``; StatementError naming why
    not (module doc)."""
    statement = parse_statement(data, max_size=max_size)
    if statement.kid is not None:
        issuer = await issuers.find(tenant, statement.kid)
        if issuer is None or issuer.iss != statement.issuer:
            raise StatementError(
                UNKNOWN_KEY,
                f"kid {statement.kid.hex()[:64]} is not a key registered to this tenant for iss "
                f"{statement.issuer[:200]!r}",
            )
        verify_signature(statement, issuer.key)
    if statement.x5chain:
        leaf, intermediates = chain_leaf(statement)
        anchors = await issuers.anchors(tenant, statement.issuer)
        if not anchors:
            raise StatementError(
                UNKNOWN_KEY,
                f"no X.509 trust anchor is registered to this tenant for iss {statement.issuer[:200]!r}",
            )
        verify_chain(leaf, intermediates, anchors)
        key = leaf.public_key()
        try:
            key_alg(key)
        except ValueError as e:
            raise StatementError(BAD_ALGORITHM, f"the x5chain leaf's key: {e}") from None
        verify_signature(statement, key)  # type: ignore[arg-type]  # key_alg checked its type
    return statement
