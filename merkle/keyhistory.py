"""A log's key history (SPEC §6, §11): signed rotation statements, and the keys valid at a tree size.

A log signature carries no time, so a key's period is a range of tree sizes. A rotation is a C2SP
signed note by the *old* log key (Ed25519, type 0x01, named after the origin) whose text is exactly
six lines, each ending in a newline::

    notar.key-rotation.v1
    origin <origin>
    from <N>
    old <old log verifier key>
    log <new log verifier key>
    clock <new clock verifier key>

``N`` is the handover tree size (decimal, no leading zeros): the old log key signs checkpoints of
sizes up to N, the new one from N on; both may sign size N, the tree head at which the log changes
keys (the new key re-signs it at once, and receipts of size N signed by the old key stay valid).
The old and new log keys are named after the origin; the clock key is a cosignature key (type 0x04,
or 0x06 for ML-DSA-44) named ``<origin>/clock``. Nothing else is allowed: no other line, space or
spelling, so one rotation has one text. The first line keeps the statement apart from every other
note the log key signs: a checkpoint's second line is a bare number, never ``origin …``.

``KeyHistory`` folds a chain of statements from the log's first key: each statement must be signed
by the key the previous one introduced, hand over at a size no smaller than that key's start, and
introduce keys never used before in the chain. Malformed or refused input raises ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from merkle.checkpoint import MAX_TREE_SIZE
from merkle.cosignature import CosignatureVerifier, verifier_from_key
from merkle.mldsa import MLDSA44CosignatureVerifier
from merkle.note import NoteSigner, Verifier, is_valid_key_name, parse_note, sign_note, verify_note

ROTATION_HEADER = "notar.key-rotation.v1"
_FIELDS = ("origin", "from", "old", "log", "clock")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
ClockVerifier = CosignatureVerifier | MLDSA44CosignatureVerifier
LogKey = Verifier | CosignatureVerifier | MLDSA44CosignatureVerifier
"""A log key: notar's are Ed25519 (type 0x01); other logs may sign checkpoints with a cosignature
type (tlog-checkpoint), which a history can start from but a rotation statement cannot name."""


def clock_key_name(origin: str) -> str:
    """The clock key's name for a log (SPEC §2)."""
    return f"{origin}/clock"


@dataclass(frozen=True)
class Rotation:
    """One rotation statement: from tree size ``from_size`` on, ``new_log`` and ``new_clock``
    replace ``old_log`` for the log ``origin``."""

    origin: str
    from_size: int
    old_log: Verifier
    new_log: Verifier
    new_clock: ClockVerifier

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.origin):
            raise ValueError(f"rotation: origin {self.origin[:80]!r} is not a valid key name")
        if isinstance(self.from_size, bool) or not isinstance(self.from_size, int):
            raise ValueError("rotation: the tree size is not an int")
        if not 0 <= self.from_size <= MAX_TREE_SIZE:
            raise ValueError(f"rotation: tree size {self.from_size} is out of range")
        for what, key in (("old", self.old_log), ("log", self.new_log)):
            if type(key) is not Verifier or key.name != self.origin:
                raise ValueError(f"rotation: the {what} key must be an Ed25519 log key named {self.origin!r}")
        clock = clock_key_name(self.origin)
        if not isinstance(self.new_clock, ClockVerifier) or self.new_clock.name != clock:
            raise ValueError(f"rotation: the clock key must be a cosignature key named {clock!r}")
        if self.new_log.public_key == self.old_log.public_key:
            raise ValueError("rotation: the new log key is the old one")

    def text(self) -> str:
        """The statement's note text (module doc), the one form it is signed in."""
        values = (
            self.origin,
            str(self.from_size),
            self.old_log.to_key(),
            self.new_log.to_key(),
            self.new_clock.to_key(),
        )
        return ROTATION_HEADER + "\n" + "".join(f"{k} {v}\n" for k, v in zip(_FIELDS, values, strict=True))

    def sign(self, old_log_signer: NoteSigner) -> str:
        """The statement as a signed note by the old log key; ``ValueError`` for another key."""
        if (old_log_signer.name, old_log_signer.key_id) != (self.old_log.name, self.old_log.key_id):
            raise ValueError("a rotation is signed by the old log key it names")
        return sign_note(self.text(), [old_log_signer])


