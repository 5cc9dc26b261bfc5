"""The anchor's witness client (C2SP tlog-witness, SPEC §11): one task per witness of WITNESSES.

Every WITNESS_INTERVAL_S a witness's task takes the checkpoint to witness — the committer's round
target when anchors run (the checkpoint each kind anchors, so that upgraded receipts carry anchors
and cosignatures on one checkpoint), else the latest published one — and, when it is larger than
what that witness cosigned, sends ``add-checkpoint`` with the RFC 9162 consistency proof from the
size the witness holds (0 at start: the witness's 409 ``text/x.tlog.size`` answer resynchronises,
and the request is sent again). The cosignature is checked and the cosigned checkpoint stored
(``services.published.witnessed``) before it counts: ``GET /v1/receipts`` upgrades receipts to it.

Nothing waits on a witness: receipts are answered at the checkpoint's signature, the tasks run
beside the sequencer, each request is bounded by ``timeout_s``, and a failing witness is retried
with capped exponential back-off and jitter. A 403 after a key rotation is answered by posting the
log's rotation statements to the witness's ``/rotate`` (docs/witness.md), then sending again. An
answer that the witness holds another view of the log — 422, or a 409 naming the very size sent
(tlog-witness v1.0.0) — is a fork: logged as critical, counted, shown by ``/readyz`` and
``notar_witness_forks_total``, retried at the longest back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp import web

from merkle.cosignature import verifier_from_key
from merkle.note import parse_note, verify_note
from merkle.policy import WitnessKey
from merkle.witness import AddCheckpoint, Outcome, merge_cosignatures, read_answer
from services.anchor.chains import Target
from services.anchor.committer import COMMITTER
from services.anchor.keys import LogKeys
from services.anchor.rotation import HISTORY
from services.anchor.shard_heads import latest_target
from services.common.components import Witness, WitnessesConfig
from services.common.resources import DETAILS, METRICS, STORE
from services.published import layout
from services.published.reader import LogReader
from services.published.trust import witness_names
from services.published.witnessed import WitnessedStore
from storage.errors import ConfigError, NotarError, StorageError

log = logging.getLogger("notar.anchor.witnesses")
MAX_ANSWER = 64 * 1024
RESYNCS = 3  # 409s followed in one submission before it counts as a failure


class Prover(Protocol):
    """Where consistency proofs come from: the published log (``LogReader``)."""

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...


class WitnessError(NotarError):
    """A submission that did not end in a stored cosignature."""


class WitnessFork(WitnessError):
    """The witness holds a view of the log that this checkpoint contradicts."""


@dataclass
class WitnessStatus:
    """What one witness has done: the size it holds (as last heard), the size it cosigned, counts."""

    name: str
    url: str
    key: WitnessKey
    held_size: int = 0
    cosigned_size: int = 0
    cosignatures: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    forks: int = 0
    last_error: str | None = None
    last_success: float | None = None
    fork: str | None = None  # the latest fork answer, until a cosignature succeeds

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0


@dataclass(frozen=True)
class WitnessClientConfig:
    interval_s: float = 10.0
    quorum: int = 0
    timeout_s: float = 10.0
    max_backoff_s: float = 300.0
    prefix: str = layout.LOG_PREFIX


class WitnessClient:
    def __init__(
        self,
        *,
        witnesses: Sequence[Witness],
        reader: Prover,
        witnessed: WitnessedStore,
        target: Callable[[], Awaitable[Target | None]],
        statements: Sequence[str] = (),
        config: WitnessClientConfig,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._reader, self._witnessed, self._target = reader, witnessed, target
        self._statements, self._cfg, self._clock, self._sleep = tuple(statements), config, clock, sleep
        names = witness_names([w.vkey for w in witnesses])
        self.status = [
            WitnessStatus(names[w.vkey], w.url.rstrip("/"), _witness_key(w.vkey)) for w in witnesses
        ]
        self._ids = [layout.witness_id(w.vkey) for w in witnesses]
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._cfg.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._tasks = [
            asyncio.create_task(self._loop(i), name=f"notar-witness-{i}") for i in range(len(self.status))
        ]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()

    @property
    def quorum_size(self) -> int:
        """The largest tree size that at least ``quorum`` witnesses cosigned (0: none yet)."""
        k = self._cfg.quorum
        sizes = sorted((s.cosigned_size for s in self.status), reverse=True)
        return sizes[k - 1] if 0 < k <= len(sizes) else 0

    async def run_once(self, i: int) -> bool:
        """Submit the checkpoint to witness to witness ``i`` now: True when it cosigned a new one."""
        target = await self._target()
        if target is None or target.size <= self.status[i].cosigned_size:
            return False
        await self._submit(i, target)
        return True

    async def _loop(self, i: int) -> None:
        st = self.status[i]
        delay = 0.0
        while True:
            await self._sleep(delay)
            delay = self._cfg.interval_s
            try:
                await self.run_once(i)
                st.consecutive_failures, st.last_error = 0, None
                continue
            except WitnessFork as e:
                st.fork = st.last_error = str(e)
                delay = self._cfg.max_backoff_s
            except (WitnessError, StorageError, ValueError, aiohttp.ClientError, TimeoutError) as e:
                st.last_error = str(e) or type(e).__name__
                backoff = self._cfg.interval_s * 2 ** min(st.consecutive_failures, 16)
                delay = min(self._cfg.max_backoff_s, backoff) * (0.5 + random.random() / 2)  # noqa: S311
                log.warning(
                    "witness %s (%s) failed (%d in a row), retrying in %.1fs: %s",
                    st.name, st.url, st.consecutive_failures + 1, delay, st.last_error,
                )  # fmt: skip
            except Exception as e:  # a bug must not stop the other witnesses, nor this one for good
                st.last_error = f"unexpected {type(e).__name__}: {e}"
                log.exception("witness %s failed unexpectedly", st.name)
                delay = self._cfg.max_backoff_s
            st.failures += 1
            st.consecutive_failures += 1

    async def _submit(self, i: int, target: Target) -> None:
        st = self.status[i]
        rotated = False
        for _ in range(RESYNCS + 1):
            old = st.held_size
            if old > target.size:
                raise WitnessError(
                    f"the witness holds tree size {old}, beyond the checkpoint of size {target.size} to "
                    "witness: it saw a larger tree of this log (was the log rolled back?)"
                )
            proof = await self._reader.consistency_proof(old, target.size) if 0 < old < target.size else []
            request = AddCheckpoint(old, tuple(proof), target.note, target.checkpoint)
            status, content_type, body = await self._post(st.url + "/add-checkpoint", request.body())
            answer = read_answer(request, status, content_type, body)
            if answer.outcome is Outcome.COSIGNED:
                await self._store(i, target, body)
                return
            if answer.outcome is Outcome.RESYNC:
                assert answer.size is not None
                st.held_size = answer.size
                continue
            if answer.outcome is Outcome.INCONSISTENT:
                st.forks += 1
                detail = (
                    f"FORK: witness {st.name} ({st.url}) answered {status} to the checkpoint of size "
                    f"{target.size} sent with the proof from size {old}: it holds another view of this log "
                    f"(it says: {_text(body)})"
                )
                log.critical("%s; the checkpoint was:\n%s", detail, target.note)
                raise WitnessFork(detail)
            if status == 403 and self._statements and not rotated:
                await self._rotate(st)
                rotated = True
                continue
            raise WitnessError(f"the witness refused the checkpoint: {status} {_text(body)}")
        raise WitnessError(f"the witness's size kept changing ({RESYNCS} resynchronisations)")

    async def _store(self, i: int, target: Target, body: bytes) -> None:
        st = self.status[i]
        note = merge_cosignatures(target.note, body, [st.key])
        if not verify_note(parse_note(note), [st.key]).verified:
            raise WitnessError(f"the witness answered 200 without a cosignature by {st.key.to_key()}")
        await self._witnessed.put(target.size, self._ids[i], note)
        st.held_size = st.cosigned_size = target.size
        st.cosignatures += 1
        st.last_success = self._clock()
        if st.fork is not None:
            log.warning("witness %s cosigned tree size %d after reporting a fork", st.name, target.size)
            st.fork = None

    async def _rotate(self, st: WitnessStatus) -> None:
        """Post every rotation statement, in order (the witness keeps those it has: 200 again)."""
        for statement in self._statements:
            status, _, body = await self._post(st.url + "/rotate", statement.encode("utf-8"))
            if status not in (200, 409):  # 409: it already follows a later key
                raise WitnessError(f"the witness refused a rotation statement: {status} {_text(body)}")
        log.info("witness %s was given the log's %d rotation statements", st.name, len(self._statements))

    async def _post(self, url: str, body: bytes) -> tuple[int, str | None, bytes]:
        assert self._session is not None, "start() first"
        async with self._session.post(url, data=body, headers={"Content-Type": "text/plain"}) as r:
            data = await r.content.read(MAX_ANSWER + 1)
            if len(data) > MAX_ANSWER:
                raise WitnessError(f"the witness's answer is larger than {MAX_ANSWER} bytes")
            return r.status, r.headers.get("Content-Type"), data

    def metrics(self) -> list[str]:
        """Prometheus lines, one series per witness, and the quorum's."""
        out: list[str] = []
        series: list[tuple[str, str, Callable[[WitnessStatus], float | None]]] = [
            ("notar_witness_cosigned_tree_size", "gauge", lambda s: s.cosigned_size),
            ("notar_witness_consecutive_failures", "gauge", lambda s: s.consecutive_failures),
            ("notar_witness_failures_total", "counter", lambda s: s.failures),
            ("notar_witness_cosignatures_total", "counter", lambda s: s.cosignatures),
            ("notar_witness_forks_total", "counter", lambda s: s.forks),
            ("notar_witness_last_success_timestamp_seconds", "gauge", lambda s: s.last_success),
        ]
        for name, kind, read in series:
            out.append(f"# TYPE {name} {kind}")
            out += [f'{name}{{witness="{s.name}"}} {read(s)}' for s in self.status if read(s) is not None]
        for name, value in (
            ("notar_witness_quorum", self._cfg.quorum),
            ("notar_witness_quorum_tree_size", self.quorum_size),
        ):
            out += [f"# TYPE {name} gauge", f"{name} {value}"]
        return out

    def details(self) -> list[str]:
        """One human line per witness for /readyz, and the quorum's."""
        lines = []
        for s in self.status:
            if s.fork is not None:
                state = s.fork
            elif s.healthy:
                state = "ok"
            else:
                state = f"failing ({s.consecutive_failures} in a row): {s.last_error}"
            lines.append(f"witness {s.name} ({s.url}): {state}; cosigned tree size {s.cosigned_size}")
        k, n = self._cfg.quorum, len(self.status)
        lines.append(f"witness quorum {k} of {n}: met up to tree size {self.quorum_size}")
        return lines


