"""C2SP tlog-policy: the logs and witnesses a verifier trusts, and the quorum of witnesses that
must cosign a checkpoint for it to count (e.g. "at least 2 of these 3").

A policy is lines of ``log <vkey> [<url>]``, ``witness <name> <vkey> [<url>]``,
``group <name> all|any|<k> <name>…`` and exactly one ``quorum <name>`` (``none``: no cosignature
needed), items separated by spaces or tabs, ``#`` comment lines and blank lines ignored; groups and
the quorum name only witnesses and groups defined above them. Names are opaque octets. Parsing is
strict: ``ValueError`` naming the line. ``check_witnesses`` says whether a signed checkpoint meets
the quorum as a verdict check: ok, failed, or not checked.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from merkle.checkpoint import parse_checkpoint
from merkle.checks import Check, Status
from merkle.cosignature import verifier_from_key
from merkle.keyhistory import ClockVerifier, LogKey
from merkle.note import parse_note, verify_note

NONE = "none"
MAX_ITEMS = 1024  # per kind; the spec asks implementations to support at least 32
WITNESS_CHECK = "witnesses"
_SPACE = re.compile(r"[ \t]+")
_DECIMAL = re.compile(r"[1-9][0-9]{0,5}")
_BAD_OCTETS = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
WitnessKey = ClockVerifier  # a witness key is a cosignature key, as a clock key is


@dataclass(frozen=True)
class PolicyLog:
    """A trusted log: its key (named after its origin) and an optional URL."""

    key: LogKey
    url: str | None = None

    @property
    def origin(self) -> str:
        return self.key.name


@dataclass(frozen=True)
class PolicyWitness:
    """A witness: its name in the policy, its cosignature key (type 0x04 or 0x06), an optional URL."""

    name: str
    key: WitnessKey
    url: str | None = None


@dataclass(frozen=True)
class PolicyGroup:
    """A group witnesses a checkpoint when at least ``threshold`` of its ``members`` do."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class PolicyVerdict:
    """What a policy finds on a signed checkpoint: the origin of the trusted log whose signature
    verifies (else ``None``), the witnesses whose cosignature verifies, those whose cosignature
    does not (a forged or corrupted line), and whether the quorum is met."""

    log: str | None
    cosigned: tuple[str, ...]
    invalid: tuple[str, ...]
    quorum: str
    quorum_met: bool


@dataclass(frozen=True)
class Policy:
    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str

    def log_keys(self, origin: str | None = None) -> list[LogKey]:
        """The trusted log keys, or those of one origin."""
        return [log.key for log in self.logs if origin is None or log.origin == origin]

    def witness_keys(self) -> list[WitnessKey]:
        return [w.key for w in self.witnesses]

    def quorum_met(self, cosigned: Collection[str]) -> bool:
        """Whether the witnesses named in ``cosigned`` meet the quorum."""
        witnessed = {w.name for w in self.witnesses if w.name in cosigned}
        for group in self.groups:  # members are defined above their group: one pass suffices
            if sum(m in witnessed for m in group.members) >= group.threshold:
                witnessed.add(group.name)
        return self.quorum == NONE or self.quorum in witnessed

    def evaluate(self, note: str | bytes) -> PolicyVerdict:
        """Check a signed checkpoint's log signature and cosignatures against this policy;
        ``ValueError`` if it is not a well-formed signed checkpoint."""
        parsed = parse_note(note)
        origin = parse_checkpoint(parsed.text).origin
        logs = verify_note(parsed, self.log_keys(origin))
        log = origin if logs.verified and not logs.invalid else None
        by_key = {(w.key.name, w.key.key_id): w.name for w in self.witnesses}
        opened = verify_note(parsed, self.witness_keys())
        cosigned = tuple(by_key[(s.name, s.key_id)] for s in opened.verified)
        invalid = tuple(by_key[(s.name, s.key_id)] for s in opened.invalid)
        return PolicyVerdict(log, cosigned, invalid, self.quorum, self.quorum_met(cosigned))

    def format(self) -> str:
        """The policy as text that ``parse_policy`` reads back to an equal policy."""
        lines = [" ".join(filter(None, ["log", log.key.to_key(), log.url])) for log in self.logs]
        lines += [" ".join(filter(None, ["witness", w.name, w.key.to_key(), w.url])) for w in self.witnesses]
        lines += [" ".join(["group", g.name, str(g.threshold), *g.members]) for g in self.groups]
        return "".join(line + "\n" for line in [*lines, f"quorum {self.quorum}"])


