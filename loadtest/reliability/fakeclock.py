"""A wall clock a chaos scenario can step, for one process at a time: libfaketime.

The process runs with libfaketime preloaded (Debian's ``libfaketime``, installed by
``scripts/install --test``), reading its offset from a file on every call
(``FAKETIME_NO_CACHE``), so rewriting the file steps the process's ``CLOCK_REALTIME`` (Python's
``time.time()``, ``datetime.now()``) at once, like an NTP step, while ``CLOCK_MONOTONIC`` runs on
untouched (``FAKETIME_DONT_FAKE_MONOTONIC``).

Two traps of libfaketime 0.9.10 (Debian 12), both with monotonic time left alone:

- its "monotonic fix" of ``pthread_cond_timedwait`` breaks the timed waits of CPython's GIL: a
  process with busy threads (the sequencer's worker thread, the fs store's pool) runs 10 to 100
  times slower. ``FAKETIME_FORCE_MONOTONIC_FIX=0`` turns that fix off.
- it still rewrites ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``, which Python >= 3.11's
  ``time.sleep`` uses, so ``time.sleep`` fails with EINVAL in such a process
  (wolfcw/libfaketime#426). asyncio, thread waits and epoll are not affected; a notar server
  does not call ``time.sleep``.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

LIBRARY_GLOBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")


def library() -> str:
    """The path of libfaketime.so.1; RuntimeError saying how to install it when absent."""
    for pattern in LIBRARY_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise RuntimeError(
        "libfaketime is not installed: run scripts/install --test (or apt-get install -y libfaketime)"
    )


class FakeClock:
    """An offset file; ``env`` runs a process on it, ``step`` moves its wall clock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.step(0)

    def env(self) -> dict[str, str]:
        """What a process's environment needs to read its wall clock from this file."""
        return {
            "LD_PRELOAD": library(),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        }

    def step(self, offset_s: int) -> None:
        """From now on the process's wall clock reads real time + ``offset_s`` seconds."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{offset_s:+d}\n")
        os.replace(tmp, self.path)  # never a half-written file for the reader
        self.offset = offset_s


def check_jumps(workdir: Path, offset_s: int = 3600) -> float:
    """Run a child Python on a FakeClock stepped to ``offset_s`` and return how far its
    ``time.time()`` is from ours; RuntimeError unless it jumped (within 60 s) and its monotonic
    clock did not."""
    clock = FakeClock(workdir / "fakeclock-check")
    clock.step(offset_s)
    code = "import time; print(time.time(), time.monotonic())"
    before = time.time()
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **clock.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a child under libfaketime failed: {done.stderr.strip()[-500:]}")
    wall, mono = (float(x) for x in done.stdout.split())
    seen = wall - before
    if abs(seen - offset_s) > 60:
        raise RuntimeError(f"libfaketime did not step the child's clock: {seen:.0f} s, not {offset_s} s")
    if abs(mono - time.monotonic()) > 60:
        raise RuntimeError("libfaketime faked the child's monotonic clock too")
    return seen
