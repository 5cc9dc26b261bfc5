"""Pinned trust for the client tools (SPEC §7): the keys a client first saw for each log, and how a
server's keys are reconciled with them — through signed statements only.

A client (`notar notarize`, `notar receipt upgrade`) keeps, per origin, the key history it trusts:
the log key and clock key it pinned, and the signed statements that moved them on
(``merkle.keyhistory``). A server presents its keys (`GET /v1/keys`) and statements; `reconcile`
accepts them only when every key presented is in the trusted history of its origin once the
statements are applied:

- a rotation statement signed by an origin's current log key extends its history (and a chain of
  them that ends at the pinned first key extends it backwards: a client that pinned after a
  rotation meets the retired key it never saw, and the statement that retired it);
- a log the client never pinned, offered beside pinned ones, is accepted only when an
  *introducer* opens a statement signed by the current log key of a pinned log that introduces
  that log's keys (shards: shard 0's log key introduces a new shard's). Introducers are given by
  the caller, so each kind of statement is read by the code that defines it; the check is the
  same for every kind;
- when none of the logs offered is pinned, the server is new to this client: with `first_use`
  its keys are pinned as they are (trust on first use, said in a note), else refused.

Anything else raises ``PinningError`` naming the origin and the key: the client refuses that
server and changes nothing. Pure: no I/O (services/cli/trust.py keeps the pins in a file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from merkle.cosignature import verifier_from_key
from merkle.keyhistory import ClockVerifier, KeyHistory, KeyPeriod, LogKey, clock_key_name

PINS_FORMAT = "notar.trust.v1"


class PinningError(ValueError):
    """A server's keys cannot be reconciled with the pinned ones."""


@dataclass(frozen=True)
class OfferedLog:
    """One log as a server presents it: its origin, a log key and the clock key beside it (verifier
    key strings; `clock` None when not given)."""

    origin: str
    log: str
    clock: str | None = None


@dataclass(frozen=True)
class Introduction:
    """What a statement of some kind says, once its signature is checked: the keys of a log."""

    origin: str
    log: LogKey
    clock: ClockVerifier | None = None


Introducer = Callable[[str, LogKey], Introduction]
"""Opens a statement (a signed note's text) under `signer`, the current log key of a pinned log:
the log it introduces when the statement is of the introducer's kind and carries a valid
signature of `signer`; ValueError otherwise."""


def _key(vkey: str | LogKey) -> str:
    return vkey if isinstance(vkey, str) else vkey.to_key()


def _log_keys(history: KeyHistory) -> list[str]:
    return [p.log.to_key() for p in history.periods]


def _clock_keys(history: KeyHistory) -> list[str]:
    return [p.clock.to_key() for p in history.periods if p.clock is not None]


