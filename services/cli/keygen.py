"""`notar keygen`: create the log and clock signing keys and the index key (when missing) and
print the verifier keys."""

from __future__ import annotations

import argparse
import os

from services.anchor.app import ensure_keys, keys_from
from services.cli.commands import config_from


def keygen(ns: argparse.Namespace) -> int:
    config = config_from(ns, dict(os.environ)).keys
    for path in ensure_keys(config):
        print(f"created {path} (mode 0600)")
    keys = keys_from(config)
    print(f"log   {keys.verifier_keys['log']}")
    print(f"clock {keys.verifier_keys['clock']}")
    return 0
