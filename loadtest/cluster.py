"""A loopback cluster behind a real load balancer (issue 17 item 7): one SeaweedFS, the anchors
(one per shard), two ingest and two verify `notar serve --role …` processes, and Debian's haproxy
in front (loadtest/balancer.py), all on free 127.0.0.1 ports.

    python -m loadtest.cluster up [--dir DIR] [--anchors K]   # prints the URL and an API key
    python -m loadtest.cluster down [--dir DIR]                # stops everything `up` started

`up` leaves the processes running, each in a session of its own, and writes DIR/cluster.json
(the URL, the tenant's API key, the bucket, and each process's pid and start time, so that `down`
signals only the processes `up` started, never a reused pid). Logs are in DIR. The test fixture
(tests/topology/test_cluster.py) runs the same code in-process with ``running_cluster``.

With ``--anchors 1`` the anchor is today's split-role anchor. With K > 1, anchor n gets the
shard settings of ``shard_env`` (ordinal n of K, the URL it advertises): the anchors claim their
shards from the shard table, and the ingest and verify pods find them there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadtest.balancer import Balancer, find_haproxy
from loadtest.reliability.cluster import Cluster, Pod, S3Bucket, make_cluster
from tests.seaweed import S3Target, ensure_bucket, free_ports, launch_seaweed
from tests.serving import stop_process

ORIGIN = "cluster.notar.test/log"
FRONT = ("ingest", "ingest", "verify", "verify")
STOP_S = 60.0
DEFAULT_DIR = Path("build/cluster")


def shard_env(ordinal: int, url: str, shards: int) -> dict[str, str]:
    """The settings of anchor ``ordinal`` of ``shards`` (issue 17 item 1: it claims the shard of
    its ordinal and advertises ``url`` in the shard table); with one shard, none."""
    if shards == 1:
        return {}
    return {"NOTAR_SHARDS": str(shards), "NOTAR_SHARD_ORDINAL": str(ordinal), "NOTAR_SHARD_URL": url}


@dataclass
class LoopbackCluster:
    """A running cluster: its pods (loadtest.reliability.cluster), haproxy in front, the bucket."""

    pods: Cluster
    balancer: Balancer
    shards: int
    exit_codes: dict[str, int | None] | None = None  # once stopped: each notar process's

    @property
    def url(self) -> str:
        return self.balancer.url

    @property
    def anchors(self) -> list[Pod]:
        return self.pods.of("anchor")

    def logs(self) -> str:
        return self.pods.logs() + "\n" + self.balancer.tail()


def make(workdir: Path, bucket: S3Bucket, *, shards: int = 1, detached: bool = False) -> LoopbackCluster:
    """The cluster's processes, not started: ``shards`` anchors, then the front ends (so that
    `Cluster.stop` stops the front ends first and the first anchor last)."""
    if not 1 <= shards <= 16:
        raise ValueError(f"between 1 and 16 anchors, not {shards}")
    haproxy = find_haproxy()
    if haproxy is None:
        raise RuntimeError("haproxy is not installed: run scripts/install --test (apt-get install haproxy)")
    roles = ("anchor", *FRONT, *(("anchor",) * (shards - 1)))
    env = {"NOTAR_SHARDS": str(shards)} if shards > 1 else {}
    pods = make_cluster(workdir, origin=ORIGIN, bucket=bucket, roles=roles, env=env)
    for ordinal, pod in enumerate(pods.of("anchor")):
        pod.env |= shard_env(ordinal, pod.url, shards)
    for pod in pods.pods:
        pod.detached = detached
    balancer = Balancer(free_ports(1)[0], workdir, haproxy, detached=detached)
    return LoopbackCluster(pods, balancer, shards)


def start(cluster: LoopbackCluster, tenants: tuple[str, ...] = ("acme",)) -> None:
    """Start the pods (the first anchor first), their tenants, then haproxy once they are ready."""
    cluster.pods.start()
    for t in tenants:
        cluster.pods.add_tenant(t)
    cluster.balancer.start(
        [p.port for p in cluster.pods.of("ingest")], [p.port for p in cluster.pods.of("verify")]
    )
    cluster.balancer.wait_ready()


def stop(cluster: LoopbackCluster) -> dict[str, int | None]:
    """haproxy, then the front ends, then the anchors (SIGTERM; SIGKILL after a while): each
    notar process's exit code (None: it had to be killed, or never ran)."""
    if cluster.balancer.process is not None:
        stop_process(cluster.balancer.process, timeout=10)
    return cluster.pods.stop()


