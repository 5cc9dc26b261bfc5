"""A Workload in a process of its own, for loads heavy enough to starve the scenario's event loop
(an overload of a thousand writers): its timings would otherwise be the client's, not the
server's. Its Record comes back whole, so every receipt it was given is held to the log.

    python -m loadtest.reliability.loadproc SPEC.json OUT.json

SPEC holds Workload's fields (ingest, verify, api_key, writers, batch, readers, rate,
max_requests, retry_after_cap_s, timeout_s) and ``seconds``; OUT gets the Record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .workload import Acked, Record, Workload

REPO = Path(__file__).resolve().parents[2]


def record_to_json(r: Record) -> dict[str, Any]:
    out = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
    out["acked"] = [dataclasses.astuple(a) for a in r.acked]
    out["checkpoints"] = sorted(r.checkpoints)
    out["statuses"], out["reads"] = dict(r.statuses), dict(r.reads)
    return out


def record_from_json(d: dict[str, Any]) -> Record:
    r = Record()
    for name, value in d.items():
        if name == "acked":
            # every field of Acked, in order (astuple), the origin included: a reader compares it
            r.acked = [Acked(a[0], a[1], a[2], a[3], a[4], a[5], tuple(a[6]), *a[7:]) for a in value]
        elif name == "checkpoints":
            r.checkpoints = set(value)
        elif name in ("statuses", "reads"):
            setattr(r, name, Counter(value))
        elif hasattr(r, name):
            setattr(r, name, value)
    return r


async def _run(spec: dict[str, Any]) -> tuple[Record, float]:
    seconds = float(spec.pop("seconds"))
    w = Workload(**spec)
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(w.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    record = await task
    return record, time.monotonic() - started


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    record, ran = asyncio.run(_run(json.loads(spec_path.read_text())))
    out_path.write_text(json.dumps({"ran_s": ran, "record": record_to_json(record)}))
    return 0


def _child(spec: Path, out: Path, log: Path, timeout: float) -> None:
    cmd = [sys.executable, "-m", "loadtest.reliability.loadproc", str(spec), str(out)]
    with open(log, "wb") as f:
        try:
            done = subprocess.run(cmd, stdout=f, stderr=f, cwd=REPO, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the load process did not finish: {log.read_text()[-2000:]}") from None
    if done.returncode != 0:
        raise RuntimeError(f"the load process failed ({done.returncode}): {log.read_text()[-2000:]}")


async def run_elsewhere(workdir: Path, seconds: float, **workload: Any) -> tuple[Record, float]:
    """Run a Workload of these fields for ``seconds`` in a child process; its Record and how
    long it ran. RuntimeError (with its output) if the child fails."""
    spec, out = workdir / "loadproc-spec.json", workdir / "loadproc-out.json"
    spec.write_text(json.dumps({**workload, "seconds": seconds}))
    await asyncio.to_thread(_child, spec, out, workdir / "loadproc.log", seconds + 120)
    done = json.loads(out.read_text())
    return record_from_json(done["record"]), float(done["ran_s"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
