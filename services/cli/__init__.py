"""The single `notar` entry point: one subcommand per user task (SPEC §7)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

# Subcommands of SPEC §7 and the issue that delivers each; until then they say so and exit 2.
_PLANNED = {
    "serve": "run ingest, anchor and verify (embedded default)",
    "keygen": "create the log and clock signing keys",
    "tenant": "manage tenants and their API keys",
    "notarize": "notarize files and write FILE.receipt.json",
    "verify": "verify a receipt offline",
    "receipt": "upgrade or export a receipt",
    "anchor": "deploy the EVM anchor contract",
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
    for name, help_text in _PLANNED.items():
        sub.add_parser(name, help=help_text, add_help=True).add_argument(
            "args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 0
    print(f"notar: '{ns.command}' is not available in notar {package_version()} yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
