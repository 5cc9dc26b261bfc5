"""The client commands' trust (SPEC §7): the keys pinned in DATA_DIR's trust file, or given with
`--key` / `--policy`, reconciled with what a server presents (`merkle.pins`); and
`notar trust show|add|remove`.

The trust file, `DATA_DIR/trust.json` (mode 0600, replaced atomically), holds per origin the log
and clock keys first pinned and the signed statements that followed (`Pins.to_obj`). `notar
notarize` and `notar receipt upgrade` read it, accept from a server only keys that signed
statements link to it, pin a server's keys on first use (and say so), and write it back only
after a run that used them succeeded. With `--key` or `--policy` they trust exactly those keys
(and the statements that follow from them) and leave the file alone.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from merkle.cosignature import CosignatureVerifier, verifier_from_key
from merkle.keyhistory import KeyHistory, clock_key_name
from merkle.note import Verifier
from merkle.pins import Introducer, OfferedLog, PinningError, Pins, reconcile
from merkle.policy import parse_policy
from services.cli.commands import config_from
from storage.errors import ConfigError, VerificationError

TRUST_FILE = "trust.json"
SIGNATURE_LINE = "\n\n\u2014 "  # a signed note's blank line and first signature line (C2SP signed-note)


INTRODUCERS: list[Introducer] = []
"""The kinds of statement by which a pinned log's key introduces another log's keys (shards: shard
0's log key introduces a new shard's); rotations of one log are not among them, `merkle.pins`
follows those itself."""


def trust_path(data_dir: Path) -> Path:
    """The client's trust file in DATA_DIR."""
    return data_dir / TRUST_FILE


def load_pins(path: Path) -> Pins:
    """The pins of the trust file at `path` (none when it does not exist); ConfigError naming it
    when it cannot be read or is not a trust file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Pins()
    except OSError as e:
        raise ConfigError(f"cannot read the trust file {path}: {e.strerror}", setting="DATA_DIR") from e
    try:
        return Pins.from_obj(orjson.loads(data))
    except ValueError as e:  # orjson's JSONDecodeError is one
        raise ConfigError(
            f"the trust file {path} is unusable ({e}); delete it to start over",
            setting="DATA_DIR",
        ) from e


def save_pins(path: Path, pins: Pins) -> None:
    """Replace the trust file atomically (a crash leaves the old file or the new one), mode 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, orjson.dumps(pins.to_obj(), option=orjson.OPT_INDENT_2) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def offered(document: object) -> tuple[list[OfferedLog], list[str]]:
    """The logs a keys document (`GET /v1/keys`) presents, and every signed note in it (the
    statements, wherever the document carries them); ValueError when it is not a keys document."""
    logs = document.get("logs") if isinstance(document, dict) else None
    if not isinstance(logs, list) or not logs:
        raise ValueError('expected {"logs": [{"origin", "log", "clock", ...}, ...]}')
    out = []
    for log in logs:
        named = log if isinstance(log, dict) else {}
        origin, key, clock = named.get("origin"), named.get("log"), named.get("clock")
        if not isinstance(origin, str) or not isinstance(key, str) or not isinstance(clock, str | None):
            raise ValueError("each log needs an 'origin' and a 'log' key (and a 'clock' key)")
        out.append(OfferedLog(origin, key, clock))
    return out, [s for s in _strings(document) if SIGNATURE_LINE in s]


def given_pins(keys: list[str], policy: Path | None) -> Pins:
    """Pins made of `--key` values and a `--policy` file: per origin, its log key and its clock
    key (named `<origin>/clock`); a second log key of one origin must follow from the first through
    the server's statements. ConfigError (exit 2) for a key or policy that is unusable."""
    vkeys = list(keys)
    if policy is not None:
        try:
            parsed = parse_policy(policy.read_bytes())
        except (OSError, ValueError) as e:
            raise ConfigError(f"--policy {policy}: {e}", setting="POLICY") from e
        vkeys += [k.to_key() for k in parsed.log_keys()] + [k.to_key() for k in parsed.witness_keys()]
    logs: dict[str, str] = {}
    clocks: dict[str, str] = {}
    for vkey in vkeys:
        try:
            key = verifier_from_key(vkey)
        except ValueError as e:
            raise ConfigError(f"verifier key {vkey[:100]!r} is unusable: {e}", setting="KEY") from e
        if type(key) is Verifier:
            logs.setdefault(key.name, vkey)
        elif isinstance(key, CosignatureVerifier) and key.name.endswith("/clock"):
            clocks[key.name] = vkey
    if not logs:
        raise ConfigError(
            "--key / --policy name no log key (a key named after a log's origin)", setting="KEY"
        )
    return Pins({o: KeyHistory.start(log, clocks.get(clock_key_name(o))) for o, log in logs.items()})


