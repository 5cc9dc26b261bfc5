"""`notar serve --workers N` (WORKERS): the CPUs it defaults to (affinity, cgroup v2 and v1 quotas,
read from fake cgroup files), its one-line refusals, and two real workers on one port: both
answer, digests through either land in one log, a worker killed with SIGKILL is started again
with nothing acknowledged lost (and the pod's counters do not go down), SIGTERM stops every
process, and a killed parent takes its workers with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from services.cli.workers import ANCHOR, SocketAnchor, anchor_ready, worker_count
from services.common.components import load
from services.common.cpus import cgroup_quota, usable_cpus
from services.common.http_server import port_lock
from storage.errors import ConfigError
from tests.serving import NOTAR, free_port, notar_cli, stop_process, wait_ready

# --- the CPUs this process may use ------------------------------------------------------------


def _cgroup(root: Path, memberships: str, files: dict[str, str]) -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(memberships)
    for name, text in files.items():
        path = root / "sys/fs/cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cgroup_v2_quota_is_rounded_up_and_capped_by_affinity(tmp_path: Path) -> None:
    root = _cgroup(tmp_path, "0::/kubepods/pod1/c1\n", {"kubepods/pod1/c1/cpu.max": "150000 100000\n"})
    assert cgroup_quota(root) == 1.5
    assert usable_cpus(affinity=8, root=root) == 2
    assert usable_cpus(affinity=1, root=root) == 1


def test_cgroup_v2_smallest_quota_along_the_path_wins(tmp_path: Path) -> None:
    files = {"a/cpu.max": "300000 100000\n", "a/b/cpu.max": "max 100000\n", "cpu.max": "max 100000\n"}
    root = _cgroup(tmp_path, "0::/a/b\n", files)
    assert usable_cpus(affinity=16, root=root) == 3


def test_cgroup_v2_without_a_quota_leaves_the_affinity(tmp_path: Path) -> None:
    root = _cgroup(tmp_path, "0::/x\n", {"x/cpu.max": "max 100000\n"})
    assert cgroup_quota(root) is None
    assert usable_cpus(affinity=6, root=root) == 6


def test_a_container_sees_its_own_cgroup_at_the_mount_root(tmp_path: Path) -> None:
    """cgroup namespace: /proc names the host's path, /sys/fs/cgroup is the container's own."""
    root = _cgroup(tmp_path, "0::/kubepods/burstable/pod9/abc\n", {"cpu.max": "200000 100000\n"})
    assert usable_cpus(affinity=64, root=root) == 2


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    memberships = "4:memory:/m\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    files = {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
    }
    root = _cgroup(tmp_path, memberships, files)
    assert cgroup_quota(root) == 2.5
    assert usable_cpus(affinity=32, root=root) == 3


def test_cgroup_v1_without_quota_and_no_cgroup_files(tmp_path: Path) -> None:
    files = {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}
    root = _cgroup(tmp_path / "a", "2:cpu:/\n", files)
    assert usable_cpus(affinity=4, root=root) == 4
    assert usable_cpus(affinity=3, root=tmp_path / "nothing") == 3  # no /proc/self/cgroup at all


def test_this_process_may_use_at_least_one_cpu_and_no_more_than_its_affinity() -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("role", "env", "expected"),
    [
        ("all", {}, 5),  # the default: the CPUs this process may use
        ("all", {"NOTAR_WORKERS": "1"}, 1),
        ("all", {"NOTAR_SHARDS": "2"}, 1),  # the default with shards in one process: 1, not an error
        ("all", {"NOTAR_WORKERS": "auto"}, 5),
        ("ingest", {"NOTAR_WORKERS": "AUTO"}, 5),
        ("verify", {"NOTAR_WORKERS": "3"}, 3),
        ("anchor", {"NOTAR_WORKERS": "auto"}, 1),  # one writer per log
        ("all", {"NOTAR_WORKERS": "auto", "NOTAR_SHARDS": "2"}, 1),
    ],
)
def test_how_many_workers(tmp_path: Path, role: str, env: dict[str, str], expected: int) -> None:
    config = load(env={"NOTAR_DATA_DIR": str(tmp_path), **env})
    assert worker_count(role, config, cpus=lambda: 5) == expected


# --- refusals -------------------------------------------------------------------------------


def _env(data: Path, port: int, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTAR_")}
    return {
        **env,
        "NOTAR_DATA_DIR": str(data),
        "NOTAR_LISTEN": f"127.0.0.1:{port}",
        "NOTAR_URL": f"http://127.0.0.1:{port}",
        "NOTAR_BATCH_MS": "10",
        **{f"NOTAR_{k}": v for k, v in settings.items()},
    }


@pytest.mark.parametrize(
    ("args", "settings", "said"),
    [
        (["--workers", "0"], {}, "WORKERS must be greater than 0, got 0"),
        (["--workers", "two"], {}, "WORKERS must be a whole number, got 'two'"),
        ([], {"WORKERS": "-3"}, "WORKERS must be greater than 0, got -3"),
        (["--workers", "2"], {"SHARDS": "2"}, "WORKERS=2 needs SHARDS=1 in one process"),
    ],
)
def test_wrong_workers_are_refused_in_one_line(
    tmp_path: Path, args: list[str], settings: dict[str, str], said: str
) -> None:
    r = notar_cli("serve", *args, env=_env(tmp_path, free_port(), **settings), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("notar: ") and said in r.stderr, r.stderr
    assert "listening" not in r.stdout


# --- two workers on one port ----------------------------------------------------------------


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    out: Path

    def call(self, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, dict[str, str], bytes]:
        """One request on a connection of its own (so the kernel may hand it to either worker)."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer " + self.env["NOTAR_API_KEY"]
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def digests_answered(self) -> float:
        """The pod's count of POST /v1/digests answered 200, from one scrape of /metrics (again
        when the connection was one the killed worker held)."""
        for _ in range(20):
            try:
                _, _, text = self.call("/metrics", auth=False)
                break
            except OSError:
                time.sleep(0.05)
        for line in text.decode().splitlines():
            if line.startswith(DIGESTS_OK + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {DIGESTS_OK} in /metrics")

    def workers(self, count: int = 2) -> dict[str, int]:
        """worker index -> pid, from the /metrics (the pod's: every worker's notar_worker_info)
        of scrapes for 30 s at most, until `count` are seen (/readyz answers once the first worker
        listens; the others start after it)."""
        seen: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _, _, text = self.call("/metrics", auth=False)
            except OSError:
                continue
            for line in text.decode().splitlines():
                if line.startswith("notar_worker_info{"):
                    inside = line[line.index("{") + 1 : line.index("}")]
                    labels = dict(p.split("=") for p in inside.split(","))
                    seen[labels["worker"].strip('"')] = int(labels["pid"].strip('"'))
            if len(seen) == count:
                break
            time.sleep(0.05)
        return seen


@contextmanager
def served(tmp_path: Path, workers: str | None = "2", cpus: set[int] | None = None) -> Iterator[Served]:
    """`notar serve` with WORKERS=`workers` (None: the default), on `cpus` (its affinity) if given."""
    port = free_port()
    settings = {"ANCHOR_INTERVAL_S": "1"} | ({} if workers is None else {"WORKERS": workers})
    env = _env(tmp_path / "data", port, **settings)
    out = tmp_path / "out.txt"
    on_cpus = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [NOTAR, "serve"], env=env, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=on_cpus
        )
    try:
        wait_ready(env["NOTAR_URL"], proc)
        added = notar_cli("tenant", "add", "acme", env=env)
        assert added.returncode == 0, added.stderr
        env["NOTAR_API_KEY"] = added.stdout.strip().splitlines()[-1]
        yield Served(proc, env["NOTAR_URL"], env, out)
    finally:
        stop_process(proc, timeout=60)


