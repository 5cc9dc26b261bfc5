"""The committer: every ANCHOR_INTERVAL_S, anchor the latest published checkpoint to each kind.

One task per kind, so that a slow chain or a TSA that is down never holds up the others. A kind
anchors the checkpoint at ``<prefix>checkpoint`` when it is larger than the last one it anchored;
each record is stored (``anchors.AnchorStore``) before it counts. Failures are retried with
capped exponential backoff and show in ``status`` (metrics, readyz): never a crash, never a
record that does not hold (each backend guarantees that). Given the log's key, it anchors only
checkpoints that key signed: the object store is not trusted to say what the tree head is, so
the local chain's log-key signature never vouches for a root this log did not sign.

With shards (SPEC §10) only the committer of anchor ordinal 0 (shard 0's) anchors: each round one
aggregate of the latest checkpoint of every shard (``shard_heads.ShardHeads``: one local block, one
EVM transaction, one RFC 3161 token), as soon as any shard's checkpoint grew, its record stored
under each shard's private prefix with that shard's ``aggregate`` member, so that every shard's
receipt upgrades and ``GET /v1/anchors`` find it. The other shards' committers anchor nothing;
their ``status`` follows the records the aggregate wrote for their log (metrics, readyz). With one
shard nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation

from merkle.note import NoteVerifier
from services.anchor.chains import Anchorable, AnchorError, Backend, Target
from services.anchor.chains.local import LocalChain
from services.anchor.keys import LogKeys
from services.anchor.shard_heads import LogKeysOf, ShardHeads, latest_target
from services.common.components import ChainsConfig, CommitterConfig
from services.common.resources import DETAILS, STORE
from services.common.telemetry import TELEMETRY
from services.published import layout
from services.published.anchors import AnchorStore
from storage.base import ObjectStore
from storage.errors import ConflictError, CorruptedError, StorageError

log = logging.getLogger("notar.anchor.committer")
RECENT = 64  # anchored sizes read at start to find where each kind stopped


@dataclass
class KindStatus:
    """What one kind has done: the last tree size it anchored (of this log; with shards, of each
    shard's log in ``shards``, by prefix), counts, and its latest failure."""

    kind: str
    anchored_size: int = 0
    shards: dict[str, int] = field(default_factory=dict)
    records: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success: float | None = None

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0


class Committer:
    def __init__(
        self,
        *,
        store: ObjectStore,
        backends: Sequence[Backend],
        config: CommitterConfig,
        anchors: AnchorStore | None = None,
        log_key: NoteVerifier | None = None,
        shard_keys: LogKeysOf | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        meter: Meter | None = None,
    ) -> None:
        self._store, self._cfg, self._clock, self._sleep = store, config, clock, sleep
        self._log_key = log_key
        self._heads = ShardHeads(store, prefix=config.prefix, log_key=log_key, keys_of=shard_keys)
        self._backends = {b.kind: b for b in backends}
        self.anchors = anchors or AnchorStore(store, prefix=config.prefix)
        self._shard_anchors = {config.prefix: self.anchors}
        self.status = {k: KindStatus(k) for k in self._backends}
        self._wake = {k: asyncio.Event() for k in self._backends}
        self._target: Anchorable | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._instruments(meter or NoOpMeter("notar"))

    def _instruments(self, meter: Meter) -> None:
        """Its metrics, one series per kind, as instruments of `meter` (the app's Telemetry):
        counters added to as it goes (from 0, so that every kind's series exists at once), gauges
        read from `status` at each collection."""
        self._records = meter.create_counter(
            "notar_anchor_records", unit="1", description="anchor records stored, per kind"
        )
        self._failures = meter.create_counter(
            "notar_anchor_failures", unit="1", description="anchoring attempts that failed, per kind"
        )
        for kind in self._backends:
            self._records.add(0, {"kind": kind})
            self._failures.add(0, {"kind": kind})

        def gauge(name: str, read: Callable[[KindStatus], int], what: str) -> None:
            def observe(_: CallbackOptions) -> list[Observation]:
                return [Observation(read(st), {"kind": k}) for k, st in self.status.items()]

            meter.create_observable_gauge(name, [observe], unit="1", description=what)

        gauge("notar_anchor_tree_size", lambda st: st.anchored_size, "largest tree size anchored, per kind")
        gauge(
            "notar_anchor_consecutive_failures",
            lambda st: st.consecutive_failures,
            "failed anchoring attempts since the last success, per kind",
        )

    async def start(self) -> None:
        """Find what each kind anchored last (among the latest anchored sizes), then run the
        rounds and one loop per kind."""
        await self._recall(self._cfg.prefix)
        self._tasks = [asyncio.create_task(self._rounds(), name="notar-anchor-rounds")]
        self._tasks += [
            asyncio.create_task(self._loop(kind), name=f"notar-anchor-{kind}") for kind in self._backends
        ]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for b in self._backends.values():
            with contextlib.suppress(Exception):
                await b.close()

    async def latest(self) -> Anchorable | None:
        """The latest published checkpoint, or with shards the aggregate of every shard's (see
        ``ShardHeads``); None while there is none (or it is empty). ValueError when this log's is
        malformed or, given the log key, not signed by it."""
        return await self._heads.latest()

    async def round_target(self) -> Target | None:
        """This log's checkpoint of the current round (what every free kind anchors, alone or in
        an aggregate), else its latest: the witness client has it cosigned, so that anchors and
        cosignatures meet on it."""
        target = self._target
        if isinstance(target, Target):
            return target
        own = [h.target for h in target.heads if h.prefix == self._cfg.prefix] if target else []
        return own[0] if own else await latest_target(self._store, self._cfg.prefix, self._log_key)

    async def run_once(self, kind: str) -> bool:
        """Anchor the latest checkpoint (or aggregate) to ``kind`` now: True when it stored a
        new record."""
        target = await self.latest()
        return target is not None and await self._anchor(kind, target)

    def _parts(self, target: Anchorable) -> list[tuple[str, Target, dict[str, object]]]:
        """Where a record of ``target`` is stored: (log prefix, checkpoint, members it adds)."""
        if isinstance(target, Target):
            return [(self._cfg.prefix, target, {})]
        return [
            (h.prefix, h.target, {"aggregate": p.to_obj()})
            for h, p in zip(target.heads, target.proofs, strict=True)
        ]

    def _grew(self, before: Anchorable, now: Anchorable) -> bool:
        """Whether ``now`` holds a larger checkpoint of some log than ``before`` (or a new log)."""
        old = {prefix: t.size for prefix, t, _ in self._parts(before)}
        return any(t.size > old.get(prefix, 0) for prefix, t, _ in self._parts(now))

    def _store_of(self, prefix: str) -> AnchorStore:
        if prefix not in self._shard_anchors:
            self._shard_anchors[prefix] = AnchorStore(self._store, prefix=prefix)
        return self._shard_anchors[prefix]

    async def _recall(self, prefix: str) -> None:
        """What each kind anchored last of the log under ``prefix``, from its latest records (those
        above what every kind is known to have anchored)."""
        anchors = self._store_of(prefix)
        known = min([st.shards.setdefault(prefix, 0) for st in self.status.values()], default=0)
        for size in reversed([s for s in (await anchors.sizes())[-RECENT:] if s > known]):
            found = await anchors.anchors_for(size)
            for kind in {str(r.get("type")) for r in found.records} & set(self.status) if found else ():
                self._anchored(self.status[kind], prefix, size)

    def _anchored(self, st: KindStatus, prefix: str, size: int) -> None:
        st.shards[prefix] = max(st.shards.get(prefix, 0), size)
        if prefix == self._cfg.prefix:
            st.anchored_size = st.shards[prefix]

    async def _anchor(self, kind: str, target: Anchorable) -> bool:
        st = self.status[kind]
        parts = self._parts(target)
        for prefix, _, _ in parts:
            if prefix not in st.shards:
                await self._recall(prefix)
        if all(t.size <= st.shards[prefix] for prefix, t, _ in parts):
            return False
        if all([await self._store_of(p).has(t.size, kind) for p, t, _ in parts]):
            for prefix, t, _ in parts:  # stored before a failure: no second anchor
                await self._store_of(prefix).put_checkpoint(t.size, t.note)
                self._anchored(st, prefix, t.size)
            return False
        done = await self._backends[kind].anchor(target)
        for prefix, t, extra in self._parts(done.target):
            await self._store_of(prefix).put(t.size, t.note, {**done.record, **extra})
            self._anchored(st, prefix, t.size)
        st.records += 1
        self._records.add(1, {"kind": kind})
        st.last_success = self._clock()
        if isinstance(done.target, Target):
            log.info("anchored tree size %d to %s", done.target.size, kind)
        else:
            sizes = ", ".join(f"{h.shard}: {h.target.size}" for h in done.target.heads)
            log.info("anchored an aggregate of %d shards (%s) to %s", done.target.size, sizes, kind)
        return True

    async def _rounds(self) -> None:
        """Every interval, make the latest checkpoint the target of every kind that is free.

        One shared target per round, rather than each kind reading the latest on its own, keeps
        the kinds on the same checkpoints: a kind busy or backing off skips rounds, then joins
        the current one, so the earliest anchored checkpoint of an entry carries every kind."""
        while True:
            try:
                target = await self.latest()
                if target is None and self._heads.aggregated_elsewhere:
                    await self._recall(self._cfg.prefix)  # what the aggregating anchor did for us
                if target is not None and (self._target is None or self._grew(self._target, target)):
                    self._target = target
                    for wake in self._wake.values():
                        wake.set()
            except (StorageError, CorruptedError, ValueError) as e:  # the table too
                log.warning("cannot read the latest checkpoint to anchor: %s", e)
            await self._sleep(self._cfg.interval_s)

    async def _loop(self, kind: str) -> None:
        st, wake = self.status[kind], self._wake[kind]
        while True:
            await wake.wait()
            wake.clear()
            if self._target is None:
                continue
            try:
                await self._anchor(kind, self._target)
                st.consecutive_failures, st.last_error = 0, None
                continue
            except (AnchorError, StorageError, ConflictError, ValueError) as e:
                st.last_error = str(e)
                backoff = self._cfg.interval_s * 2 ** min(st.consecutive_failures, 16)
                delay = min(self._cfg.max_backoff_s, backoff) * (0.5 + random.random() / 2)  # noqa: S311
                log.warning(
                    "anchoring to %s failed (%d in a row), retrying in %.1fs: %s",
                    kind,
                    st.consecutive_failures + 1,
                    delay,
                    e,
                )
            except Exception as e:  # a bug in a backend must not stop the other kinds
                st.last_error = f"unexpected {type(e).__name__}: {e}"
                log.exception("anchoring to %s failed unexpectedly", kind)
                delay = self._cfg.max_backoff_s
            st.failures += 1
            self._failures.add(1, {"kind": kind})
            st.consecutive_failures += 1
            await self._sleep(delay)
            wake.set()  # retry, with the round's target of then

    def details(self) -> list[str]:
        """One human line per kind for /readyz."""
        lines = []
        for k, s in self.status.items():
            state = "ok" if s.healthy else f"failing ({s.consecutive_failures} in a row): {s.last_error}"
            lines.append(f"anchor {k}: {state}; anchored tree size {s.anchored_size}")
        return lines


def build_backends(
    kinds: Sequence[str], chains: ChainsConfig, store: ObjectStore, keys: LogKeys
) -> list[Backend]:
    """One backend per kind of ANCHORS, each from its frozen config; ConfigError names the
    setting that is missing or wrong."""
    backends: list[Backend] = []
    for kind in kinds:
        why = f"with ANCHORS={kind}"
        if kind == "local":
            backends.append(LocalChain(store=store, signer=keys.log, prefix=layout.LOG_PREFIX))
        elif kind == "evm":
            # imported here: eth-account takes seconds to import, and only EVM deployments need it
            from services.anchor.chains.evm import EvmAnchor, EvmConfig

            deploy = why + " (deploy it with `notar anchor deploy`)"
            evm = EvmConfig(
                rpc=chains.evm_rpc.need(why),
                key_file=chains.evm_key_file.need(why),
                contract=chains.evm_contract.need(deploy),
                confirmations=chains.evm_confirmations,
                journal=chains.evm_journal,
            )
            backends.append(EvmAnchor.from_config(evm))
        elif kind == "rfc3161":
            from services.anchor.chains.rfc3161 import Rfc3161Config, TsaClient

            tsa = Rfc3161Config(url=chains.tsa_url.need(why), ca_file=chains.tsa_ca_file.need(why))
            backends.append(TsaClient.from_config(tsa))
    return backends


COMMITTER = web.AppKey("committer", Committer)


def committer_context(
    config: CommitterConfig, chains: ChainsConfig, *, keys: Callable[[], LogKeys]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running the committer of ``config`` (its kinds built from ``chains``)
    over the app's store; add it after the sequencer's, so that it stops first. Its metrics are
    instruments of the app's Telemetry."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        log_keys = keys()
        committer = Committer(
            store=store,
            backends=build_backends(config.kinds, chains, store, log_keys),
            config=config,
            log_key=log_keys.log.verifier(),
            meter=app[TELEMETRY].meter,
        )
        await committer.start()
        app[COMMITTER] = committer
        app[DETAILS].append(committer.details)
        try:
            yield
        finally:
            await committer.close()

    return ctx
