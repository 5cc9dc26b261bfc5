"""What a verifier trusts (SPEC §5, §11): log and clock keys, each either at every tree size (keys
given one by one, ``notar verify --key``) or only in its period of a log's key history (the
signed rotation statements), and optionally a witness policy (C2SP tlog-policy).

A log signature carries no time, so a history key counts only for checkpoints whose size is in
its period: a checkpoint signed by a retired key beyond the size at which it handed over is not
signed by a trusted key, and ``outside_period`` says so in words. ``Trust.from_policy`` builds the
trust of a saved policy (``/v1/keys``' ``policy``) and the deployment's rotation statements: the
statements of each origin must chain from a log key of the policy, so a statement alone never adds
a key that no trusted key signed for. Malformed or refused input raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from merkle.checkpoint import TimestampingVerifier
from merkle.cosignature import CosignatureVerifier, verifier_from_key
from merkle.keyhistory import KeyHistory, KeyPeriod, LogKey, clock_key_name, read_rotation
from merkle.note import NoteVerifier, parse_note, verify_note
from merkle.policy import Policy, parse_policy


def split_keys(keys: Iterable[str | NoteVerifier]) -> tuple[list[NoteVerifier], list[TimestampingVerifier]]:
    """Trusted keys sorted into log keys and clock (cosignature/v1) keys; ValueError for a
    malformed verifier key string."""
    logs: list[NoteVerifier] = []
    clocks: list[TimestampingVerifier] = []
    for key in keys:
        v = verifier_from_key(key) if isinstance(key, str) else key
        if isinstance(v, CosignatureVerifier):
            clocks.append(v)
        else:
            logs.append(v)
    return logs, clocks


@dataclass(frozen=True)
class Trust:
    """``logs`` and ``clocks`` are trusted at every tree size; the keys of ``histories`` only in
    their periods; ``policy``, when given, is the quorum of witnesses a checkpoint must meet."""

    logs: tuple[NoteVerifier, ...] = ()
    clocks: tuple[TimestampingVerifier, ...] = ()
    histories: tuple[KeyHistory, ...] = ()
    policy: Policy | None = None

    @classmethod
    def of(cls, keys: Iterable[str | NoteVerifier]) -> Trust:
        """Keys trusted at every size (log keys and clock keys, sorted by type)."""
        logs, clocks = split_keys(keys)
        return cls(tuple(logs), tuple(clocks))

    @classmethod
    def from_policy(cls, policy: Policy | str | bytes, statements: Iterable[str | bytes] = ()) -> Trust:
        """The trust of a tlog-policy and the rotation statements of its logs (in order per log):
        each origin's statements must start from a log key of the policy; each key they introduce
        is then trusted in its period. Policy log keys no statement names are trusted at every
        size, and so are the policy's witnesses named ``<origin>/clock`` as clock keys (other
        witnesses count only towards the quorum)."""
        policy = policy if isinstance(policy, Policy) else parse_policy(policy)
        by_origin: dict[str, list[str | bytes]] = {}
        for statement in statements:
            by_origin.setdefault(read_rotation(statement).origin, []).append(statement)
        origins = {log.origin for log in policy.logs}
        clocks = [w.key for w in policy.witnesses if w.key.name in {clock_key_name(o) for o in origins}]
        histories = []
        for origin, chain in by_origin.items():
            first = read_rotation(chain[0]).old_log
            if first.public_key not in {k.public_key for k in policy.log_keys(origin)}:
                raise ValueError(
                    f"the rotation statements of {origin!r} do not start from a log key of the policy"
                )
            named = {read_rotation(s).new_clock.public_key for s in chain}
            own = clock_key_name(origin)
            first_clocks = [c for c in clocks if c.name == own and c.public_key not in named]
            first_clock = first_clocks[0] if len(first_clocks) == 1 else None
            histories.append(KeyHistory.from_statements(first, chain, first_clock))
        in_history = {p.log.public_key for h in histories for p in h.periods}
        in_history |= {p.clock.public_key for h in histories for p in h.periods if p.clock is not None}
        logs = tuple(k for k in policy.log_keys() if k.public_key not in in_history)
        flat_clocks = tuple(c for c in clocks if c.public_key not in in_history)
        return cls(logs, flat_clocks, tuple(histories), policy)

    def history(self, origin: str) -> KeyHistory | None:
        return next((h for h in self.histories if h.origin == origin), None)

    def log_keys(self, origin: str, size: int) -> list[NoteVerifier]:
        """The log keys trusted to sign a checkpoint of ``origin`` and ``size``."""
        history = self.history(origin)
        return [*self.logs, *(history.log_keys_at(size) if history is not None else ())]

    def clock_keys(self, origin: str, size: int) -> list[TimestampingVerifier]:
        """The clock keys trusted to cosign a checkpoint of ``origin`` and ``size``."""
        history = self.history(origin)
        return [*self.clocks, *(history.clock_keys_at(size) if history is not None else ())]

    def all_log_keys(self) -> list[NoteVerifier]:
        """Every trusted log key, whatever its period (local anchor blocks are signed by the key of
        their day, and carry no tree size of their own signer's period)."""
        return [*self.logs, *(p.log for h in self.histories for p in h.periods)]

    def outside_period(self, note: str | bytes, origin: str, size: int, *, clock: bool = False) -> str | None:
        """Why a history key's valid signature on ``note`` does not count: it signs ``origin``
        only for other tree sizes. None when no such signature is on the note."""
        history = self.history(origin)
        if history is None:
            return None
        periods = [p for p in history.periods if not p.covers(size)]
        keys: Sequence[LogKey | TimestampingVerifier] = (
            [p.clock for p in periods if p.clock is not None] if clock else [p.log for p in periods]
        )
        opened = verify_note(parse_note(note), keys)
        for sig in opened.verified:
            period = next(p for p in periods if _signer(p, clock) == (sig.name, sig.key_id))
            key = period.clock if clock else period.log
            assert key is not None
            what = "clock" if clock else "log"
            return (
                f"{'cosigned' if clock else 'signed'} by {what} key {key.to_key()}, which "
                f"{'cosigns' if clock else 'signs'} {origin} only for tree sizes {_span(period)} (its "
                f"key history): this checkpoint is of size {size}, outside that period"
            )
        return None


def _signer(period: KeyPeriod, clock: bool) -> tuple[str, int] | None:
    key = period.clock if clock else period.log
    return None if key is None else (key.name, key.key_id)


def _span(period: KeyPeriod) -> str:
    until = "on" if period.until_size is None else f"to {period.until_size}"
    return f"{period.from_size} {until}"
