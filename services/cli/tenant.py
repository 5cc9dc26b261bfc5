"""`notar tenant add NAME`: create a tenant and print its API key once (only its hash is kept)."""

from __future__ import annotations

import argparse
import asyncio
import os

from services.cli.serve import add_setting_flags, settings_from
from services.common.stores import open_store
from services.common.tenants import TenantRegistry
from storage.errors import ConfigError


async def _add(ns: argparse.Namespace, rotate: bool) -> str:
    env = dict(os.environ)
    store = await open_store(settings_from(ns, env), env)
    try:
        registry = TenantRegistry(store)
        return await (registry.new_key(ns.name) if rotate else registry.add(ns.name))
    finally:
        await store.close()


def tenant(ns: argparse.Namespace) -> int:
    try:
        key = asyncio.run(_add(ns, ns.action == "key"))
    except ValueError as e:
        raise ConfigError(str(e), setting="NAME") from e
    what = "new API key for" if ns.action == "key" else "created tenant"
    print(f"{what} {ns.name}; the API key below is shown only once:")
    print(key)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tenant", help="create a tenant (add) or another API key for it (key)")
    p.add_argument("action", choices=("add", "key"))
    p.add_argument("name", help="tenant name: 1-64 of A-Z a-z 0-9 . _ -")
    add_setting_flags(p)
    p.set_defaults(func=tenant)
