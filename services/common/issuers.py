"""SCITT issuers registered to tenants (SPEC §12), kept with the tenants in the object store.

One record per issuer key, ``tenants/issuers/<tenant>/<kid hex>`` (services.published.layout):
``{"tenant", "iss", "kid", "alg", "key": PEM, "x5_anchor": PEM | null, "created"}``. ``kid`` is
SHA-256 of the key's DER SubjectPublicKeyInfo (merkle.scitt.key_id): what a statement names in its
protected ``kid``. ``x5_anchor`` is an optional X.509 trust anchor: statements of that tenant and
``iss`` that carry an ``x5chain`` must chain to one of them. Revoking deletes the record. Answers
are cached for ``cache_s`` (KEY_CACHE_S), as API keys are: a revoked key works at most that long.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from merkle.scitt import ALGORITHMS, IssuerKey, key_alg, key_id, key_pem, load_issuer_key
from services.model import check_tenant
from services.published import layout
from storage.base import ObjectStore
from storage.errors import NotFoundError

_CACHE_S = 30.0
_KID = re.compile("[0-9a-f]{64}")
MAX_ISS = 8192


@dataclass(frozen=True)
class Issuer:
    tenant: str
    iss: str
    kid: bytes
    key: IssuerKey
    x5_anchor: x509.Certificate | None
    created: int

    def to_record(self) -> bytes:
        anchor = None
        if self.x5_anchor is not None:
            anchor = self.x5_anchor.public_bytes(Encoding.PEM).decode()
        return orjson.dumps(
            {
                "tenant": self.tenant,
                "iss": self.iss,
                "kid": self.kid.hex(),
                "alg": ALGORITHMS[key_alg(self.key)],
                "key": key_pem(self.key),
                "x5_anchor": anchor,
                "created": self.created,
            }
        )

    @classmethod
    def from_record(cls, data: bytes) -> Issuer:
        record = orjson.loads(data)
        anchor = record.get("x5_anchor")
        return cls(
            record["tenant"],
            record["iss"],
            bytes.fromhex(record["kid"]),
            load_issuer_key(record["key"].encode()),
            x509.load_pem_x509_certificate(anchor.encode()) if anchor else None,
            int(record.get("created", 0)),
        )


def check_iss(iss: str) -> str:
    if not isinstance(iss, str) or not iss or len(iss) > MAX_ISS or not iss.isprintable():
        raise ValueError(f"an issuer (iss) is 1 to {MAX_ISS} printable characters")
    return iss


class IssuerRegistry:
    """Adds, lists, revokes and finds the issuer keys registered to tenants."""

    def __init__(
        self, store: ObjectStore, *, prefix: str = layout.TENANTS_PREFIX, cache_s: float = _CACHE_S
    ) -> None:
        self._store, self._prefix, self._cache_s = store, prefix, cache_s
        self._keys: dict[tuple[str, bytes], tuple[float, Issuer | None]] = {}
        self._lists: dict[str, tuple[float, list[Issuer]]] = {}

    async def add(
        self, tenant: str, iss: str, key_pem_bytes: bytes, x5_anchor: bytes | None = None
    ) -> Issuer:
        """Register ``key_pem_bytes`` (a PEM public key: P-256, P-384 or Ed25519) for ``iss`` to
        ``tenant``, with an optional PEM trust anchor; ValueError for a bad name, key or anchor.
        The tenant must exist (NotFoundError)."""
        check_tenant(tenant)
        check_iss(iss)
        key = load_issuer_key(key_pem_bytes)
        anchor = None
        if x5_anchor is not None:
            try:
                anchor = x509.load_pem_x509_certificate(x5_anchor)
            except ValueError as e:
                raise ValueError(f"the trust anchor is not a PEM certificate: {e}") from None
        await self._store.get(layout.tenant_name_key(tenant, self._prefix))  # NotFoundError: no tenant
        issuer = Issuer(tenant, iss, key_id(key), key, anchor, int(time.time()))
        await self._store.put(layout.issuer_key(tenant, issuer.kid.hex(), self._prefix), issuer.to_record())
        self._forget(tenant, issuer.kid)
        return issuer

    async def registered(self, tenant: str) -> list[Issuer]:
        """The tenant's issuer keys, oldest first."""
        check_tenant(tenant)
        found = []
        async for path in self._store.list(layout.issuers(tenant, self._prefix)):
            try:
                found.append(Issuer.from_record(await self._store.get(path)))
            except NotFoundError:
                continue  # revoked meanwhile
        return sorted(found, key=lambda i: (i.created, i.kid))

    async def revoke(self, tenant: str, kid_hex: str) -> Issuer:
        """Delete the tenant's issuer key ``kid_hex`` (64 hex digits); NotFoundError if none."""
        check_tenant(tenant)
        if not _KID.fullmatch(kid_hex):
            raise ValueError("name the issuer key by its kid: 64 lowercase hex digits, as `list` shows")
        path = layout.issuer_key(tenant, kid_hex, self._prefix)
        try:
            issuer = Issuer.from_record(await self._store.get(path))
        except NotFoundError:
            raise NotFoundError(f"tenant {tenant!r} has no issuer key {kid_hex}", key=path) from None
        await self._store.delete(path)
        self._forget(tenant, issuer.kid)
        return issuer

    async def find(self, tenant: str, kid: bytes) -> Issuer | None:
        """The tenant's issuer key named ``kid`` (cached), or None."""
        now = time.monotonic()
        cached = self._keys.get((tenant, kid))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            found: Issuer | None = Issuer.from_record(
                await self._store.get(layout.issuer_key(tenant, kid.hex(), self._prefix))
            )
        except NotFoundError:
            found = None
        if len(self._keys) > 100_000:
            self._keys.clear()
        self._keys[(tenant, kid)] = (now + self._cache_s, found)
        return found

    async def anchors(self, tenant: str, iss: str) -> list[x509.Certificate]:
        """The X.509 trust anchors registered to ``tenant`` for ``iss`` (cached)."""
        now = time.monotonic()
        cached = self._lists.get(tenant)
        if cached is None or cached[0] <= now:
            if len(self._lists) > 10_000:
                self._lists.clear()
            cached = self._lists[tenant] = (now + self._cache_s, await self.registered(tenant))
        return [i.x5_anchor for i in cached[1] if i.iss == iss and i.x5_anchor is not None]

    def _forget(self, tenant: str, kid: bytes) -> None:
        self._keys.pop((tenant, kid), None)
        self._lists.pop(tenant, None)