def parse_policy(text: str | bytes) -> Policy:
    """A tlog-policy text (bytes, or str whose non-ASCII characters are read as UTF-8)."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    if m := _BAD_OCTETS.search(raw):
        at = raw.count(b"\n", 0, m.start()) + 1
        raise ValueError(f"policy line {at}: control character {m.group()!r} (only tab and newline)")
    logs: list[PolicyLog] = []
    witnesses: list[PolicyWitness] = []
    groups: list[PolicyGroup] = []
    quorum: str | None = None
    names: set[str] = set()
    for number, line in enumerate(raw.decode("utf-8", "surrogateescape").split("\n"), 1):
        items = _SPACE.split(line.strip(" \t"))
        if items == [""] or items[0].startswith("#"):
            continue
        try:
            keyword, args = items[0], items[1:]
            if keyword == "log":
                logs.append(_log(args, logs))
            elif keyword == "witness":
                witnesses.append(_witness(args, witnesses, names))
                names.add(witnesses[-1].name)
            elif keyword == "group":
                groups.append(_group(args, names))
                names.add(groups[-1].name)
            elif keyword == "quorum":
                if quorum is not None:
                    raise ValueError("a policy has exactly one quorum line")
                if len(args) != 1 or (args[0] != NONE and args[0] not in names):
                    raise ValueError("`quorum <name>` names `none`, or a witness or group defined above")
                quorum = args[0]
            else:
                raise ValueError(f"unknown keyword {keyword[:40]!r} (log, witness, group, quorum)")
            if max(len(logs), len(witnesses), len(groups)) > MAX_ITEMS:
                raise ValueError(f"more than {MAX_ITEMS} logs, witnesses or groups")
        except ValueError as e:
            raise ValueError(f"policy line {number}: {e}") from None
    if quorum is None:
        raise ValueError("the policy has no quorum line")
    return Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum)


def check_witnesses(note: str | bytes, policy: Policy | None) -> Check:
    """The ``witnesses`` check of a signed checkpoint: not checked without a policy or when its
    quorum is ``none``; failed when a policy witness's cosignature does not verify or the quorum is
    not met; ok when it is met. A malformed note fails."""
    if policy is None:
        return Check(WITNESS_CHECK, Status.NOT_CHECKED, "no witness policy given")
    try:
        verdict = policy.evaluate(note)
    except ValueError as e:
        return Check(WITNESS_CHECK, Status.FAILED, f"not a signed checkpoint: {e}")
    by = ", ".join(verdict.cosigned) or "no witness of the policy"
    if verdict.invalid:
        bad = ", ".join(verdict.invalid)
        return Check(WITNESS_CHECK, Status.FAILED, f"the cosignature of {bad} does not verify")
    if policy.quorum == NONE:
        detail = f"the policy asks for no witness (quorum none); cosigned by {by}"
        return Check(WITNESS_CHECK, Status.NOT_CHECKED, detail)
    if verdict.quorum_met:
        return Check(WITNESS_CHECK, Status.OK, f"cosigned by {by}: quorum {policy.quorum} is met")
    return Check(WITNESS_CHECK, Status.FAILED, f"cosigned by {by}: quorum {policy.quorum} is not met")


def _url(args: list[str], at: int, line: str) -> str | None:
    if len(args) > at + 1:
        raise ValueError(f"`{line}` takes at most one URL after the key")
    return args[at] if len(args) == at + 1 else None


def _log(args: list[str], logs: list[PolicyLog]) -> PolicyLog:
    if not args:
        raise ValueError("`log <vkey> [<url>]` needs a key")
    key = verifier_from_key(args[0])
    if any(log.key.public_key == key.public_key for log in logs):
        raise ValueError("this log key is listed twice")
    return PolicyLog(key, _url(args, 1, "log <vkey> [<url>]"))


def _witness(args: list[str], witnesses: list[PolicyWitness], names: set[str]) -> PolicyWitness:
    if len(args) < 2:
        raise ValueError("`witness <name> <vkey> [<url>]` needs a name and a key")
    name = _new_name(args[0], names)
    key = verifier_from_key(args[1])
    if not isinstance(key, WitnessKey):
        raise ValueError(f"witness {name!r}: the key is not a cosignature key (type 0x04 or 0x06)")
    if any(w.key.public_key == key.public_key for w in witnesses):
        raise ValueError(f"witness {name!r}: this key is listed twice")
    return PolicyWitness(name, key, _url(args, 2, "witness <name> <vkey> [<url>]"))


def _group(args: list[str], names: set[str]) -> PolicyGroup:
    if len(args) < 3:
        raise ValueError("`group <name> all|any|<k> <name>…` needs a name, a threshold and members")
    name, k, members = _new_name(args[0], names), args[1], tuple(args[2:])
    for member in members:
        if member not in names:
            raise ValueError(f"group {name!r}: {member[:40]!r} is not a witness or group defined above")
    if len(set(members)) != len(members):
        raise ValueError(f"group {name!r} lists a member twice")
    if k in ("all", "any"):
        threshold = len(members) if k == "all" else 1
    elif _DECIMAL.fullmatch(k) and int(k) <= len(members):
        threshold = int(k)
    else:
        raise ValueError(f"group {name!r}: threshold {k[:20]!r} is not all, any or 1..{len(members)}")
    return PolicyGroup(name, threshold, members)


def _new_name(name: str, names: set[str]) -> str:
    if name == NONE or name in names:
        raise ValueError(f"the name {name[:40]!r} is {'reserved' if name == NONE else 'already defined'}")
    return name