def statement_fields(text: str, header: str, fields: tuple[str, ...], what: str) -> dict[str, str]:
    """The values of a signed statement's text: the line `header`, then one `<field> <value>`
    line per field, in order, each ending in a newline, nothing else (rotation statements, shard
    introductions: merkle.introduction); ``ValueError`` naming `what` otherwise."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise ValueError(f"a {what} is text ending in a newline")
    first, *lines = text[:-1].split("\n")
    if first != header:
        raise ValueError(f"not a {what}: the first line is not {header!r}")
    if len(lines) != len(fields):
        raise ValueError(f"a {what} has {len(fields) + 1} lines, not {len(lines) + 1}")
    values: dict[str, str] = {}
    for expected, line in zip(fields, lines, strict=True):
        name, sep, value = line.partition(" ")
        if name != expected or not sep or not value or " " in value:
            raise ValueError(f"{what}: expected `{expected} <value>`, got {line[:80]!r}")
        values[name] = value
    return values


def parse_rotation(text: str) -> Rotation:
    """The statement in a note text, parsed strictly (module doc); signatures are not looked at."""
    values = statement_fields(text, ROTATION_HEADER, _FIELDS, "rotation statement")
    if not _DECIMAL.fullmatch(values["from"]) or int(values["from"]) > MAX_TREE_SIZE:
        raise ValueError(f"rotation statement: tree size {values['from'][:30]!r} is not a decimal")
    rotation = Rotation(
        values["origin"],
        int(values["from"]),
        Verifier.from_key(values["old"]),
        Verifier.from_key(values["log"]),
        _clock_key(values["clock"]),
    )
    if rotation.text() != text:  # one statement, one text: no second spelling of a key
        raise ValueError("rotation statement is not in its canonical form")
    return rotation


def read_rotation(note: str | bytes) -> Rotation:
    """The statement of a signed rotation note, parsed strictly, its signatures not checked."""
    return parse_rotation(parse_note(note).text)


def open_rotation(note: str | bytes, old_log: LogKey) -> Rotation:
    """The statement of ``note`` if it names ``old_log`` as the key it retires and carries that
    key's valid signature; ``ValueError`` otherwise. Other signatures are ignored."""
    parsed = parse_note(note)
    rotation = parse_rotation(parsed.text)
    if rotation.old_log != old_log:
        raise ValueError(f"the rotation retires {rotation.old_log.to_key()}, not {old_log.to_key()}")
    opened = verify_note(parsed, [old_log])
    if not opened.verified or opened.invalid:
        raise ValueError(f"the rotation is not signed by the old log key {old_log.to_key()}")
    return rotation


@dataclass(frozen=True)
class KeyPeriod:
    """One log key and its clock key, valid for tree sizes ``from_size`` to ``until_size``
    (both included; ``None`` while it is the current key). ``statement`` is the signed note that
    introduced it (``None`` for the log's first key); ``clock`` is ``None`` when the first key's
    clock key was not given."""

    log: LogKey
    clock: ClockVerifier | None
    from_size: int
    until_size: int | None
    statement: str | None

    def covers(self, size: int) -> bool:
        return self.from_size <= size and (self.until_size is None or size <= self.until_size)

    @property
    def state(self) -> str:
        """``active`` for the current key, ``retired`` for a replaced one (SPEC §6)."""
        return "active" if self.until_size is None else "retired"