def _witness_key(vkey: str) -> WitnessKey:
    try:
        key = verifier_from_key(vkey)
    except ValueError as e:
        raise ConfigError(f"WITNESSES: {vkey[:100]!r} is not a verifier key: {e}", setting="WITNESSES") from e
    if not isinstance(key, WitnessKey):
        raise ConfigError(
            f"WITNESSES: {key.to_key()} is not a cosignature key (type 0x04 or 0x06)", setting="WITNESSES"
        )
    return key


def _text(body: bytes) -> str:
    with contextlib.suppress(UnicodeDecodeError):
        return body[:300].decode("utf-8").strip()
    return f"{len(body)} bytes"


WITNESSES = web.AppKey("witnesses", WitnessClient)


def witness_context(
    config: WitnessesConfig,
    origin: str,
    *,
    keys: Callable[[], LogKeys],
    prefix: str = layout.LOG_PREFIX,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running the witness client of ``config`` for the log ``origin``
    published under ``prefix`` (a shard's) over the app's store; add it after the sequencer's and
    the committer's (it follows the committer's rounds when there is one). Its metrics join
    /metrics, its lines /readyz."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        log_key = keys().log.verifier()
        committer = app.get(COMMITTER)

        async def target() -> Target | None:
            if committer is not None:
                return await committer.round_target()
            return await latest_target(store, prefix, log_key)

        client = WitnessClient(
            witnesses=config.witnesses,
            reader=LogReader(store, prefix=prefix, origin=origin),
            witnessed=WitnessedStore(store, prefix=prefix),
            target=target,
            statements=app[HISTORY].statements,
            config=WitnessClientConfig(interval_s=config.interval_s, quorum=config.quorum),
        )
        await client.start()
        app[WITNESSES] = client
        app[METRICS].append(client.metrics)
        app[DETAILS].append(client.details)
        try:
            yield
        finally:
            await client.close()

    return ctx
