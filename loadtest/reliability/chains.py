"""The outside world of the anchor scenarios, and what they read of the anchor while it runs.

- ``evm_chain``: a real anvil (npm @foundry-rs/anvil, tests/anvil.py) mining a block every
  ``block_time`` seconds, its chain dumped to a state file when it stops and loaded when it starts
  again (anvil's ``--state``), with NotarAnchor deployed by ``notar anchor deploy`` as an operator
  would; ``EvmChain.check`` is the checker's EVM check (``verify_online``, as ``notar verify
  --online`` runs it).
- ``tsa_server``: a real TSA (tests/tsa.py: ``openssl ts -reply``) and its PKI, on a thread of
  its own.
- ``metrics``/``readyz``: the anchor pod's /metrics and /readyz, ``RecordWatch``: anchor records
  as they appear in the store (each EVM record checked on chain the moment it is seen),
  ``anchor_kinds``: the anchor kinds of the receipt a verify pod serves for a digest.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from merkle.aggregate import AnchorTarget
from merkle.checkpoint import parse_checkpoint
from merkle.checks import AnchorVerdict, Status
from merkle.note import parse_note
from services.anchor.chains import AnchorError
from services.published import layout
from storage.base import ObjectStore
from storage.errors import NotFoundError

from .cluster import Cluster, _clean_env

RECORDS = layout.anchor_records()
ANCHORED = "notar_anchor_tree_size"
RECORDS_TOTAL = "notar_anchor_records_total"
FAILURES = "notar_anchor_failures_total"
CONSECUTIVE = "notar_anchor_consecutive_failures"


@dataclass
class Findings:
    """What a scenario's fault saw (for Outcome.extra), and what it expected but did not see."""

    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


@dataclass
class EvmChain:
    """An anvil with NotarAnchor deployed, and the settings a notar anchor needs to use it."""

    anvil: Any  # tests.anvil.Anvil; Any keeps the tests package out of this module's imports
    contract: str
    key_file: Path
    confirmations: int

    def env(self) -> dict[str, str]:
        return {
            "NOTAR_EVM_RPC": self.anvil.url,
            "NOTAR_EVM_KEY_FILE": str(self.key_file),
            "NOTAR_EVM_CONTRACT": self.contract,
            "NOTAR_EVM_CONFIRMATIONS": str(self.confirmations),
        }

    async def check(self, record: Mapping[str, Any], target: AnchorTarget) -> AnchorVerdict:
        """The checker's EVM check: the record holds on the chain anvil serves now."""
        from services.anchor.chains.evm import verify_online
        from services.anchor.chains.evm_rpc import JsonRpc

        rpc = JsonRpc(self.anvil.url)
        try:
            return await verify_online(
                record, target, rpc=rpc, confirmations=self.confirmations, contract=self.contract
            )
        finally:
            await rpc.close()

    async def head(self) -> int:
        return int(await self.anvil.head())


@contextmanager
def evm_chain(workdir: Path, *, confirmations: int, block_time: float = 0.25) -> Iterator[EvmChain]:
    """Start anvil (state kept in ``workdir``), deploy NotarAnchor with `notar anchor deploy`."""
    from tests.anvil import KEY0, Anvil

    anvil = Anvil(block_time=block_time, state=workdir / "anvil-state.json")
    key_file = workdir / "evm.key"
    key_file.write_text(KEY0 + "\n")
    key_file.chmod(0o600)
    anvil.start()
    try:
        env = {**_clean_env(), "NOTAR_EVM_CONFIRMATIONS": str(confirmations)}
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "anchor", "deploy", "--evm-rpc", anvil.url,
             "--evm-key-file", str(key_file), "--data-dir", str(workdir / "deployer")],
            env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"notar anchor deploy failed: {done.stderr.decode()[-2000:]}")
        contract = done.stdout.decode().strip().splitlines()[-1]
        yield EvmChain(anvil, contract, key_file, confirmations)
    finally:
        anvil.stop()


