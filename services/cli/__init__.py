"""The single `notar` entry point: one subcommand per user task (SPEC §7)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import aiohttp

from services.cli import anchor, keygen, notarize, receipt, serve, tenant, verify
from services.sdk import ApiError
from storage.errors import ConfigError, NotarError


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
    notarize.add_parser(sub)
    verify.add_parser(sub)
    receipt.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 0
    try:
        return int(ns.func(ns))
    except ConfigError as e:
        print(f"notar: {e}", file=sys.stderr)
        return 2
    except (NotarError, ApiError) as e:
        print(f"notar: {e}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError) as e:
        print(f"notar: cannot reach the server or read a file: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