DIGESTS_OK = 'notar_http_requests_total{method="POST",route="/v1/digests",status="200"}'


def digest(n: int, tag: str) -> str:
    return "sha256:" + f"{tag}{n:06d}".encode().hex().ljust(64, "0")[:64]


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status  # a zombie: dead, waiting to be reaped


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if not _gone(p)]


def test_two_workers_one_port_one_log_restart_and_stop(tmp_path: Path) -> None:
    with served(tmp_path) as notar:
        first = notar.workers()
        assert set(first) == {"1", "2"} and len(set(first.values())) == 2, first
        assert notar.proc.pid not in first.values()

        # digests through either worker: one log, each receipt found again by its digest
        acked: dict[str, int] = {}
        by_worker: dict[str, int] = {}
        for n in range(40):
            d = digest(n, "a")
            status, headers, body = notar.call("/v1/digests", {"digests": [d]})
            assert status == 200, body
            by_worker[headers["X-Notar-Worker"]] = by_worker.get(headers["X-Notar-Worker"], 0) + 1
            receipt = json.loads(body)["receipts"][0]
            acked[d] = receipt["log"]["index"]
        assert set(by_worker) == {"1", "2"}, by_worker
        assert sorted(acked.values()) == list(range(40))  # one sequence of indexes, none twice
        # whichever worker a scrape reaches answers for the pod: both workers' requests, summed
        for _ in range(4):
            _, headers, text = notar.call("/metrics", auth=False)
            lines = text.decode().splitlines()
            served_40 = 'notar_http_requests_total{method="POST",route="/v1/digests",status="200"} 40'
            assert served_40 in lines, (headers["X-Notar-Worker"], [x for x in lines if "digests" in x])
            assert not any("/internal/" in line for line in lines), "the anchor's internal routes"
            checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
            assert checked.returncode in (0, 3) and b"error" not in checked.stderr, checked.stderr

        # SIGKILL of a worker under load: it is started again; nothing acknowledged is lost
        stop = threading.Event()
        errors: list[int] = []

        def load() -> None:
            for n in range(400):
                if stop.is_set():
                    return
                d = digest(n, "b")
                try:
                    status, _, body = notar.call("/v1/digests", {"digests": [d]})
                except OSError:  # a connection the killed worker held
                    continue
                if status == 200:
                    acked[d] = json.loads(body)["receipts"][0]["log"]["index"]
                else:
                    errors.append(status)

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(0.5)
        counted = [notar.digests_answered()]  # the pod's counter: it never goes down (pod_counters)
        os.kill(first["1"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        again: dict[str, int] = {}
        while time.monotonic() < deadline:
            counted.append(notar.digests_answered())
            again = notar.workers()
            if again.get("1") not in (None, first["1"]) and again.get("2") == first["2"]:
                break
            time.sleep(0.5)
        stop.set()
        loader.join(timeout=120)
        assert again.get("1") not in (None, first["1"]) and again["2"] == first["2"], again
        counted.append(notar.digests_answered())
        assert counted == sorted(counted) and counted[0] >= 40, counted
        assert len(acked) > 40
        assert set(errors) <= {503}, errors
        assert len(set(acked.values())) == len(acked)
        for d, index in acked.items():
            status, _, body = notar.call(f"/v1/receipts/{d}")
            assert status == 200, (d, body)
            assert json.loads(body)["log"]["index"] == index

        # SIGTERM: every process stops, none is left, the summary adds up the workers' requests
        pids = list(again.values())
        notar.proc.send_signal(signal.SIGTERM)
        assert notar.proc.wait(timeout=60) == 0
        assert _wait_gone(pids, 10) == []
        last = notar.out.read_text().strip().splitlines()[-1]
        assert last.startswith("notar all stopped after ") and "requests served" in last, last
        sequenced = int(last.split(": ", 1)[1].split(" entries sequenced")[0])
        served_count = int(last.rsplit(", ", 1)[1].split()[0])
        # a request in flight in the killed worker may have been sequenced and never acknowledged
        assert sequenced >= len(acked) and served_count > len(acked) // 2, last
        assert "worker 1 (pid" in notar.out.read_text() and "starting it again" in notar.out.read_text()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_by_default_one_worker_per_cpu_this_process_may_use(tmp_path: Path) -> None:
    """No WORKERS: as many workers as usable_cpus() (the server runs on this process's CPUs),
    each answering some of the connections under its own X-Notar-Worker."""
    expected = usable_cpus()
    with served(tmp_path, workers=None) as notar:
        answered: set[str] = set()
        for _ in range(200):
            status, headers, _ = notar.call("/v1/keys", auth=False)
            assert status == 200
            answered.add(headers.get("X-Notar-Worker", "none"))
            if len(answered) == expected:
                break
        if expected == 1:
            assert answered == {"none"} and _children(notar.proc.pid) == []
        else:
            assert answered == {str(i) for i in range(1, expected + 1)}, answered
            pids = notar.workers(expected)
            assert len(pids) == expected and set(pids.values()) <= set(_children(notar.proc.pid)), pids
            assert f", {expected} workers)" in notar.out.read_text()


def test_on_one_cpu_the_default_is_one_process(tmp_path: Path) -> None:
    """`taskset -c N notar serve`: one CPU in its affinity, one process (no worker, no header)."""
    with served(tmp_path, workers=None, cpus={min(os.sched_getaffinity(0))}) as notar:
        status, headers, _ = notar.call("/v1/keys", auth=False)
        assert status == 200 and "X-Notar-Worker" not in headers
        assert _children(notar.proc.pid) == []
        assert "workers)" not in notar.out.read_text()


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    with served(tmp_path) as notar:
        pids = list(notar.workers().values())
        assert len(pids) == 2
        command = Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")
        directory = Path(command[command.index(b"--run-dir") + 1].decode())
        assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o700
        assert {p.name for p in directory.iterdir()} >= {"anchor.sock", "worker-1.sock", "worker-2.sock"}
        notar.proc.kill()
        notar.proc.wait(timeout=10)
        assert _wait_gone(pids, 30) == [], "a worker outlived its parent"
        assert not directory.exists(), "the anchor's socket directory was left behind"


def test_a_verify_pod_runs_its_role_in_each_worker(tmp_path: Path) -> None:
    """`--role verify` with WORKERS=2: two copies of the role on one port, no anchor in the parent."""
    port = free_port()
    env = _env(tmp_path / "data", port, WORKERS="2")
    assert notar_cli("keygen", env=env).returncode == 0  # the fs store the verify pods read
    proc = subprocess.Popen([NOTAR, "serve", "--role", "verify"], env=env, stdout=subprocess.PIPE)
    try:
        wait_ready(env["NOTAR_URL"], proc)
        notar = Served(proc, env["NOTAR_URL"], {**env, "NOTAR_API_KEY": ""}, tmp_path / "unused")
        pids = notar.workers()
        assert set(pids) == {"1", "2"} and proc.pid not in pids.values(), pids
        status, headers, _ = notar.call("/healthz", auth=False)
        assert status == 200 and headers["X-Notar-Worker"] in pids
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 0
        assert out.strip().splitlines()[-1].startswith("notar verify stopped after "), out
        assert _wait_gone(list(pids.values()), 10) == []
    finally:
        stop_process(proc)


def test_a_workers_readiness_and_liveness_are_the_anchors_too(tmp_path: Path) -> None:
    """`anchor_ready` and `watch_health` over a real Unix socket: an anchor that says not ready
    or stopped for good makes the worker say so; one that does not answer is unready, not dead."""
    async def not_ready(request: web.Request) -> web.Response:
        return web.Response(status=503, text="sequencer starting\n")

    async def dead(request: web.Request) -> web.Response:
        return web.json_response({"detail": "the sequencer stopped for good"}, status=503)

    async def main() -> None:
        anchor_app = web.Application()
        anchor_app.router.add_get("/readyz", not_ready)
        anchor_app.router.add_get("/healthz", dead)
        runner = web.AppRunner(anchor_app)
        await runner.setup()
        path = tmp_path / "anchor.sock"
        await web.UnixSite(runner, str(path)).start()
        worker = web.Application()
        anchor = worker[ANCHOR] = SocketAnchor(path)
        await anchor.open()
        try:
            assert await anchor_ready(worker) == "anchor: sequencer starting"
            watching = asyncio.create_task(anchor.watch_health())
            async with asyncio.timeout(10):
                while anchor.dead is None:
                    await asyncio.sleep(0.05)
            watching.cancel()
            assert anchor.dead == "anchor: the sequencer stopped for good"
        finally:
            await anchor.close()
            await runner.cleanup()
        gone = SocketAnchor(tmp_path / "nothing.sock")
        worker[ANCHOR] = gone
        await gone.open()
        try:
            reason = await anchor_ready(worker)
            assert reason is not None and reason.startswith("anchor unreachable"), reason
        finally:
            await gone.close()

    asyncio.run(main())


def test_a_second_group_of_workers_on_the_same_port_is_refused(tmp_path: Path) -> None:
    """SO_REUSEPORT would let a second `notar serve --workers` of the same user bind the port of
    the first and take half its connections without a word: it is refused at start-up in one
    line, as a single process is; the first keeps every connection."""
    (tmp_path / "first").mkdir()
    with served(tmp_path / "first") as first:
        port = int(first.url.rsplit(":", 1)[1])
        for workers in ("2", "1"):
            env = _env(tmp_path / f"second-{workers}", port, WORKERS=workers)
            r = subprocess.run(
                [NOTAR, "serve"], env=env, capture_output=True, text=True, timeout=60
            )
            assert r.returncode in (1, 2) and "listening" not in r.stdout, r.stdout + r.stderr
            assert r.stderr.count("\n") == 1, r.stderr
            assert f"cannot listen on 127.0.0.1:{port}: address already in use" in r.stderr, r.stderr
        for n in range(20):  # each on a new connection: every one reaches the first's ingest
            status, _, body = first.call("/v1/digests", {"digests": [digest(n, "one-port")]})
            assert status == 200, body


def test_the_port_lock_is_one_per_address_and_let_go_on_close() -> None:
    port = free_port()
    held = port_lock("127.0.0.1", port)
    try:
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}: address already in use") as e:
            port_lock("127.0.0.1", port)
        assert e.value.setting == "LISTEN"
        with pytest.raises(ConfigError, match="address already in use"):
            port_lock("localhost", port)  # the same address, resolved
        port_lock("127.0.0.1", free_port()).close()  # another port is another lock
    finally:
        held.close()
    port_lock("127.0.0.1", port).close()  # let go
