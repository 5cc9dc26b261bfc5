"""`notar verify --online`'s look at the log itself (check `published log`): the receipt's tree
must still be a prefix of the log as URL publishes it now. The latest checkpoint of the receipt's
log is read from URL's `/log/` files and must be signed by a log key trusted for its size; the
consistency proof from the receipt's tree to it comes from `/v1/proofs`, or is computed from the
log's tiles when that route cannot be reached (services/tile_proofs.py). A proof that does not
hold fails the check: the log forked, or URL serves another log under that name.

A server that cannot be reached, or answers what is not that log, leaves a note and no check: the
receipt's own checks do not depend on it."""

from __future__ import annotations

import aiohttp

from merkle.checkpoint import open_checkpoint, parse_checkpoint
from merkle.checks import Check, Status
from merkle.note import parse_note
from merkle.proofs import verify_consistency
from merkle.receipt import Receipt
from merkle.trust import Trust
from services.sdk import ApiError, NotarClient
from services.tile_proofs import TileLog, TileLogError

LOG_CHECK = "published log"
TIMEOUT_S = 30.0


async def published_log(receipt: Receipt, trust: Trust, url: str) -> Check | str:
    """The `published log` check of `receipt` against the log at `url`, or a note saying why it
    was not made."""
    origin = receipt.origin
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = NotarClient(url, session=session, retries=1)
        try:
            note = await TileLog(session, client.tiles).checkpoint(origin)
            latest = parse_checkpoint(parse_note(note).text, origin=origin)
            keys = trust.log_keys(origin, latest.size)
            if not open_checkpoint(note, origin=origin, log_verifiers=keys).ok:
                return Check(LOG_CHECK, Status.NOT_CHECKED, f"the latest checkpoint {url} publishes of "
                             f"{origin} ({latest.size} entries) is not signed by a log key you trust")
            if latest.size < receipt.tree_size:
                return Check(LOG_CHECK, Status.NOT_CHECKED, f"{url} publishes {latest.size} entries of "
                             f"{origin}, fewer than this receipt's tree of {receipt.tree_size}")
            hexes = await client.consistency_proof(receipt.tree_size, latest.size, origin)
            proof = [bytes.fromhex(h) for h in hexes]
        except (TimeoutError, TileLogError, ApiError, aiohttp.ClientError, ValueError) as e:
            return f"the log {origin} was not checked against {url}: {e}"
    mine = parse_checkpoint(parse_note(receipt.checkpoint).text, origin=origin)
    try:
        holds = verify_consistency(mine.size, latest.size, proof, mine.root, latest.root)
    except ValueError:
        holds = False
    now = f"the log {url} publishes now, a tree of {latest.size} entries signed by a key you trust,"
    if not holds:
        return Check(LOG_CHECK, Status.FAILED, f"{now} does not contain this receipt's tree of {mine.size}")
    return Check(LOG_CHECK, Status.OK, f"{now} contains this receipt's tree of {mine.size}")
