"""Tests that fill a disk need a loopback filesystem of their own (loadtest/reliability/smalldisk):
without root or mount they skip, except under ``CI=true`` where they fail, as SeaweedFS does."""

from __future__ import annotations

import os

import pytest

from loadtest.reliability.smalldisk import cannot_mount


def small_disk_or_skip() -> None:
    reason = cannot_mount()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason}; in CI the full-disk tests must run, never skip")
    pytest.skip(reason)
