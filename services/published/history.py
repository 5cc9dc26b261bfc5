"""A log's key history in the object store (SPEC §11): its first keys and its rotation statements.

Under the log's private prefix (``services.published.layout``): ``history/first`` holds the first
log and clock verifier keys (``log <vkey>`` and ``clock <vkey>`` lines: the clock key is named by no
statement), written once by the anchor at its first start or by ``notar keys rotate``;
``history/rotation-000001``, ``-000002``, … each signed statement (``merkle.keyhistory``), written
once, in order, by ``notar keys rotate``. ``read_history`` folds them into a ``KeyHistory`` and
refuses a chain that does not hold: the anchor signs with nothing but the history's current keys,
and publishes the history in ``/v1/keys``.
"""

from __future__ import annotations

from dataclasses import dataclass

from merkle.cosignature import verifier_from_key
from merkle.keyhistory import ClockVerifier, KeyHistory, LogKey
from services.published import layout
from storage.base import ObjectStore
from storage.errors import NotFoundError, StorageError


@dataclass(frozen=True)
class StoredHistory:
    """What the store holds: the first keys (None before any was written) and the statements."""

    first: tuple[str, str] | None
    statements: tuple[str, ...]

    def history(self) -> KeyHistory | None:
        """The key history, or None when nothing is stored yet; ``ValueError`` when the
        statements do not chain from the first key (names the statement refused)."""
        if self.first is None:
            if self.statements:
                raise ValueError("rotation statements are stored, but not the log's first keys")
            return None
        return KeyHistory.from_statements(self.first[0], self.statements, self.first[1])


def first_keys_text(log: str, clock: str) -> bytes:
    return f"log {log}\nclock {clock}\n".encode()


def parse_first_keys(data: bytes) -> tuple[str, str]:
    """The (log, clock) verifier keys of a ``history/first`` object; ``ValueError`` otherwise."""
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    if len(lines) != 3 or lines[2] or not lines[0].startswith("log ") or not lines[1].startswith("clock "):
        raise ValueError("expected two lines: `log <vkey>` and `clock <vkey>`")
    log, clock = lines[0][4:], lines[1][6:]
    verifier_from_key(log), verifier_from_key(clock)
    return log, clock


async def read_stored(store: ObjectStore, prefix: str = layout.LOG_PREFIX) -> StoredHistory:
    """The first keys and every statement, in order (StorageError when an object is unreadable
    or a sequence number is missing: statements are never deleted)."""
    where = layout.first_keys_key(prefix)
    try:
        first: tuple[str, str] | None = parse_first_keys(await store.get(where))
    except NotFoundError:
        first = None
    except ValueError as e:
        raise StorageError(f"{where} is not the log's first keys: {e}", key=where) from e
    base = layout.history(prefix) + layout.ROTATION
    names = [k[len(base) :] async for k in store.list(base)]
    seqs = sorted(int(n) for n in names if n.isdigit())
    if seqs != list(range(1, len(seqs) + 1)):
        raise StorageError(f"the rotation statements under {base} are not numbered 1..{len(seqs)}: {seqs}")
    statements = []
    for seq in seqs:
        key = layout.rotation_key(seq, prefix)
        try:
            statements.append((await store.get(key)).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise StorageError(f"{key} is not UTF-8 text", key=key) from e
    return StoredHistory(first, tuple(statements))


async def read_history(store: ObjectStore, prefix: str = layout.LOG_PREFIX) -> KeyHistory | None:
    """The stored key history (None when nothing is stored); StorageError when it is unusable."""
    stored = await read_stored(store, prefix)
    try:
        return stored.history()
    except ValueError as e:
        raise StorageError(f"the key history under {layout.history(prefix)} is refused: {e}") from e


async def write_first(
    store: ObjectStore, log: LogKey, clock: ClockVerifier, prefix: str = layout.LOG_PREFIX
) -> None:
    """Record the log's first keys, once; ConflictError when other first keys are recorded."""
    await store.put_if_absent(layout.first_keys_key(prefix), first_keys_text(log.to_key(), clock.to_key()))


async def add_rotation(store: ObjectStore, statement: str, seq: int, prefix: str = layout.LOG_PREFIX) -> None:
    """Store ``statement`` as the ``seq``-th (immutable; ConflictError when another is there)."""
    await store.put_if_absent(layout.rotation_key(seq, prefix), statement.encode("utf-8"))