@contextmanager
def running_cluster(
    workdir: Path, bucket: S3Bucket, *, shards: int = 1, tenants: tuple[str, ...] = ("acme",)
) -> Iterator[LoopbackCluster]:
    """A started cluster on ``bucket`` for the block; every process stopped afterwards, the exit
    codes in ``exit_codes``."""
    cluster = make(workdir, bucket, shards=shards)
    try:
        start(cluster, tenants)
        yield cluster
    finally:
        cluster.exit_codes = stop(cluster)


# -- `up` and `down`: processes that outlive the command ------------------------------------------


def _started_at(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def up(workdir: Path, shards: int) -> dict[str, object]:
    """Start SeaweedFS and the cluster on it, detached; write and return DIR/cluster.json. The
    data and logs of a previous run in DIR go first."""
    state = workdir / "cluster.json"
    if state.exists():
        raise RuntimeError(f"{state} exists: run `python -m loadtest.cluster down --dir {workdir}` first")
    for old in ("seaweed", "pods"):
        shutil.rmtree(workdir / old, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    processes: list[tuple[str, int]] = []
    with ExitStack() as undo:  # whatever started is stopped again if `up` fails half-way
        weed, server = launch_seaweed(workdir / "seaweed")
        undo.callback(stop_process, weed)
        processes.append(("seaweedfs", weed.pid))
        target = S3Target(server.endpoint, "notar", server.access_key, server.secret_key, server.region)
        ensure_bucket(target)
        bucket = S3Bucket(target.endpoint, target.bucket, target.access_key, target.secret_key)
        (workdir / "pods").mkdir(exist_ok=True)
        cluster = make(workdir / "pods", bucket, shards=shards, detached=True)
        undo.callback(stop, cluster)
        start(cluster)
        processes += [(f"{p.role} {p.url}", p.process.pid) for p in cluster.pods.pods if p.process]
        assert cluster.balancer.process is not None
        processes.append(("haproxy", cluster.balancer.process.pid))
        info: dict[str, object] = {
            "url": cluster.url,
            "api_key": cluster.pods.api_keys["acme"],
            "tenant": "acme",
            "shards": shards,
            "s3": {"endpoint": bucket.endpoint, "bucket": bucket.bucket, "prefix": cluster.pods.prefix},
            "processes": [{"name": n, "pid": pid, "started": _started_at(pid)} for n, pid in processes],
        }
        state.write_text(json.dumps(info, indent=1))
        undo.pop_all()
    return info


def down(workdir: Path) -> dict[str, str]:
    """SIGTERM every process DIR/cluster.json names that is still the one `up` started, the load
    balancer first and SeaweedFS last; SIGKILL what has not exited after a while. Each one's fate."""
    state = workdir / "cluster.json"
    info = json.loads(state.read_text())
    fate: dict[str, str] = {}
    for proc in reversed(info["processes"]):  # started: seaweedfs, pods, haproxy
        pid, name = int(proc["pid"]), str(proc["name"])
        if _started_at(pid) != proc["started"]:
            fate[name] = "already gone"
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        while _started_at(pid) == proc["started"] and time.monotonic() < deadline:
            time.sleep(0.1)
        if _started_at(pid) == proc["started"]:
            os.kill(pid, signal.SIGKILL)
            fate[name] = "killed"
        else:
            fate[name] = "stopped"
    state.unlink()
    return fate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("up", "down"))
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state and logs (default {DEFAULT_DIR})")
    p.add_argument("--anchors", type=int, default=1, help="shard anchors (default 1)")
    ns = p.parse_args(argv)
    try:
        if ns.command == "up":
            info = up(ns.dir, ns.anchors)
            print(f"url: {info['url']}")
            print(f"api key (tenant acme): {info['api_key']}")
            print(f"state and logs: {ns.dir}")
        else:
            for name, what in down(ns.dir).items():
                print(f"{name}: {what}")
    except (RuntimeError, ValueError, OSError) as e:
        print(f"loadtest.cluster {ns.command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
