"""`notar witness serve`: a C2SP tlog-witness over HTTP (aiohttp).

Routes (docs/witness.md):
- ``POST /add-checkpoint``: tlog-witness add-checkpoint; 200 with the cosignature lines
  (``text/plain; charset=utf-8``), 409 with ``text/x.tlog.size``, other refusals in problem+json.
- ``GET /<sha256 hex of the origin>/checkpoint``: the latest checkpoint cosigned for that log, with
  the log signatures that verified and the witness's cosignatures (the spec's monitoring route).
- ``POST /rotate``: a log's signed rotation statement (merkle.keyhistory); from its size on, the
  witness trusts the new key.
- ``GET /healthz``, ``GET /readyz``.

Requests for one log are serialised by a lock held from the check against the stored state to
the durable save of the new state, so a cosignature is only returned once its checkpoint is on
disk and no two requests ever pass the check against the same state (the spec's rollback race).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aiohttp import web

from merkle.keyhistory import read_rotation
from merkle.note import Signature, parse_note
from merkle.witness import SIZE_CONTENT_TYPE, AddCheckpoint, format_size, origin_hash, parse_add_checkpoint
from services.common.problems import body_at_most, problem, problem_middleware
from services.witness.keys import Cosigner
from services.witness.protocol import Refused, check_add_checkpoint, check_rotation, unknown_log
from services.witness.state import LogState, StateStore
from storage.errors import BadRequest

log = logging.getLogger("notar.witness")
MAX_BODY = 256 * 1024  # 63 proof lines and a checkpoint with many (post-quantum) signatures
TEXT = "text/plain; charset=utf-8"
_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")
_PROBLEMS = {
    400: ("malformed", "Malformed request"),
    403: ("forbidden", "Not signed by a trusted log key"),
    404: ("unknown-log", "Unknown log"),
    409: ("conflict", "Conflict"),
    422: ("inconsistent", "Inconsistent with the cosigned checkpoint"),
}


@dataclass
class _Log:
    state: LogState
    lock: asyncio.Lock


class Witness:
    """The witness's logs in memory over their durable ``store``; ``cosigners`` sign, ``clock``
    gives the POSIX time of each cosignature."""

    def __init__(
        self,
        *,
        store: StateStore,
        states: dict[str, LogState],
        cosigners: list[Cosigner],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cosigners = cosigners
        self.clock = clock
        self.logs = {origin: _Log(state, asyncio.Lock()) for origin, state in states.items()}
        self.by_hash = {origin_hash(origin): origin for origin in states}

    async def add_checkpoint(self, request: AddCheckpoint) -> str | Refused:
        """The cosignature lines for ``request``'s checkpoint, once its state is durable."""
        # Shielded: a cancelled handler must not release the lock while its save still runs in a
        # thread, or a later save could land first and this one then roll the state back.
        return await asyncio.shield(self._add_checkpoint(request))

    async def rotate(self, statement: str) -> str | Refused:
        """Accept a rotation statement; a sentence saying which key the log now uses."""
        return await asyncio.shield(self._rotate(statement))

    async def _add_checkpoint(self, request: AddCheckpoint) -> str | Refused:
        origin = request.checkpoint.origin
        entry = self.logs.get(origin)
        if entry is None:
            return unknown_log(origin)
        async with entry.lock:
            state = entry.state
            decision = check_add_checkpoint(request, history=state.history, held=state.checkpoint)
            if isinstance(decision, Refused):
                if decision.status == 422:  # the spec invites logging: it may prove a log's misbehaviour
                    log.warning("refused a checkpoint of %s (old %d, size %d): %s\n%s", origin,
                                request.old_size, request.checkpoint.size, decision.reason, request.note)
                return decision
            text = parse_note(request.note).text
            timestamp = max(int(self.clock()), 1)  # the spec forbids timestamp 0
            message = text.encode("utf-8")
            lines = "".join(
                Signature(c.name, c.key_id, c.at(timestamp).sign(message)).line() for c in self.cosigners
            )
            note = text + "\n" + "".join(s.line() for s in decision.log_signatures) + lines
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, self.store.save_checkpoint, origin, note)
            except OSError as e:
                log.error("could not save the state of %s: %s", origin, e)
                return Refused(503, f"the witness could not save its state: {e.strerror}")
            entry.state = replace(state, note=note, checkpoint=decision.checkpoint)
            return lines

    async def _rotate(self, statement: str) -> str | Refused:
        try:
            origin = read_rotation(statement).origin
        except ValueError as e:
            return Refused(400, f"not a rotation statement: {e}")
        entry = self.logs.get(origin)
        if entry is None:
            return unknown_log(origin)
        async with entry.lock:
            history = check_rotation(statement, history=entry.state.history)
            if isinstance(history, Refused):
                return history
            if history != entry.state.history:
                number = len(history.statements)
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        None, self.store.save_rotation, origin, number, statement
                    )
                except OSError as e:
                    log.error("could not save a rotation of %s: %s", origin, e)
                    return Refused(503, f"the witness could not save its state: {e.strerror}")
                entry.state = replace(entry.state, history=history)
                log.info("log %s now signs with %s from tree size %d", origin,
                         history.current.log.to_key(), history.current.from_size)
            current = history.current
            return f"{origin} signs with {current.log.to_key()} from tree size {current.from_size}\n"

    def checkpoint(self, hashed_origin: str) -> str | None:
        origin = self.by_hash.get(hashed_origin)
        return self.logs[origin].state.note if origin is not None else None


WITNESS = web.AppKey("witness", Witness)


async def _body(request: web.Request) -> str:
    body = b"".join([chunk async for chunk in body_at_most(request, MAX_BODY)])
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid UTF-8") from None


def _refusal(refused: Refused) -> web.Response:
    if refused.status == 409 and refused.size is not None:
        return web.Response(status=409, body=format_size(refused.size), content_type=SIZE_CONTENT_TYPE)
    kind, title = _PROBLEMS.get(refused.status, ("unavailable", "Service unavailable"))
    headers = {"Retry-After": "5"} if refused.status == 503 else None
    return problem(refused.status, kind, title, refused.reason, headers=headers)


async def add_checkpoint(request: web.Request) -> web.Response:
    try:
        parsed = parse_add_checkpoint(await _body(request))
    except ValueError as e:
        return _refusal(Refused(400, f"not an add-checkpoint request: {e}"))
    answer = await request.app[WITNESS].add_checkpoint(parsed)
    if isinstance(answer, Refused):
        return _refusal(answer)
    return web.Response(text=answer, content_type="text/plain", charset="utf-8")


async def rotate(request: web.Request) -> web.Response:
    answer = await request.app[WITNESS].rotate(await _body(request))
    if isinstance(answer, Refused):
        return _refusal(answer)
    return web.Response(text=answer, content_type="text/plain", charset="utf-8")


async def latest_checkpoint(request: web.Request) -> web.Response:
    hashed = request.match_info["origin_hash"]
    note = request.app[WITNESS].checkpoint(hashed) if _ORIGIN_HASH.fullmatch(hashed) else None
    if note is None:
        return problem(404, "not-found", "Not found", "this witness has cosigned no checkpoint of that log")
    return web.Response(text=note, content_type="text/plain", charset="utf-8")


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def create_app(witness: Witness) -> web.Application:
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY)
    app[WITNESS] = witness
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_post("/rotate", rotate)
    app.router.add_get("/{origin_hash}/checkpoint", latest_checkpoint)
    app.router.add_get("/healthz", _ok)
    app.router.add_get("/readyz", _ok)
    return app