class ClientTrust:
    """The trust of one run of a client command: the pins it checks a server against, the notes
    it owes the user, and the trust file to update once the run succeeded (None: keys were given)."""

    def __init__(self, pins: Pins, path: Path | None) -> None:
        self.pins, self._path, self._saved = pins, path, pins
        self.notes: list[str] = []

    @classmethod
    def of(cls, ns: argparse.Namespace, data_dir: Path) -> ClientTrust:
        """The keys `--key` / `--policy` give, else the trust file in `data_dir` (DATA_DIR)."""
        keys, policy = list(getattr(ns, "key", []) or []), getattr(ns, "policy", None)
        if keys or policy is not None:
            return cls(given_pins(keys, policy), None)
        path = trust_path(data_dir)
        return cls(load_pins(path), path)

    def reconcile(self, document: object, url: str) -> None:
        """Take the server's keys document: VerificationError (the server is refused) when its keys
        cannot be reconciled with the trusted ones, ConfigError when it is not a keys document."""
        try:
            logs, statements = offered(document)
        except ValueError as e:
            raise ConfigError(f"the keys {url} publishes are not usable: {e}", setting="URL") from e
        try:
            self.pins, notes = reconcile(
                self.pins, logs, statements, first_use=self._path is not None, introducers=INTRODUCERS
            )
        except PinningError as e:
            where = f"the trust file {self._path}" if self._path is not None else "--key / --policy"
            raise VerificationError(
                f"refusing the server at {url}: {e} (trusted: {where}). If its operator changed keys "
                "without a signed statement, check the new key with them, then `notar trust remove "
                "ORIGIN` and `notar trust add KEY`"
            ) from e
        self.notes += [f"{note} ({url})" for note in notes]

    def keys_at(self, origin: str, size: int) -> list[str]:
        return self.pins.keys_at(origin, size)

    def save(self) -> None:
        """Write the pins back, when they changed and came from the trust file."""
        if self._path is not None and self.pins != self._saved:
            save_pins(self._path, self.pins)
            self._saved = self.pins


# -- notar trust show|add|remove -------------------------------------------------------------------


def _show(pins: Pins, path: Path) -> str:
    if not pins.histories:
        return f"no keys are pinned in {path}"
    lines = [f"pinned in {path}:"]
    for origin in sorted(pins.histories):
        lines.append(f"  {origin}")
        for period in pins.histories[origin].periods:
            until = "on" if period.until_size is None else f"to {period.until_size}"
            how = "pinned" if period.statement is None else "by a signed rotation statement"
            lines.append(f"    log   {period.log.to_key()}  (tree sizes {period.from_size} {until}; {how})")
            if period.clock is not None:
                lines.append(f"    clock {period.clock.to_key()}")
    return "\n".join(lines)


def trust(ns: argparse.Namespace) -> int:
    path = trust_path(config_from(ns, dict(os.environ)).store.data_dir)
    pins = load_pins(path)
    if ns.action == "show":
        print(_show(pins, path))
        return 0
    if ns.action == "remove":
        missing = [o for o in ns.items if o not in pins.histories]
        if missing:
            raise ConfigError(f"not pinned in {path}: {', '.join(missing)}", setting="ORIGIN")
        for origin in ns.items:
            pins = pins.without(origin)
        save_pins(path, pins)
        print(f"removed {', '.join(ns.items)} from {path}")
        return 0
    added = given_pins(list(ns.items), ns.policy)
    for origin, history in added.histories.items():
        have = pins.history(origin)
        if have is not None and history.periods[0].log not in [p.log for p in have.periods]:
            raise ConfigError(
                f"{origin} is pinned with other keys in {path}; `notar trust remove {origin}` first",
                setting="KEY",
            )
        if have is None:
            pins = pins.with_history(history)
    save_pins(path, pins)
    print(_show(pins, path))
    return 0
