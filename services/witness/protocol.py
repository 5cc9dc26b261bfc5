"""What the witness answers, decided from a request and what it holds (pure: no I/O, no clock).

``check_add_checkpoint`` follows C2SP tlog-witness (editor's copy of 2026-07-06, commit 95978ca)
in the spec's order: 404 unknown origin; 403 when no log key valid at the checkpoint's size signed
it, or such a key's signature fails; 400 when ``old`` exceeds the size; 409 with the held size when
``old`` is not it; 422 for a size-0 checkpoint whose root is not the empty tree's, a proof that is
not empty from size 0 or does not verify, and another root for the size held (a fork).
``check_rotation`` decides ``POST /rotate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from merkle.checkpoint import Checkpoint
from merkle.hashing import EMPTY_ROOT
from merkle.keyhistory import KeyHistory, LogKey, open_rotation, read_rotation
from merkle.note import Signature, parse_note, verify_note
from merkle.proofs import verify_consistency
from merkle.witness import AddCheckpoint


@dataclass(frozen=True)
class Refused:
    """An answer other than 200: its status, a sentence, and for 409 the size held."""

    status: int
    reason: str
    size: int | None = None


@dataclass(frozen=True)
class Accepted:
    """A checkpoint to cosign, with the trusted log signatures that verified on it."""

    checkpoint: Checkpoint
    log_signatures: tuple[Signature, ...]


def unknown_log(origin: str) -> Refused:
    return Refused(404, f"this witness does not know the log {origin!r}")


def check_add_checkpoint(
    request: AddCheckpoint, *, history: KeyHistory | None, held: Checkpoint | None
) -> Accepted | Refused:
    """Whether to cosign ``request``'s checkpoint given the origin's key ``history`` (``None``:
    unknown origin) and the latest checkpoint ``held`` for it (``None``: never cosigned)."""
    cp = request.checkpoint
    if history is None:
        return unknown_log(cp.origin)
    keys: list[LogKey] = history.log_keys_at(cp.size)
    opened = verify_note(parse_note(request.note), keys)
    if opened.invalid:
        return Refused(403, f"a signature by the key of {cp.origin} does not verify")
    if not opened.verified:
        return Refused(403, f"no signature by a key of {cp.origin} valid at tree size {cp.size}")
    if request.old_size > cp.size:
        return Refused(400, f"old size {request.old_size} is larger than the checkpoint's {cp.size}")
    held_size = held.size if held is not None else 0
    if request.old_size != held_size:
        return Refused(409, f"the latest checkpoint cosigned for {cp.origin} has size {held_size}", held_size)
    if cp.size == 0 and cp.root != EMPTY_ROOT:
        return Refused(422, "a checkpoint of size 0 must have the root of the empty tree")
    if request.old_size == 0:
        if request.proof:
            return Refused(422, "the consistency proof from size 0 must be empty")
    elif held is not None and cp.size == held.size and cp.root != held.root:
        return Refused(422, f"another root was cosigned for size {held.size} of {cp.origin}: a fork")
    elif held is not None and not verify_consistency(
        held.size, cp.size, list(request.proof), held.root, cp.root
    ):
        return Refused(422, f"the consistency proof from size {held.size} to {cp.size} does not verify")
    return Accepted(cp, opened.verified)


def check_rotation(statement: str, *, history: KeyHistory | None) -> KeyHistory | Refused:
    """The origin's history after ``statement`` (the same history when it is already in it), or
    why not: 400 malformed, 404 unknown origin, 403 not signed by the current key, 409 signed by a
    retired key that already handed over otherwise, 422 out of order or a key used before."""
    try:
        rotation = read_rotation(statement)
    except ValueError as e:
        return Refused(400, f"not a rotation statement: {e}")
    if history is None:
        return unknown_log(rotation.origin)
    known = [read_rotation(s) for s in history.statements]
    if rotation in known:
        return history
    current = history.current
    if rotation.old_log != current.log:
        period = history.period_of(rotation.old_log)
        if period is not None:
            return Refused(409, f"the key {rotation.old_log.to_key()} already handed over at size "
                                f"{period.until_size} to another key")
        return Refused(403, f"the rotation retires {rotation.old_log.to_key()}, which is not the "
                            f"current key of {history.origin}")
    try:
        open_rotation(statement, current.log)
    except ValueError as e:
        return Refused(403, str(e))
    try:
        return history.rotate(statement)
    except ValueError as e:
        return Refused(422, str(e))
