from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from merkle.cosignature import CosignatureSigner, signature_timestamp
from merkle.note import Signer, parse_note
from services.anchor.keys import LogKeys
from services.anchor.sequencer import Sequencer, SequencerConfig
from services.anchor.tenant_index import TenantIndex
from services.model import Found, Sequenced
from storage.base import Index, ObjectStore
from storage.memory import MemoryIndex, MemoryStore

ORIGIN = "test.notar/log"
INDEX_KEY = bytes(range(32))


def tenant_index() -> TenantIndex:
    return TenantIndex(INDEX_KEY, origin=ORIGIN)


def found(*sequenced: Sequenced) -> list[Found]:
    """What a look-up finds of `sequenced`: each entry's index and salt, and the time its clock
    cosigned the checkpoint the sequencer answered with, its own batch's."""
    out = []
    for s in sequenced:
        note = parse_note(s.checkpoint)
        clock = note.text.split("\n", 1)[0] + "/clock"
        signed = [signature_timestamp(sig.signature) for sig in note.signatures if sig.name == clock]
        out.append(Found(s.index, s.salt, signed[0]))
    return out


@pytest.fixture
def keys() -> LogKeys:
    return LogKeys(Signer.generate(ORIGIN), CosignatureSigner.generate(ORIGIN + "/clock"))


MakeSequencer = Callable[..., Awaitable[Sequencer]]


@pytest.fixture
async def make_sequencer(keys: LogKeys) -> AsyncIterator[MakeSequencer]:
    made: list[Sequencer] = []

    async def make(
        store: ObjectStore | None = None, index: Index | None = None, *, start: bool = True, **config: object
    ) -> Sequencer:
        cfg = SequencerConfig(origin=ORIGIN, **{"batch_ms": 5, **config})  # type: ignore[arg-type]
        seq = Sequencer(
            store=store or MemoryStore(),
            index=index or MemoryIndex(),
            keys=keys,
            config=cfg,
            tenant_index=tenant_index(),
        )
        if start:
            await seq.start()
        made.append(seq)
        return seq

    yield make
    for s in made:
        await s.close()


@pytest.fixture
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path
