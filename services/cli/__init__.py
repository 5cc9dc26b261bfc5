"""The single `notar` entry point: one subcommand per user task (SPEC §7)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from services.cli import anchor, keygen, serve, tenant
from storage.errors import ConfigError, NotarError

# Subcommands of SPEC §7 whose issues have not landed yet: they say so and exit 2.
_PLANNED: dict[str, str] = {
    "notarize": "notarize files and write FILE.receipt.json",
    "verify": "verify a receipt offline",
    "receipt": "upgrade or export a receipt",
}


def package_version() -> str:
    try:
        return version("notar")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notar",
        description="notar: proof-of-existence receipts from an append-only, publicly "
        "auditable Merkle log, anchored to chains and time-stamp authorities.",
    )
    parser.add_argument("--version", action="version", version=f"notar {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parser(sub)
    keygen.add_parser(sub)
    tenant.add_parser(sub)
    anchor.add_parser(sub)
    for name, help_text in _PLANNED.items():
        sub.add_parser(name, help=help_text).add_argument(
            "args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 0
    if not hasattr(ns, "func"):
        print(f"notar: '{ns.command}' is not available in notar {package_version()} yet", file=sys.stderr)
        return 2
    try:
        return int(ns.func(ns))
    except ConfigError as e:
        print(f"notar: {e}", file=sys.stderr)
        return 2
    except NotarError as e:
        print(f"notar: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
