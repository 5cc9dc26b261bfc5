"""How many CPUs this process may use: WORKERS' default (`notar serve --workers`).

Not the node's count (`os.cpu_count()`): a container limited to 2 CPUs on a 64-core node that
started 64 workers would spend its quota switching between them. The answer is the smallest of
the CPUs in the process's affinity mask (taskset, cpusets) and the CPU quota of its cgroup and
every ancestor (cgroup v2 `cpu.max`; v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, as Kubernetes
sets from a container's CPU limit), rounded up, and at least 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(*, affinity: int | None = None, root: Path = Path("/")) -> int:
    """The CPUs this process may use. `affinity` (default: `os.sched_getaffinity`) and `root`
    (where /proc and /sys are: tests pass a directory of fake cgroup files) are for tests."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota(root)
    cpus = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, cpus)


def cgroup_quota(root: Path = Path("/")) -> float | None:
    """The CPU quota of this process's cgroups in CPUs (1.5: one and a half), the smallest along
    the path from its cgroup to the hierarchy's root; None when none is set or none can be read."""
    try:
        memberships = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in memberships:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2: "0::/the/path"
            base = root / CGROUP_ROOT.relative_to("/")
            quotas += filter(None, (_v2(d) for d in _ancestors(base, path)))
        elif "cpu" in controllers.split(","):  # cgroup v1: "4:cpu,cpuacct:/the/path"
            mount = _v1_mount(root / CGROUP_ROOT.relative_to("/"), controllers)
            if mount is not None:
                quotas += filter(None, (_v1(d) for d in _ancestors(mount, path)))
    return min(quotas) if quotas else None


def _ancestors(base: Path, path: str) -> list[Path]:
    """`base/path` and each directory above it up to `base` itself. In a container the path
    seen in /proc is often the host's while /sys/fs/cgroup is the container's own (cgroup
    namespace): directories that do not exist are skipped and `base` is always read."""
    parts = [p for p in path.strip().split("/") if p and p != ".."]
    dirs = [base.joinpath(*parts[:n]) for n in range(len(parts), 0, -1)]
    return [d for d in dirs if d.is_dir()] + [base]


def _v2(directory: Path) -> float | None:
    try:
        quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or "100000")
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_mount(mounts: Path, controllers: str) -> Path | None:
    for name in (controllers, "cpu,cpuacct", "cpu"):
        if (mounts / name).is_dir():
            return mounts / name
    return None


def _v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # -1: no quota
        return None
    return quota / period
