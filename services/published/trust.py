"""The keys document of a deployment (`GET /v1/keys`, SPEC §6) and the trust policy in it.

    {"logs": [{"origin", "log", "clock", "state", "from_size", "until_size"}],
     "witnesses": [vkey…], "policy": "<C2SP tlog-policy text>"}

Each log lists its log key (named after the origin) and its clock key (`<origin>/clock`), as
signed-note verifier keys, with the tree sizes they sign from and until (null: still in use).
`policy` is a C2SP tlog-policy (https://c2sp.org/tlog-policy): the log keys, the clock key as a
witness, and the quorum that a checkpoint must meet — the clock's cosignature — so that a verifier
can save it and trust exactly what the deployment published. The anchor writes the document at
each start (`services.published.layout.keys_key`); verify serves it. Today a deployment has one
log and its one pair of keys; key history and external witnesses extend the lists, not the shape.
"""

from __future__ import annotations

from typing import Any

ACTIVE = "active"


def keys_document(*, origin: str, log: str, clock: str) -> dict[str, Any]:
    """The document of one active log with its `log` and `clock` verifier keys (`name+id+key`)."""
    if _name(log) != origin:
        raise ValueError(f"the log key {log!r} is not named after the origin {origin!r}")
    logs = [
        {"origin": origin, "log": log, "clock": clock, "state": ACTIVE, "from_size": 0, "until_size": None}
    ]
    return {"logs": logs, "witnesses": [], "policy": policy(logs)}


def policy(logs: list[dict[str, Any]]) -> str:
    """The C2SP tlog-policy text of `logs`: each log key; each clock key as a witness named
    after its key; a quorum of one of them (the one clock, while there is one log)."""
    lines = [f"log {entry['log']}" for entry in logs]
    clocks = [_name(entry["clock"]) for entry in logs]
    lines += [f"witness {name} {entry['clock']}" for name, entry in zip(clocks, logs, strict=True)]
    if len(clocks) == 1:
        lines.append(f"quorum {clocks[0]}")
    else:
        lines += [f"group clocks any {' '.join(clocks)}", "quorum clocks"]
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
    """The log verifier keys of a keys document, in its order (its logs' `log` keys, and any
    history their entries carry). ValueError when it is not a keys document."""
    trusted_keys(document)  # refuses what is not a keys document
    return [log["log"] for log in document["logs"]]  # type: ignore[index]  # checked just above


def _name(vkey: str) -> str:
    """The key name of a verifier key `name+hexid+base64key` (a name holds no '+'; base64 may)."""
    return vkey.split("+", 1)[0]
