"""A new shard's keys, introduced by the deployment's first log (SPEC §10): a C2SP signed note by
shard 0's log key (Ed25519, named after the deployment's origin) whose text is exactly five lines,
each ending in a newline::

    notar.shard-introduction.v1
    origin <shard 0's origin>
    shard <the new shard's origin>
    log <the new shard's first log verifier key>
    clock <the new shard's first clock verifier key>

so that whoever trusts shard 0's log key (pinned, or given by a court) can accept the keys of every
shard added later, as a rotation statement (merkle.keyhistory) lets it accept a log's next keys:
the new shard's later keys chain from these by its own rotation statements. The shard's origin is
shard 0's followed by `/` and more; its log key is named after it and its clock key
`<origin>/clock`. Nothing else is allowed: one introduction has one text. The first line keeps
the statement apart from every other note the log key signs (checkpoints, rotations).
Malformed or refused input raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from merkle.cosignature import verifier_from_key
from merkle.keyhistory import ClockVerifier, clock_key_name, statement_fields
from merkle.note import NoteSigner, Verifier, is_valid_key_name, parse_note, sign_note, verify_note

INTRODUCTION_HEADER = "notar.shard-introduction.v1"
_FIELDS = ("origin", "shard", "log", "clock")


@dataclass(frozen=True)
class Introduction:
    """Shard 0 of `origin` introduces the shard `shard` and its first keys `log` and `clock`."""

    origin: str
    shard: str
    log: Verifier
    clock: ClockVerifier

    def __post_init__(self) -> None:
        for what, name in (("origin", self.origin), ("shard", self.shard)):
            if not is_valid_key_name(name):
                raise ValueError(f"introduction: {what} {name[:80]!r} is not a valid key name")
        if not self.shard.startswith(self.origin + "/"):
            raise ValueError(f"introduction: the shard {self.shard!r} is not under {self.origin!r}")
        if type(self.log) is not Verifier or self.log.name != self.shard:
            raise ValueError(f"introduction: the log key must be an Ed25519 log key named {self.shard!r}")
        clock = clock_key_name(self.shard)
        if not isinstance(self.clock, ClockVerifier) or self.clock.name != clock:
            raise ValueError(f"introduction: the clock key must be a cosignature key named {clock!r}")

    def text(self) -> str:
        values = (self.origin, self.shard, self.log.to_key(), self.clock.to_key())
        lines = (f"{k} {v}\n" for k, v in zip(_FIELDS, values, strict=True))
        return INTRODUCTION_HEADER + "\n" + "".join(lines)

    def sign(self, signer: NoteSigner) -> str:
        """The statement as a note signed by shard 0's log key; ``ValueError`` for another key."""
        if signer.name != self.origin:
            raise ValueError(f"an introduction is signed by the log key of {self.origin!r}")
        return sign_note(self.text(), [signer])


def parse_introduction(text: str) -> Introduction:
    """The statement in a note text, parsed strictly (module doc); signatures are not looked at."""
    values = statement_fields(text, INTRODUCTION_HEADER, _FIELDS, "shard introduction")
    clock = verifier_from_key(values["clock"])
    if not isinstance(clock, ClockVerifier):
        raise ValueError("shard introduction: the clock key is not a cosignature key")
    introduction = Introduction(values["origin"], values["shard"], Verifier.from_key(values["log"]), clock)
    if introduction.text() != text:
        raise ValueError("shard introduction is not in its canonical form")
    return introduction


def open_introduction(note: str | bytes, first_log: Verifier) -> Introduction:
    """The statement of ``note`` if shard 0's log key ``first_log`` signed it (validly) and it
    names that key's origin; ``ValueError`` otherwise. Other signatures are ignored."""
    parsed = parse_note(note)
    introduction = parse_introduction(parsed.text)
    if introduction.origin != first_log.name:
        raise ValueError(f"the introduction is by {introduction.origin!r}, not {first_log.name!r}")
    opened = verify_note(parsed, [first_log])
    if not opened.verified or opened.invalid:
        raise ValueError(f"the introduction is not signed by {first_log.to_key()}")
    return introduction
