"""Run a notar command with every thread of its process under cProfile (the event loop, the
sequencer's worker threads, the store's pools), and write the merged profile when it returns
(`notar serve` returns on SIGTERM), for `bench_api --cprofile`:

    CPROFILE_OUT=/tmp/serve.prof .venv/bin/python -m loadtest.profiled serve --data-dir …
    .venv/bin/python -m loadtest.profiled --top /tmp/serve.prof        # its hottest functions

Each thread is timed by its own CPU time (`time.thread_time`): time spent blocked (in the
kernel waiting for the disk, on the GIL, idle in a pool) is not counted. cProfile costs time per
call, so a profiled server is slower: its rates are not figures, its shares are where the CPU
goes. (py-spy samples without that cost; scripts/install does not
install it.)
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import runpy
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

_PROFILES: list[cProfile.Profile] = []
_LOCK = threading.Lock()


def _in_thread(frame: FrameType, event: str, arg: Any) -> None:
    """Set by threading.setprofile in every new thread: its first event starts that thread's
    own profiler, which replaces this hook."""
    profile = cProfile.Profile(time.thread_time)
    with _LOCK:
        _PROFILES.append(profile)
    profile.enable()


WAITS = (
    "<method 'get' of '_queue.SimpleQueue' objects>",  # idle pool threads
    "<method 'poll' of 'select.epoll' objects>",  # the idle event loop
    "<method 'acquire' of '_thread.lock' objects>",
    "<built-in method time.sleep>",
    "<built-in method posix.fsync>",  # waiting for the disk
)
"""Functions whose own time is waiting, not computing: left out of the shares."""


def top(path: str, count: int = 25, *, per: int = 0) -> str:
    """The `count` functions with the most own time (tottime) of a pstats file, with their
    share of the total own time spent computing (`WAITS` apart); with `per` (requests served
    while profiled), their own and cumulative time in µs per request too."""
    stats = pstats.Stats(path)
    entries = stats.stats.items()  # type: ignore[attr-defined]
    waits = {name: v[2] for (_, _, name), v in entries if name in WAITS}
    working = [kv for kv in entries if kv[0][2] not in WAITS]
    total = sum(v[2] for _, v in working)
    out = io.StringIO()
    out.write(
        f"own time computing {total:.2f} s; waiting: "
        + ", ".join(f"{name} {t:.1f} s" for name, t in waits.items())
        + "\n"
    )
    if per:
        out.write(f"{total / per * 1e6:.0f} µs computing per request over {per:,} requests\n")
    for (file, line, name), (_, calls, own, cum, _) in sorted(working, key=lambda kv: -kv[1][2])[:count]:
        where = f"{os.path.basename(file)}:{line}" if line else file
        share = 100 * own / total
        each = f" {own / per * 1e6:6.1f} µs/req own {cum / per * 1e6:7.1f} cum" if per else ""
        out.write(f"{share:5.1f}% {own:6.2f}s own {cum:6.2f}s cum{each} {calls:>9,} calls {name} ({where})\n")
    return out.getvalue()


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--top"]:
        print(top(argv[1], int(argv[2]) if len(argv) > 2 else 25))
        return 0
    out = os.environ["CPROFILE_OUT"]
    threading.setprofile(_in_thread)
    main_profile = cProfile.Profile(time.thread_time)
    _PROFILES.append(main_profile)
    sys.argv = ["notar", *argv]
    main_profile.enable()
    code: object = 0
    try:  # as `python -m services.cli` (only the CLI imports the CLI: tests/test_layering.py)
        runpy.run_module("services.cli", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
    finally:
        main_profile.disable()
        threading.setprofile(None)
        with _LOCK:
            profiles = list(_PROFILES)
        for p in profiles:
            p.create_stats()
        merged = pstats.Stats(profiles[0])
        for p in profiles[1:]:
            merged.add(p)
        merged.dump_stats(out)
    return code if isinstance(code, int) else int(bool(code))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