class TsaThread:
    """A tests.tsa.LocalTsa on an event loop of its own thread, so that it answers while the
    scenario's loop blocks (starting the cluster, stopping it). ``tsa.mode`` is set directly;
    ``stop``/``start`` take it off its port and put it back (connection refused meanwhile)."""

    def __init__(self, workdir: Path) -> None:
        from tests.tsa import LocalTsa, make_pki

        self.pki = make_pki(workdir / "pki")
        self.tsa = LocalTsa(self.pki)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-tsa", daemon=True)
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)

    def start(self) -> None:
        self._call(self.tsa.start())

    def stop(self) -> None:
        self._call(self.tsa.stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@contextmanager
def tsa_server(workdir: Path) -> Iterator[TsaThread]:
    """A running TSA (``openssl ts -reply``, its PKI made in ``workdir``), stopped afterwards."""
    server = TsaThread(workdir)
    server.start()
    try:
        yield server
    finally:
        server.close()


def server_errors(load: Mapping[str, Any]) -> list[str]:
    """Problems for the answers of an Outcome's ``load`` that were server errors other than 503
    (pushback): a chain or TSA failing must never make the API answer 500."""
    found = {f"POST /v1/digests {k}": n for k, n in load.get("requests", {}).items() if k[:1] == "5"}
    found |= {f"GET /v1/receipts {k[5:]}": n for k, n in load.get("reads", {}).items() if k[:6] == "http-5"}
    return [f"{n} answers {what}" for what, n in found.items() if not what.endswith(" 503")]


async def _get(url: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
        return r.status, await r.text()


async def metrics(url: str) -> dict[str, float]:
    """The pod's /metrics samples by ``name{labels}``; {} while it does not answer."""
    try:
        status, text = await _get(url + "/metrics")
    except (aiohttp.ClientError, TimeoutError, OSError):
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines() if status == 200 else ():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def kind_metric(samples: Mapping[str, float], name: str, kind: str) -> float:
    return samples.get(f'{name}{{kind="{kind}"}}', 0.0)


async def readyz(url: str) -> str:
    try:
        return (await _get(url + "/readyz"))[1]
    except (aiohttp.ClientError, TimeoutError, OSError):
        return ""


async def published_size(url: str) -> int:
    """The tree size of the checkpoint the pod publishes now (0 when it does not answer)."""
    try:
        status, text = await _get(url + "/log/checkpoint")
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0
    return int(text.splitlines()[1]) if status == 200 else 0


async def anchor_kinds(verify_url: str, api_key: str, digest: str) -> set[str]:
    """The anchor kinds in the receipt the verify pod serves for ``digest`` now."""
    timeout = aiohttp.ClientTimeout(total=5)
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as s,
            s.get(f"{verify_url}/v1/receipts/{digest}", headers=headers) as r,
        ):
            if r.status != 200:
                return set()
            body = orjson.loads(await r.read())
    except (aiohttp.ClientError, TimeoutError, OSError):
        return set()
    return {str(a.get("type")) for a in body.get("anchors", [])}


async def until(cond: Callable[[], Awaitable[bool]], seconds: float, poll_s: float = 0.2) -> bool:
    """Whether ``cond`` came true within ``seconds`` (polled every ``poll_s``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await cond():
            return True
        await asyncio.sleep(poll_s)
    return False


@dataclass
class RecordWatch:
    """Anchor records as they appear in the store. Each EVM record is checked on ``chain`` the
    moment it is first seen: one naming a transaction not on chain, or written before its block
    had the confirmations, fails then, whatever the chain does afterwards.

    The confirmations are counted against the highest head the chain had since the previous look
    (a rewind such as evm_revert lowers the head under a record written before it: the scenario
    reports the head it rewound from with ``saw_head``), since the record was written then."""

    cluster: Cluster
    chain: EvmChain | None = None
    poll_s: float = 0.25
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> record
    checked: int = 0
    failed: list[str] = field(default_factory=list)
    _peak: int = 0

    def saw_head(self, height: int) -> None:
        """The chain's head was ``height`` (just before the scenario rewinds it)."""
        self._peak = max(self._peak, height)

    async def _head(self) -> int | None:
        try:
            return None if self.chain is None else await self.chain.head()
        except (aiohttp.ClientError, OSError, RuntimeError, AnchorError):
            return None  # the chain does not answer (it is down)

    async def _look(self, store: ObjectStore) -> None:
        before = await self._head()
        keys = sorted([k async for k in store.list(RECORDS)])
        after = await self._head()
        if self.chain is not None and (before is None or after is None):
            return  # check the records when the chain answers
        peak, self._peak = max(self._peak, before or 0, after or 0), after or 0
        for key in keys:
            if key in self.seen:
                continue
            try:
                record = orjson.loads(await store.get(key))
                size = int(key.split("/")[-2])
                note = (await store.get(layout.anchor_checkpoint_key(size))).decode()
            except NotFoundError:
                continue  # the checkpoint is written just after the first record: next time
            if record.get("type") == "evm" and self.chain is not None:
                body = parse_note(note).text
                try:
                    verdict = await self.chain.check(record, AnchorTarget.of(parse_checkpoint(body), body))
                except AnchorError:
                    return  # the chain stopped answering: check it when it does
                ok, why = verdict.status is Status.OK, verdict.detail
                if not ok and why.endswith("needed"):  # all else holds, the head is lower now
                    ok = peak - int(record["block_number"]) + 1 >= self.chain.confirmations
                self.checked += 1
                if not ok:
                    self.failed.append(f"{key} when first seen: {why} (head since the last look {peak})")
            self.seen[key] = record

    async def run(self, stop: asyncio.Event) -> None:
        store = await self.cluster.open_store()
        try:
            while not stop.is_set():
                await self._look(store)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_s)
            await self._look(store)
        finally:
            await store.close()