@dataclass(frozen=True)
class Pins:
    """The trusted key history of each pinned origin."""

    histories: Mapping[str, KeyHistory] = field(default_factory=dict)

    def history(self, origin: str) -> KeyHistory | None:
        return self.histories.get(origin)

    def keys_at(self, origin: str, size: int) -> list[str]:
        """The verifier keys trusted for a checkpoint of `origin` of tree size `size`: the log and
        clock keys whose period holds it (none when the origin is not pinned)."""
        history = self.histories.get(origin)
        if history is None:
            return []
        return [p.log.to_key() for p in history.at(size)] + [
            p.clock.to_key() for p in history.at(size) if p.clock is not None
        ]

    def keys(self) -> list[str]:
        """Every pinned verifier key, of every origin and period."""
        return [k for h in self.histories.values() for k in _log_keys(h) + _clock_keys(h)]

    def with_history(self, history: KeyHistory) -> Pins:
        return Pins({**self.histories, history.origin: history})

    def without(self, origin: str) -> Pins:
        return Pins({o: h for o, h in self.histories.items() if o != origin})

    def to_obj(self) -> dict[str, Any]:
        """`{"format", "logs": [{"origin", "log", "clock", "statements"}]}`: each origin's first
        keys and the statements that followed, from which its history is rebuilt."""
        logs = []
        for origin in sorted(self.histories):
            first = self.histories[origin].periods[0]
            logs.append(
                {
                    "origin": origin,
                    "log": first.log.to_key(),
                    "clock": first.clock.to_key() if first.clock is not None else None,
                    "statements": list(self.histories[origin].statements),
                }
            )
        return {"format": PINS_FORMAT, "logs": logs}

    @classmethod
    def from_obj(cls, obj: object) -> Pins:
        """Pins written by `to_obj`, every statement checked again; ValueError naming what is wrong."""
        logs = obj.get("logs") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or obj.get("format") != PINS_FORMAT or not isinstance(logs, list):
            raise ValueError(f'not a trust file: expected {{"format": "{PINS_FORMAT}", "logs": [...]}}')
        histories: dict[str, KeyHistory] = {}
        for entry in logs:
            if not isinstance(entry, dict) or not isinstance(entry.get("log"), str):
                raise ValueError("each pinned log needs its 'log' key")
            statements = entry.get("statements", [])
            clock = entry.get("clock")
            if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
                raise ValueError("'statements' must be a list of signed notes")
            if clock is not None and not isinstance(clock, str):
                raise ValueError("'clock' must be a verifier key or null")
            history = KeyHistory.from_statements(entry["log"], statements, clock)
            if entry.get("origin") != history.origin or history.origin in histories:
                raise ValueError(f"the pinned log {history.origin!r} is listed under another origin or twice")
            histories[history.origin] = history
        return cls(histories)


def _fold(history: KeyHistory, statements: Sequence[str]) -> KeyHistory:
    """`history` extended by every statement that rotates it, in whatever order they come."""
    moved = True
    while moved:
        moved = False
        for statement in statements:
            try:
                history = history.rotate(statement)
            except ValueError:
                continue
            moved = True
    return history


def _start(log: str | LogKey, clock: str | ClockVerifier | None) -> KeyHistory | None:
    try:
        return KeyHistory.start(log, clock)
    except ValueError:
        return None


def _reach(
    origin: str, root: KeyHistory | None, offered: Sequence[OfferedLog], statements: Sequence[str]
) -> KeyHistory:
    """The history of `origin` that holds every offered key and, when `root` is given, every key
    of `root` (root: what is pinned); PinningError when no such history follows from the
    statements."""
    known = list(statements) + (list(root.statements) if root is not None else [])
    candidates = [root] if root is not None else []
    # An offered key starts a candidate with its offered clock key only on first use: a retired
    # key that a statement links to the pinned ones is vouched for, its clock key is not.
    candidates += [h for o in offered if (h := _start(o.log, o.clock if root is None else None)) is not None]
    wanted = {o.log for o in offered}
    reached: set[str] = set()
    for candidate in candidates:
        history = _fold(candidate, known)
        logs = _log_keys(history)
        if root is not None and not set(_log_keys(root)) <= set(logs):
            continue
        if wanted <= set(logs):
            return _with_clocks(history, offered, trusted=root is None)
        reached |= set(logs)
    stray = sorted(wanted - reached)[0] if wanted - reached else sorted(wanted)[0]
    if root is None:
        raise PinningError(
            f"the server presents log keys for {origin} that no signed rotation statements make one "
            f"history of (such as {stray})"
        )
    raise PinningError(
        f"the server presents log key {stray} for {origin}, which no signed rotation statement links to "
        f"the keys pinned for it ({', '.join(_log_keys(root))})"
    )


