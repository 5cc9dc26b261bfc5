"""The `notar` executable's surface, as users read it: each command's --help lists its own options
(server settings under `notar serve --help` only), no default is shown twice, a NOTAR_* variable
that is no setting is named, and a reader that leaves early (`| head`) ends it quietly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.services.cli.test_cli import NOTAR, run

SERVER_ONLY = (
    "--data-dir",
    "--listen",
    "--store",
    "--s3-bucket",
    "--batch-ms",
    "--drain-s",
    "--log-key-file",
)


def _options(help_text: str) -> dict[str, str]:
    """Each option of a --help text and its help, wrapped lines joined."""
    options: dict[str, str] = {}
    current = None
    for line in help_text.partition("\n\n")[2].splitlines():  # after the usage
        m = re.match(r"  (-\S+)", line)
        if m:
            current = m.group(1).split(",")[0] if not m.group(1).startswith("-h") else "-h"
            options[current] = line
        elif current is not None and line.startswith("    "):
            options[current] += " " + line.strip()
        else:
            current = None
    return options


def _help(*command: str) -> dict[str, str]:
    r = run(*command, "--help", env=dict(os.environ), check=True)
    return _options(r.stdout)


def test_each_command_lists_only_its_own_options_with_each_default_once() -> None:
    verify = _help("verify")
    assert {"--key", "--online", "--url", "--evm-rpc"} <= set(verify)
    notarize = _help("notarize")
    assert {"--upload", "--url", "--api-key"} <= set(notarize)
    upgrade = _help("receipt", "upgrade")
    assert {"--key", "--url", "--policy"} <= set(upgrade)
    for client in (verify, notarize, upgrade):
        # --data-dir: notarize and receipt upgrade keep the pinned keys in DATA_DIR/trust.json
        assert not set(client) & (set(SERVER_ONLY) - {"--data-dir"}), sorted(client)
    assert "--data-dir" in notarize and "--data-dir" in upgrade and "--data-dir" not in verify
    assert "--api-key" not in verify and "--api-key" not in upgrade  # an upgrade needs no API key
    serve = _help("serve")
    assert set(SERVER_ONLY) <= set(serve) and "--api-key" not in serve and "--url" not in serve

    for command in (("serve",), ("verify",), ("notarize",), ("receipt", "upgrade"), ("tenant",), ("keygen",)):
        for option, text in _help(*command).items():
            assert text.lower().count("default") <= 1, (command, option, text)
    assert "(default 10)" in serve["--drain-s"] and "(default all)" in serve["--role"]


def test_a_typo_in_a_notar_variable_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "NOTAR_DATA_DIR": str(tmp_path), "NOTAR_ORIGN": "example.org/log"}
    r = run("keygen", env=env, check=True)
    assert "notar: warning: unknown setting NOTAR_ORIGN (did you mean NOTAR_ORIGIN?)" in r.stderr
    assert "warning" not in run("keygen", env={**os.environ, "NOTAR_DATA_DIR": str(tmp_path)}).stderr


def test_a_reader_that_leaves_early_ends_it_quietly(tmp_path: Path) -> None:
    env = {**os.environ, "NOTAR_DATA_DIR": str(tmp_path)}
    for command in (["--help"], ["serve", "--help"], ["keygen"]):
        read, write = os.pipe()
        os.close(read)  # `| head` that has already left: every write fails with EPIPE
        try:
            proc = subprocess.run(
                [NOTAR, *command], stdout=write, stderr=subprocess.PIPE, env=env, text=True, timeout=60
            )
        finally:
            os.close(write)
        assert proc.stderr == "", (command, proc.stderr)
        # argparse drops its own write errors: --help exits 0; a command's output stops as SIGPIPE would
        assert proc.returncode == (0 if "--help" in command else 128 + signal.SIGPIPE), (
            command,
            proc.returncode,
        )