@dataclass(frozen=True)
class KeyHistory:
    """The keys of one log in the order they were used; the last period is the current key."""

    origin: str
    periods: tuple[KeyPeriod, ...]

    @classmethod
    def start(cls, log: LogKey | str, clock: ClockVerifier | str | None = None) -> KeyHistory:
        """The history of a log whose first key is ``log`` (its name is the origin)."""
        first = verifier_from_key(log) if isinstance(log, str) else log
        clock_key = _clock_key(clock) if isinstance(clock, str) else clock
        if clock_key is not None and clock_key.name != clock_key_name(first.name):
            raise ValueError(f"the clock key of {first.name!r} is named {clock_key_name(first.name)!r}")
        return cls(first.name, (KeyPeriod(first, clock_key, 0, None, None),))

    @classmethod
    def from_statements(
        cls,
        log: LogKey | str,
        statements: Iterable[str | bytes],
        clock: ClockVerifier | str | None = None,
    ) -> KeyHistory:
        """``start(log, clock)`` then ``rotate`` by each statement in order; the ``ValueError``
        names the statement (counted from 1) that is refused."""
        history = cls.start(log, clock)
        for i, statement in enumerate(statements, 1):
            try:
                history = history.rotate(statement)
            except ValueError as e:
                raise ValueError(f"rotation statement {i}: {e}") from None
        return history

    @classmethod
    def follow(
        cls,
        trusted: LogKey | str,
        statements: Iterable[str | bytes],
        clock: ClockVerifier | str | None = None,
    ) -> KeyHistory:
        """The history from a key a client already trusts (pinned, or given by a court) on: the
        statements up to the one that retires ``trusted`` are read but not trusted (their keys are
        not in the result); from that one on each must be signed by the key before it, as in
        ``rotate``. ``trusted``'s period starts at the size of the statement that introduced it
        (0 if none did: it is the first key). ``ValueError`` when ``trusted`` is in no statement
        and is not the first key, or when a statement from it on is refused: a client accepts a
        new key only through a chain of signed statements from a key it trusts (SPEC §11)."""
        key = verifier_from_key(trusted) if isinstance(trusted, str) else trusted
        notes = list(statements)
        rotations = [read_rotation(n) for n in notes]
        start = 0
        introduced = next((r for r in rotations if r.new_log == key), None)
        if introduced is not None:
            start = introduced.from_size
        elif rotations and rotations[0].old_log != key:
            raise ValueError(f"the log key {key.to_key()} is not in this key history")
        first = next((i for i, r in enumerate(rotations) if r.old_log == key), len(rotations))
        clock_key = _clock_key(clock) if isinstance(clock, str) else clock
        if clock_key is None and introduced is not None:
            clock_key = introduced.new_clock
        origin = cls.start(key, clock_key).origin  # checks the clock key's name
        history = cls(origin, (KeyPeriod(key, clock_key, start, None, None),))
        for i, statement in enumerate(notes[first:], first + 1):
            try:
                history = history.rotate(statement)
            except ValueError as e:
                raise ValueError(f"rotation statement {i}: {e}") from None
        return history

    @property
    def current(self) -> KeyPeriod:
        return self.periods[-1]

    @property
    def statements(self) -> tuple[str, ...]:
        """The signed statements, in order: what a verifier needs besides the first key."""
        return tuple(p.statement for p in self.periods if p.statement is not None)

    def rotate(self, statement: str | bytes) -> KeyHistory:
        """This history followed by ``statement``, which must be signed by the current log key,
        name this origin, hand over at a size no smaller than the current key's start and introduce
        keys this history never used."""
        rotation = open_rotation(statement, self.current.log)
        if rotation.origin != self.origin:
            raise ValueError(f"the rotation is for {rotation.origin!r}, not {self.origin!r}")
        if rotation.from_size < self.current.from_size:
            raise ValueError(
                f"the rotation hands over at size {rotation.from_size}, before the current key's "
                f"start at {self.current.from_size}: statements out of order"
            )
        used = {p.log.public_key for p in self.periods}
        used |= {p.clock.public_key for p in self.periods if p.clock is not None}
        if rotation.new_log.public_key in used or rotation.new_clock.public_key in used:
            raise ValueError("the rotation introduces a key this log already used")
        text = statement if isinstance(statement, str) else statement.decode("utf-8")
        ended = KeyPeriod(self.current.log, self.current.clock, self.current.from_size, rotation.from_size,
                          self.current.statement)
        new = KeyPeriod(rotation.new_log, rotation.new_clock, rotation.from_size, None, text)
        return KeyHistory(self.origin, (*self.periods[:-1], ended, new))

    def at(self, size: int) -> tuple[KeyPeriod, ...]:
        """The periods whose range holds ``size``: one, or two at a handover size."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"tree size {size!r} is not a non-negative int")
        return tuple(p for p in self.periods if p.covers(size))

    def log_keys_at(self, size: int) -> list[LogKey]:
        """The log keys that may sign a checkpoint of ``size``."""
        return [p.log for p in self.at(size)]

    def clock_keys_at(self, size: int) -> list[ClockVerifier]:
        """The clock keys that may cosign a checkpoint of ``size`` (those known)."""
        return [p.clock for p in self.at(size) if p.clock is not None]

    def period_of(self, key: LogKey) -> KeyPeriod | None:
        """The period of a log key of this history, else ``None``."""
        return next((p for p in self.periods if p.log == key), None)


def _clock_key(vkey: str) -> ClockVerifier:
    key = verifier_from_key(vkey)
    if not isinstance(key, ClockVerifier):
        raise ValueError(f"clock key {vkey[:80]!r} is not a cosignature key (type 0x04 or 0x06)")
    return key