def _with_clocks(history: KeyHistory, offered: Sequence[OfferedLog], *, trusted: bool) -> KeyHistory:
    """`history` checked against the clock keys offered beside its log keys: a period's clock key
    must be the one offered; a period without one takes the offered one only when `trusted`
    (first use), else stays without (its signed time is not checked)."""
    clocks = {o.log: o.clock for o in offered if o.clock is not None}
    periods = list(history.periods)
    for i, period in enumerate(periods):
        offered_clock = clocks.get(period.log.to_key())
        if offered_clock is None:
            continue
        if period.clock is not None and period.clock.to_key() != offered_clock:
            raise PinningError(
                f"the server presents clock key {offered_clock} for {history.origin}, not the pinned "
                f"{period.clock.to_key()}"
            )
        if period.clock is None and trusted:
            clock = verifier_from_key(offered_clock)
            if not isinstance(clock, ClockVerifier) or clock.name != clock_key_name(history.origin):
                raise PinningError(f"{offered_clock} is not a clock key of {history.origin}")
            periods[i] = KeyPeriod(period.log, clock, period.from_size, period.until_size, period.statement)
    return KeyHistory(history.origin, tuple(periods))


def _introduced(
    origin: str,
    statements: Sequence[str],
    signers: Iterable[KeyHistory],
    introducers: Sequence[Introducer],
) -> tuple[KeyHistory, str] | None:
    """The history that a statement, signed by the current log key of one of `signers`, starts for
    `origin`, and the signer's origin; None when no statement does."""
    for signer in signers:
        for statement in statements:
            for introduce in introducers:
                try:
                    intro = introduce(statement, signer.current.log)
                except ValueError:
                    continue
                if intro.origin == origin:
                    history = _start(intro.log, intro.clock)
                    if history is not None:
                        return history, signer.origin
    return None


def reconcile(
    pins: Pins,
    offered: Sequence[OfferedLog],
    statements: Sequence[str],
    *,
    first_use: bool,
    introducers: Sequence[Introducer] = (),
) -> tuple[Pins, list[str]]:
    """The pins with what the server's `offered` logs and `statements` lawfully add (module doc),
    and a note for the user per change; PinningError when a key cannot be reconciled."""
    by_origin: dict[str, list[OfferedLog]] = {}
    for log in offered:
        by_origin.setdefault(log.origin, []).append(log)
    if not by_origin:
        raise PinningError("the server presents no log keys")
    notes: list[str] = []
    histories = dict(pins.histories)
    pinned_here = [o for o in by_origin if o in histories]
    if not pinned_here and not first_use:
        raise PinningError(
            f"the server presents the keys of {', '.join(sorted(by_origin))}, none of which is trusted here"
        )
    for origin in sorted(by_origin):
        before = histories.get(origin)
        if before is not None:
            after = _reach(origin, before, by_origin[origin], statements)
            first = after.periods.index(next(p for p in after.periods if p.log == before.periods[0].log))
            for period in after.periods[:first]:
                notes.append(
                    f"accepted the key {period.log.to_key()} that {origin} used before the pinned one, "
                    "retired by a statement it signed"
                )
            for period in after.periods[first + len(before.periods) :]:
                notes.append(
                    f"accepted the rotation of {origin} to log key {period.log.to_key()} from tree size "
                    f"{period.from_size}, signed by its previous key"
                )
            histories[origin] = after
        elif pinned_here:
            found = _introduced(origin, statements, [histories[o] for o in pinned_here], introducers)
            if found is None:
                raise PinningError(
                    f"the server presents a log {origin} that is not pinned here, and no statement signed "
                    f"by a pinned log's key ({', '.join(sorted(pinned_here))}) introduces it"
                )
            histories[origin] = _reach(origin, found[0], by_origin[origin], statements)
            notes.append(f"accepted the keys of {origin}, introduced by a statement of {found[1]}'s log key")
        else:
            histories[origin] = _reach(origin, None, by_origin[origin], statements)
            notes.append(
                f"pinned the keys of {origin} on first use: {', '.join(_log_keys(histories[origin]))}; "
                "from now on a server with other keys for it is refused"
            )
    return Pins(histories), notes
