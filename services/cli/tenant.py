"""`notar tenant add NAME`: create a tenant and print its API key once (only its hash is kept);
`key NAME` adds another key (rotation), `keys NAME` lists them by hash, `revoke NAME KEY` ends one."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from services.cli.commands import config_from
from services.common.stores import open_store
from services.common.tenants import TenantRegistry
from services.published.layout import checkpoint_key
from storage.base import ObjectStore
from storage.errors import ConfigError, NotFoundError
from storage.fs import FsStore
from storage.s3 import S3Store


async def _run(ns: argparse.Namespace) -> list[str]:
    """The lines to print for `ns.action`."""
    env = dict(os.environ)
    store = await open_store(config_from(ns, env).store, env)
    try:
        registry = TenantRegistry(store)
        if ns.action == "keys":
            return [
                f"{digest}  created {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(created))}"
                for digest, created in await registry.keys(ns.name)
            ]
        if ns.action == "revoke":
            digest = await registry.revoke(ns.name, ns.key)
            return [
                f"revoked the API key of {ns.name} with SHA-256 {digest}; servers refuse it "
                "within KEY_CACHE_S"
            ]
        what = "new API key for" if ns.action == "key" else "created tenant"
        key = await (registry.new_key(ns.name) if ns.action == "key" else registry.add(ns.name))
        if not await _has_log(store):
            print(
                f"notar: warning: no server has run on {_where(store)}: a server on another DATA_DIR "
                "or STORE will not know this key (run this with its settings)",
                file=sys.stderr,
            )
        return [f"{what} {ns.name} in {_where(store)}; the API key below is shown only once:", key]
    finally:
        await store.close()


def _where(store: ObjectStore) -> str:
    """The store, as a user recognises it: the directory, or the S3 endpoint and bucket."""
    if isinstance(store, FsStore):
        return f"the directory store {store.root}"
    return store.where if isinstance(store, S3Store) else type(store).__name__


async def _has_log(store: ObjectStore) -> bool:
    """Whether a log was ever published in `store`: a server has run on it."""
    try:
        await store.get(checkpoint_key())
    except NotFoundError:
        return False
    return True


def tenant(ns: argparse.Namespace) -> int:
    if (ns.action == "revoke") != (ns.key is not None):
        raise ConfigError(
            "give the key (or its SHA-256 from `notar tenant keys NAME`) to revoke, and only to revoke",
            setting="KEY",
        )
    try:
        lines = asyncio.run(_run(ns))
    except ValueError as e:
        raise ConfigError(str(e), setting="NAME" if ns.action != "revoke" else "KEY") from e
    for line in lines:
        print(line)
    return 0
