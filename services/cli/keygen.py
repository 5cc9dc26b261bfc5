"""`notar keygen`: create the log and clock signing keys and print their verifier keys."""

from __future__ import annotations

import argparse
import os

from services.anchor.app import ensure_keys, keys_from
from services.cli.serve import add_setting_flags, settings_from


def keygen(ns: argparse.Namespace) -> int:
    settings = settings_from(ns, dict(os.environ))
    for path in ensure_keys(settings):
        print(f"created {path} (mode 0600)")
    keys = keys_from(settings)
    print(f"log   {keys.verifier_keys['log']}")
    print(f"clock {keys.verifier_keys['clock']}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keygen", help="create the log and clock signing keys (if missing) and print them")
    add_setting_flags(p)
    p.set_defaults(func=keygen)
