"""The committer anchors only checkpoints its log key signed (SECURITY.md: the object store is not
trusted to say what the tree head is).

Regression: it anchored whatever `log/checkpoint` held, so whoever could write to the bucket
could make the local chain sign, with the log key, a block vouching for a root the log never
signed (and spend the EVM account's gas on it).
"""

from __future__ import annotations

import hashlib

import pytest

from merkle.anchors.local import verify_chain
from merkle.checkpoint import Checkpoint, sign_checkpoint
from merkle.cosignature import CosignatureSigner
from merkle.note import Signer
from services.anchor.chains.local import LocalChain
from services.anchor.committer import Committer
from services.common.components import CommitterConfig
from storage.memory import MemoryStore

ORIGIN = "trust.notar.test/log"
LOG = Signer.generate(ORIGIN)
CLOCK = CosignatureSigner.generate(ORIGIN + "/clock")


def note(size: int, signer: Signer = LOG) -> str:
    cp = Checkpoint(ORIGIN, size, hashlib.sha256(str(size).encode()).digest())
    return sign_checkpoint(cp, signer, CLOCK, 1_700_000_000 + size)


def committer(store: MemoryStore) -> tuple[Committer, LocalChain]:
    chain = LocalChain(store=store, signer=LOG)
    c = Committer(store=store, backends=[chain], config=CommitterConfig(), log_key=LOG.verifier())
    return c, chain


async def test_a_checkpoint_not_signed_by_the_log_key_is_not_anchored() -> None:
    store = MemoryStore()
    c, chain = committer(store)
    impostor = Signer.generate(ORIGIN)  # same name, another key: what a bucket writer can make
    await store.put("log/checkpoint", note(7, impostor).encode())
    with pytest.raises(ValueError, match="not signed by this anchor's log key"):
        await c.run_once("local")
    unsigned = note(9).split("\n\n")[0] + "\n\n— someone.else/key AAAAAAAA\n"
    await store.put("log/checkpoint", unsigned.encode())
    with pytest.raises(ValueError):
        await c.run_once("local")
    assert await chain.blocks() == [] and await c.anchors.sizes() == []

    await store.put("log/checkpoint", note(5).encode())
    assert await c.run_once("local")
    blocks = await chain.blocks()
    assert [b["tree_size"] for b in blocks] == [5]
    assert verify_chain(blocks, [LOG.verifier().to_key()]) == []


async def test_a_tampered_log_signature_is_not_anchored() -> None:
    store = MemoryStore()
    c, chain = committer(store)
    text, sigs = note(4).split("\n\n")
    other_root = Checkpoint(ORIGIN, 4, hashlib.sha256(b"forged").digest()).format()
    assert other_root != text + "\n"
    await store.put("log/checkpoint", (other_root + "\n" + sigs).encode())
    with pytest.raises(ValueError):
        await c.run_once("local")
    assert await chain.blocks() == []


async def test_without_a_log_key_the_committer_anchors_what_is_published() -> None:
    """Unit tests and tools may run it without a key; the service always gives one."""
    store = MemoryStore()
    c = Committer(store=store, backends=[LocalChain(store=store, signer=LOG)], config=CommitterConfig())
    await store.put("log/checkpoint", note(3, Signer.generate(ORIGIN)).encode())
    assert await c.run_once("local")
