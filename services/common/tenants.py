"""Tenants and their API keys, kept in the object store so every stateless pod can check them.

A key is `notar_` + 43 characters of base64url (256 random bits); only SHA-256 of it is stored —
the key's entropy makes a slow hash unnecessary — under `tenants/keys/<hex>`, and looking a key up
by its hash takes the same path whatever the key, so nothing leaks through timing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

import orjson

from services.model import check_tenant
from services.published import layout
from storage.base import ObjectStore
from storage.errors import ConflictError, NotFoundError

KEY_PREFIX = "notar_"
KEY_SHAPE = re.compile(KEY_PREFIX + "[A-Za-z0-9_-]{43}")  # 256 bits of base64url
_CACHE_S = 30.0


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class TenantRegistry:
    """Adds tenants, their API keys and revocations, and resolves API keys to tenant names
    (an answer is cached per key hash for `cache_s`: a revoked key works at most that long)."""

    def __init__(
        self, store: ObjectStore, *, prefix: str = layout.TENANTS_PREFIX, cache_s: float = _CACHE_S
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def add(self, name: str) -> str:
        """Create tenant `name` and return its API key (shown once; only its hash is kept)."""
        check_tenant(name)
        try:
            record = orjson.dumps({"name": name, "id": secrets.token_hex(8)})
            await self._store.put_if_version(layout.tenant_name_key(name, self._prefix), record, None)
        except ConflictError as e:
            raise ConflictError(f"tenant {name!r} already exists", key=e.key) from e
        return await self.new_key(name)

    async def new_key(self, name: str) -> str:
        """Another API key for an existing tenant (key rotation)."""
        check_tenant(name)
        key = KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        record = orjson.dumps({"tenant": name, "created": int(time.time())})
        await self._store.put_if_absent(layout.api_key_key(hash_key(key), self._prefix), record)
        return key

    async def keys(self, name: str) -> list[tuple[str, int]]:
        """The SHA-256 (hex) and creation time of each of tenant `name`'s API keys."""
        check_tenant(name)
        found = []
        async for path in self._store.list(layout.api_keys(self._prefix)):
            record = orjson.loads(await self._store.get(path))
            if record.get("tenant") == name:
                found.append((path.rpartition("/")[2], int(record.get("created", 0))))
        return sorted(found, key=lambda k: k[1])

    async def revoke(self, name: str, key: str) -> str:
        """Revoke one of tenant `name`'s API keys, named by the key or by its SHA-256 (hex, as
        `keys` lists it); its hash. NotFoundError when `name` has no such key."""
        check_tenant(name)
        if KEY_SHAPE.fullmatch(key):
            digest = hash_key(key)
        elif re.fullmatch("[0-9a-f]{64}", key):
            digest = key
        else:
            raise ValueError("name the key to revoke by the key itself or by its SHA-256 in hex")
        path = layout.api_key_key(digest, self._prefix)
        try:
            record = orjson.loads(await self._store.get(path))
        except NotFoundError:
            record = {}
        if record.get("tenant") != name:
            raise NotFoundError(f"tenant {name!r} has no API key with SHA-256 {digest}", key=path)
        await self._store.delete(path)
        self._cache.pop(digest, None)
        return digest

    async def resolve(self, api_key: str) -> str | None:
        """The tenant owning `api_key`, or None. Only the shape `new_key` makes is looked up: a
        header holding bytes that are not UTF-8 reaches here with surrogates, which no hash takes."""
        if not KEY_SHAPE.fullmatch(api_key):
            return None
        digest = hash_key(api_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            record = orjson.loads(await self._store.get(layout.api_key_key(digest, self._prefix)))
            tenant: str | None = str(record["tenant"])
        except NotFoundError:
            tenant = None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_s, tenant)
        return tenant


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
