"""The single `notar` entry point: one subcommand per user task (SPEC §7). The command line is
parsed with `commands` alone; only the module of the subcommand run is imported."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import aiohttp

from services.cli.commands import SUBCOMMANDS
from services.common.config import unknown_variables
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
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command of `argv`; its exit status. A reader that leaves early (`notar … | head`)
    ends it quietly, with the status of a process SIGPIPE stops."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # inside the guard: at exit, a flush to a closed pipe would be noisy
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more reaches it
        return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    for warning in unknown_variables(os.environ):  # a typo would leave a setting at its default
        print(f"notar: warning: {warning}", file=sys.stderr, flush=True)
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 0
    module, _, name = ns.run.partition(":")
    run = getattr(importlib.import_module(f"services.cli.{module}"), name)  # only the one run
    try:
        return int(run(ns))
    except ConfigError as e:
        print(f"notar: {e}", file=sys.stderr)
        return 2
    except (NotarError, ApiError) as e:
        print(f"notar: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # our reader left (`| head`): `main` ends quietly
    except (aiohttp.ClientError, OSError) as e:
        print(f"notar: cannot reach the server or read a file: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
