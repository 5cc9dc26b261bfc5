"""Tests that fill a disk need a loopback filesystem of their own (loadtest/reliability/smalldisk):
without root or mount they skip, except under ``CI=true`` where they fail, as SeaweedFS does."""

from __future__ import annotations

from loadtest.reliability.smalldisk import cannot_mount
from tests.needs import missing


def small_disk_or_skip() -> None:
    reason = cannot_mount()
    if reason is None:
        return
    missing(reason)
