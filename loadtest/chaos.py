"""The chaos scenario runner: real notar processes under load, one fault at a time, then the
independent "nothing lost" checker (loadtest/reliability/).

    python -m loadtest.chaos --list
    python -m loadtest.chaos kill9-anchor kill9-embedded          # short forms, as CI runs them
    python -m loadtest.chaos --long --repeat 3 --out chaos.jsonl all

Scenarios that run the Kubernetes topology need an S3 bucket: ``--s3-endpoint`` (with
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and ``--s3-bucket``), else a SeaweedFS is started on
loopback for the run. Each outcome is printed as one JSON line; the exit code is 1 when any
scenario lost, doubled, forked or invented anything, or did not recover.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from loadtest.reliability.cluster import S3Bucket
from loadtest.reliability.driver import Context, Outcome
from loadtest.reliability.scenarios import Scenario, all_scenarios


@contextmanager
def s3_bucket(ns: argparse.Namespace) -> Iterator[S3Bucket]:
    if ns.s3_endpoint:
        yield S3Bucket(
            ns.s3_endpoint, ns.s3_bucket, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
        )
        return
    from tests.seaweed import S3Target, ensure_bucket, start_seaweed

    with start_seaweed() as server:
        target = S3Target(server.endpoint, "chaos", server.access_key, server.secret_key, server.region)
        ensure_bucket(target)
        yield S3Bucket(target.endpoint, target.bucket, target.access_key, target.secret_key, target.region)


async def run_one(scenario: Scenario, ctx: Context) -> Outcome:
    return await scenario.run(ctx)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("scenarios", nargs="*", help="scenario names, or 'all'")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--long", action="store_true", help="the long form of each scenario")
    p.add_argument("--repeat", type=int, default=1, help="run each scenario this many times")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from os.urandom)")
    p.add_argument("--out", type=Path, help="append each outcome as a JSON line to this file")
    p.add_argument("--s3-endpoint", help="S3 endpoint for topology scenarios (default: start SeaweedFS)")
    p.add_argument("--s3-bucket", default="notar-chaos")
    p.add_argument("--keep", action="store_true", help="keep each run's directory (logs, data)")
    ns = p.parse_args(argv)
    known = all_scenarios()
    if ns.list or not ns.scenarios:
        for s in known.values():
            print(f"{s.name:24} {'S3 ' if s.needs_s3 else 'fs '} {s.doc}")
        return 0
    names = list(known) if ns.scenarios == ["all"] else ns.scenarios
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"chaos: no scenario named {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    failed = 0
    with ExitStack() as stack:
        bucket = stack.enter_context(s3_bucket(ns)) if any(known[n].needs_s3 for n in names) else None
        for n in names:
            for _ in range(ns.repeat):
                seed = ns.seed if ns.seed is not None else int.from_bytes(os.urandom(4), "big")
                workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{n}-"))
                ctx = Context(workdir, bucket if known[n].needs_s3 else None, ns.long, seed)
                outcome = asyncio.run(run_one(known[n], ctx))
                outcome.extra["seed"] = seed
                line = outcome.to_json()
                print(line, flush=True)
                if ns.out:
                    with open(ns.out, "a") as f:
                        f.write(line + "\n")
                failed += not outcome.ok
                if outcome.ok and not ns.keep:
                    shutil.rmtree(workdir, ignore_errors=True)
                elif not outcome.ok:
                    print(f"chaos: {n} failed; its processes' logs are in {workdir}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
