"""The keys document of a deployment (`GET /v1/keys`, SPEC §6) and the trust policy in it.

    {"logs": [{"origin", "log", "clock", "state", "from_size", "until_size"}…],
     "witnesses": [vkey…], "rotations": [signed statement…], "policy": "<C2SP tlog-policy text>"}

`logs` has one entry per key period of each log, oldest first: the log key (named after the
origin) and its clock key (`<origin>/clock`) as signed-note verifier keys, `state` `active` or
`retired`, and the tree sizes the pair signs from and until (null: still in use), taken from the
signed rotation statements (merkle.keyhistory), which `rotations` lists in order so that a client
can check the chain from a key it trusts (SPEC §6 does not name this member). `witnesses` are the
external witnesses' keys (WITNESSES). `policy` is a C2SP tlog-policy (https://c2sp.org/tlog-policy):
every log key, each clock key as a witness, the external witnesses, and the quorum — a clock's
cosignature and, when WITNESS_QUORUM > 0, that many of the witnesses — so that a verifier can save
it and trust exactly what the deployment published. The anchor writes the document at each start
(`services.published.layout.keys_key`); verify serves it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from merkle.keyhistory import KeyHistory
from merkle.policy import parse_policy
from merkle.trust import Trust
from services.common.config import Witness


def keys_document(
    histories: Sequence[KeyHistory], witnesses: Sequence[Witness] = (), quorum: int = 0
) -> dict[str, Any]:
    """The document of the logs' key histories (each with its clock keys known), the external
    witnesses and how many of them must cosign (module doc)."""
    logs = []
    for history in histories:
        for period in history.periods:
            if period.clock is None:
                raise ValueError(f"the clock key of {period.log.to_key()} is not known")
            logs.append(
                {
                    "origin": history.origin,
                    "log": period.log.to_key(),
                    "clock": period.clock.to_key(),
                    "state": period.state,
                    "from_size": period.from_size,
                    "until_size": period.until_size,
                }
            )
    rotations = [s for h in histories for s in h.statements]
    return {
        "logs": logs,
        "witnesses": [w.vkey for w in witnesses],
        "rotations": rotations,
        "policy": policy(logs, witnesses, quorum),
    }


def merge_documents(documents: Sequence[dict[str, Any]], frozen: Sequence[bool] = ()) -> dict[str, Any]:
    """The keys document of a sharded deployment from its shards' (each written by its anchor, in
    shard order): every shard's logs and rotations, the external witnesses and their quorum as the
    first states them (every anchor has the same WITNESSES), one policy over all of them. A shard
    marked in `frozen` lists its current keys as `frozen` (SPEC §6). ValueError when a document's
    policy is not one."""
    if len(documents) == 1 and not any(frozen):
        return documents[0]
    first = parse_policy(documents[0]["policy"])
    listed = set(documents[0]["witnesses"])
    witnesses = [Witness(w.key.to_key(), w.url or "") for w in first.witnesses if w.key.to_key() in listed]
    quorum = next((g.threshold for g in first.groups if g.name == "witnesses"), 0)
    logs = []
    for i, document in enumerate(documents):
        for log in document["logs"]:
            ended = i < len(frozen) and frozen[i] and log.get("state") == "active"
            logs.append({**log, "state": "frozen"} if ended else log)
    return {
        "logs": logs,
        "witnesses": documents[0]["witnesses"],
        "rotations": [r for d in documents for r in d.get("rotations", [])],
        "policy": policy(logs, witnesses, quorum),
    }


def policy(logs: list[dict[str, Any]], witnesses: Sequence[Witness] = (), quorum: int = 0) -> str:
    """The C2SP tlog-policy text of `logs` (entries of a keys document) and the witnesses: each
    log key; each clock key as a witness; any of the clocks, and `quorum` of the witnesses, make
    the quorum. Witness names are their keys' names, with `+<key id>` where two would be alike."""
    clocks = [entry["clock"] for entry in logs]
    vkeys = [*clocks, *(w.vkey for w in witnesses)]
    names = witness_names(vkeys)
    lines = [f"log {entry['log']}" for entry in logs]
    lines += [f"witness {names[k]} {k}" for k in clocks]
    lines += [f"witness {names[w.vkey]} {w.vkey} {w.url}" for w in witnesses]
    clock = names[clocks[0]]
    if len(clocks) > 1:
        clock = "clocks"
        lines.append(f"group {clock} any {' '.join(names[k] for k in clocks)}")
    if quorum > 0 and witnesses:
        lines.append(f"group witnesses {quorum} {' '.join(names[w.vkey] for w in witnesses)}")
        lines.append(f"group quorum all {clock} witnesses")
        clock = "quorum"
    lines.append(f"quorum {clock}")
    return "\n".join(lines) + "\n"


def trusted_keys(document: object) -> list[str]:
    """Every verifier key of a keys document: each log's log and clock keys, then the
    witnesses'. ValueError when it is not a keys document."""
    logs = document.get("logs") if isinstance(document, dict) else None
    if not isinstance(logs, list) or not logs or not all(isinstance(log, dict) for log in logs):
        raise ValueError('expected {"logs": [{"origin", "log", "clock", ...}], "witnesses": [...]}')
    keys = []
    for log in logs:
        for name in ("log", "clock"):
            key = log.get(name)
            if not isinstance(key, str):
                raise ValueError(f"a log's {name!r} key is not a verifier key string")
            keys.append(key)
    witnesses = document.get("witnesses", []) if isinstance(document, dict) else []
    if not isinstance(witnesses, list) or not all(isinstance(w, str) for w in witnesses):
        raise ValueError("'witnesses' is not a list of verifier key strings")
    return keys + witnesses


def log_keys(document: object) -> list[str]:
    """The log verifier keys of a keys document, in its order (its logs' `log` keys: one per key
    period, oldest first). ValueError when it is not a keys document."""
    trusted_keys(document)  # refuses what is not a keys document
    return [log["log"] for log in document["logs"]]  # type: ignore[index]  # checked just above


def document_trust(document: object) -> Trust:
    """What a keys document says to trust: its policy, with each log's key history rebuilt from
    its signed `rotations` (chained from a log key of the policy; `merkle.trust.Trust`).
    ValueError when it is not a keys document, or its policy or statements are refused."""
    return Trust.from_policy(*document_policy(document))


def document_policy(document: object) -> tuple[str, tuple[str, ...]]:
    """A keys document's `policy` text and its `rotations`, as they are (what `document_trust`
    reads; plain data for a worker process). ValueError when it is not a keys document."""
    if not isinstance(document, dict) or not isinstance(document.get("policy"), str):
        raise ValueError('expected a keys document {"logs": [...], "policy": "...", "rotations": [...]}')
    rotations = document.get("rotations", [])
    if not isinstance(rotations, list) or not all(isinstance(r, str) for r in rotations):
        raise ValueError("'rotations' is not a list of signed rotation statements")
    return document["policy"], tuple(rotations)


def witness_names(vkeys: Sequence[str]) -> dict[str, str]:
    """Each cosignature key's name in a policy (and in metrics): its key's name, with
    `+<key id>` when two keys have the same name."""
    counts = Counter(_name(k) for k in vkeys)
    return {k: _name(k) if counts[_name(k)] == 1 else f"{_name(k)}+{k.split('+')[1]}" for k in vkeys}


def _name(vkey: str) -> str:
    """The key name of a verifier key `name+hexid+base64key` (a name holds no '+'; base64 may)."""
    return vkey.split("+", 1)[0]
