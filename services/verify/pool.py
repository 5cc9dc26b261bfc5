"""POST /v1/verify's work, off the event loop: a bounded pool of worker processes with its own
shedding (issue 15: one anonymous request carrying ~3,100 local anchor blocks cost 716 ms of CPU
on the event loop, and two such clients took other tenants' notarization latency from 108 ms to
4.4 s).

A receipt is verified in one of VERIFY_WORKERS processes (their own interpreters: the event loop
keeps its core and its GIL); at most VERIFY_QUEUE more requests wait for one. Beyond that a request
is refused at once with 503 and Retry-After, before its body is read (`refusal`, through
services.common.shedding), and again when it arrives at the pool while it is full (two requests
may pass the first check together). The processes are started on first use and load only merkle.
What to trust reaches them as plain data (`Trusted`: the keys document's policy and rotation
statements, or verifier keys): a `merkle.trust.Trust` holds key objects, and each process builds
its own, once per keys document (`trust_of`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from merkle.anchors import offline_anchor_verifiers
from merkle.trust import Trust
from merkle.verdict import verify_receipt
from storage.errors import PushbackError

RETRY_AFTER_S = 1


@dataclass(frozen=True)
class Trusted:
    """What a verification trusts, as plain (picklable, hashable) data: a C2SP tlog-policy with the
    rotation statements of its logs (a keys document's `policy` and `rotations`), or, without a
    policy, verifier keys trusted at every tree size."""

    keys: tuple[str, ...] = ()
    policy: str | None = None
    rotations: tuple[str, ...] = ()


@lru_cache(maxsize=8)
def trust_of(trusted: Trusted) -> Trust:
    """The `Trust` of `trusted`, built once per process for each keys document; ValueError when
    its policy, statements or keys are refused."""
    if trusted.policy is None:
        return Trust.of(trusted.keys)
    return Trust.from_policy(trusted.policy, trusted.rotations)


class VerifyPool:
    """`workers` processes verifying receipts, `queue` requests waiting at most (module doc)."""

    def __init__(self, *, workers: int, queue: int, tsa_cas: Sequence[x509.Certificate]) -> None:
        self.workers, self.queue = workers, queue
        self._cas = tuple(c.public_bytes(Encoding.DER) for c in tsa_cas)  # picklable
        self._executor: ProcessPoolExecutor | None = None
        self.pending = 0  # requests in the pool: being verified or waiting

    def refusal(self) -> PushbackError | None:
        """Why a new request would be refused now (the pool and its queue are full), or None."""
        if self.pending < self.workers + self.queue:
            return None
        return PushbackError(
            f"receipt verification is busy ({self.workers} at work, {self.queue} waiting); "
            "verify offline with `notar verify`, or retry",
            retry_after=RETRY_AFTER_S,
        )

    async def verify(self, receipt: Any, *, trusted: Trusted, digest: str | None) -> dict[str, Any]:
        """`verify_receipt(...).to_obj()` of `receipt` under `trusted` and the TSA CAs, in a worker
        process; PushbackError when the pool is full."""
        refused = self.refusal()
        if refused is not None:
            raise refused
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, verify_in_worker, receipt, trusted, digest, self._cas
            )
        finally:
            self.pending -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


_CAS: dict[tuple[bytes, ...], list[x509.Certificate]] = {}  # per worker process


def verify_in_worker(
    receipt: Any, trusted: Trusted, digest: str | None, cas: tuple[bytes, ...]
) -> dict[str, Any]:
    """The verdict of one receipt (runs in a worker process: everything it takes is picklable)."""
    certificates = _CAS.get(cas)
    if certificates is None:
        certificates = _CAS[cas] = [x509.load_der_x509_certificate(der) for der in cas]
    trust = trust_of(trusted)
    verifiers = offline_anchor_verifiers(keys=trust.all_log_keys(), tsa_cas=certificates)
    result: dict[str, Any] = verify_receipt(
        receipt, keys=trust, digest=digest, anchor_verifiers=verifiers
    ).to_obj()
    return result
